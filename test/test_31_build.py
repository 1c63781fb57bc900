"""The built module as Debian's Apache loads it: no library beyond the system C ones, only
the module record exported, and `make install` laying out what `a2enmod tls` needs."""
import os
import re
import subprocess

import harness

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The module `make` builds and `make install` ships, also when the suite runs against another
# build (`make asan`).
MODULE = os.path.join(TOP, 'build', 'mod_tls.so')
SYSTEM_LIBS = re.compile(r'^(linux-vdso|libc|libm|libgcc_s|libpthread|libdl|ld-linux[-\w]*)\.so')


def test_links_only_system_c_libraries():
    out = subprocess.run(['ldd', MODULE], capture_output=True, text=True, check=True).stdout
    libs = [line.split()[0] for line in out.splitlines() if line.strip()]
    others = [lib for lib in libs if not SYSTEM_LIBS.match(os.path.basename(lib))]
    assert not others, f'mod_tls.so needs more than the system C libraries: {others}\n{out}'


def test_exports_only_the_module_record():
    out = subprocess.run(['nm', '-D', '--defined-only', MODULE], capture_output=True,
                         text=True, check=True).stdout
    names = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert names == ['tls_module'], names


def test_make_install_into_destdir(module_path):
    dest = harness.mkdtemp('tls-install-')
    r = subprocess.run(['make', '-s', '-C', TOP, 'install', f'DESTDIR={dest}'],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    libexec = subprocess.run(['apxs', '-q', 'LIBEXECDIR'], capture_output=True, text=True,
                             check=True).stdout.strip()
    sysconf = subprocess.run(['apxs', '-q', 'SYSCONFDIR'], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert os.path.isfile(dest + libexec + '/mod_tls.so')
    load = open(dest + sysconf + '/mods-available/tls.load').read()
    assert f'LoadModule tls_module {libexec}/mod_tls.so' in load
    assert os.path.isfile(dest + sysconf + '/mods-available/tls.conf')


def _log_calls():
    """(file, line, the call's text) of every ap_log_*error call in src/."""
    calls = []
    src = os.path.join(TOP, 'src')
    for name in sorted(os.listdir(src)):
        if not name.endswith('.c'):
            continue
        with open(os.path.join(src, name)) as f:
            text = f.read()
        for m in re.finditer(r'ap_log_[cr]?error\(', text):
            end = text.index(';', m.end())
            calls.append((name, text.count('\n', 0, m.start()) + 1, text[m.start():end]))
    return calls


def test_every_log_message_has_its_own_number():
    """Admins search the error log by message number (MTLSnnnnn, as httpd's AHnnnnn):
    every message above trace level has one, and no two places share a number."""
    calls = _log_calls()
    assert len(calls) > 20, calls
    seen = {}
    for name, line, text in calls:
        if 'APLOG_TRACE' in text:
            continue
        m = re.search(r'TLSLOGNO\((\d{5})\)\s*"', text)
        assert m, f'{name}:{line}: log message without TLSLOGNO(): {text[:120]}'
        assert m.group(1) not in seen, \
            f'{name}:{line}: TLSLOGNO({m.group(1)}) also at {seen[m.group(1)]}'
        seen[m.group(1)] = f'{name}:{line}'


def test_fuzz_corpus_holds_no_key_or_certificate():
    """fuzz/corpus/ is committed: it must hold no private key and no whole certificate (the
    fuzzers' seeds with those are made at run time, fuzz/seeds.py), and stay small."""
    import sys
    sys.path.insert(0, os.path.join(TOP, 'fuzz'))
    from corpus_check import carries_secret

    root = os.path.join(TOP, 'fuzz', 'corpus')
    found, total = [], 0
    for d, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(d, name), 'rb') as f:
                data = f.read()
            total += len(data)
            if carries_secret(data):
                found.append(os.path.relpath(os.path.join(d, name), TOP))
    assert not found, f'corpus files with a private key or a certificate: {found}'
    assert total < 2 * 1024 * 1024, f'fuzz/corpus/ holds {total} bytes'

"""The Debian package (`make deb`): its files, its metadata and maintainer scripts, lintian's
verdict, and an Apache serving https with the module and tls.conf taken out of it. Nothing is
installed: the package is read with dpkg-deb and unpacked into a temp folder."""
import fcntl
import os
import re
import stat
import subprocess

import pytest

import harness
from harness import INDEX_HTML

TOP = harness.TOP_DIR
PACKAGE = 'libapache2-mod-tls'
MODDIR = '/usr/lib/apache2/modules'
DOCDIR = f'/usr/share/doc/{PACKAGE}'


def _run(*args, **kw):
    kw.setdefault('timeout', 120)
    return subprocess.run(list(args), capture_output=True, text=True, **kw)


def _make_var(name):
    with open(os.path.join(TOP, 'Makefile')) as f:
        m = re.search(rf'^{name}\s*\??:?=\s*(\S+)', f.read(), re.M)
    assert m, f'{name} not in the Makefile'
    return m.group(1)


@pytest.fixture(scope='module')
def deb():
    """`make deb`, which rebuilds the package only when the module or the packaging changed.
    `make test` runs the suite twice at once: a lock keeps the two builds from sharing
    build/deb/ at the same time (the second then finds the package up to date)."""
    version = f"{_make_var('MOD_TLS_VERSION')}-{_make_var('DEB_REVISION')}"
    arch = _run('dpkg', '--print-architecture', check=True).stdout.strip()
    path = os.path.join(TOP, 'build', f'{PACKAGE}_{version}_{arch}.deb')
    os.makedirs(os.path.join(TOP, 'build'), exist_ok=True)
    with open(os.path.join(TOP, 'build', '.deb.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        r = _run('make', '-s', '-C', TOP, 'deb', timeout=1800)
    assert r.returncode == 0, f'make deb failed:\n{r.stdout}\n{r.stderr}'
    assert os.path.isfile(path), f'make deb made no {path}:\n{r.stdout}\n{r.stderr}'
    return {'path': path, 'version': version, 'arch': arch}


@pytest.fixture(scope='module')
def unpacked(deb):
    root = harness.mkdtemp('tls-deb-')
    _run('dpkg', '-x', deb['path'], root, check=True)
    return root


def _build_id(path):
    out = _run('readelf', '-n', path, check=True).stdout
    m = re.search(r'Build ID: ([0-9a-f]+)', out)
    assert m, f'{path} has no build id:\n{out}'
    return m.group(1)


def test_holds_the_module_built_here(deb, unpacked):
    """The package is up to date with build/mod_tls.so: the same link, stripped (the build id
    survives dh_strip)."""
    assert _build_id(unpacked + f'{MODDIR}/mod_tls.so') == \
        _build_id(os.path.join(TOP, 'build', 'mod_tls.so'))


def test_files(deb):
    out = _run('dpkg-deb', '-c', deb['path'], check=True).stdout
    entries = {}
    for line in out.splitlines():
        perms, owner, _size, _date, _time, name = line.split(None, 5)
        entries[name.split(' -> ')[0].lstrip('.').rstrip('/') or '/'] = (perms, owner)
    files = {name for name, (perms, _) in entries.items() if perms.startswith('-')}
    for want in (f'{MODDIR}/mod_tls.so', '/etc/apache2/mods-available/tls.load',
                 '/etc/apache2/mods-available/tls.conf', f'{DOCDIR}/copyright',
                 f'{DOCDIR}/changelog.Debian.gz'):
        assert want in files, f'{want} not in the package:\n{out}'
    assert any(f.startswith(f'{DOCDIR}/README.md') for f in files), out
    assert any(f.startswith(f'{DOCDIR}/docs/directives.md') for f in files), out
    for name in files:
        assert name.startswith((f'{MODDIR}/', '/etc/apache2/mods-available/', f'{DOCDIR}/')), \
            f'{name}: a file where this package has no business:\n{out}'
    wrong = [f'{n} {o}' for n, (_, o) in entries.items() if o != 'root/root']
    assert not wrong, f'files not owned by root: {wrong}'
    assert entries[f'{MODDIR}/mod_tls.so'][0] == '-rw-r--r--'


def _field(deb, name):
    return _run('dpkg-deb', '-f', deb['path'], name, check=True).stdout.strip()


def test_control(deb):
    assert _field(deb, 'Package') == PACKAGE
    assert _field(deb, 'Version') == deb['version']
    assert _field(deb, 'Architecture') == deb['arch']
    assert _field(deb, 'Section') == 'httpd'
    depends = [d.strip() for d in _field(deb, 'Depends').split(',')]
    # The module ABI of the Apache it was built against, which Debian's apache2-bin provides
    # (and libapache2-mod-* packages depend on), and the libraries dpkg-shlibdeps found.
    provides = _run('dpkg-query', '-W', '-f', '${Provides}', 'apache2-bin', check=True).stdout
    api = re.search(r'apache2-api-\d{8}', provides)
    assert api, provides
    assert api.group(0) in depends, depends
    assert any(re.match(r'apache2-bin \(>= 2\.4', d) for d in depends), depends
    assert any(re.match(r'libc6 \(>= [\d.]+\)', d) for d in depends), depends


def test_conffiles_and_maintainer_scripts(deb):
    info = harness.mkdtemp('tls-deb-control-')
    _run('dpkg-deb', '-e', deb['path'], info, check=True)
    with open(os.path.join(info, 'conffiles')) as f:
        conffiles = f.read().split()
    assert sorted(conffiles) == ['/etc/apache2/mods-available/tls.conf',
                                 '/etc/apache2/mods-available/tls.load'], conffiles
    # apache2-maintscript-helper enables the module on install (not when the admin disabled
    # it) and disables it on removal and purge, as in Debian's module packages.
    wants = {'postinst': 'enmod', 'prerm': 'dismod', 'postrm': 'dismod'}
    for script, action in wants.items():
        path = os.path.join(info, script)
        assert os.path.isfile(path), f'no {script} in the package'
        assert os.stat(path).st_mode & stat.S_IXUSR, f'{script} is not executable'
        with open(path) as f:
            text = f.read()
        assert '. /usr/share/apache2/apache2-maintscript-helper' in text, text
        assert re.search(rf'apache2_invoke {action} \$conf', text), text
        assert re.search(r'for conf in tls\s*;', text), text
        assert _run('sh', '-n', path).returncode == 0, f'{script} is no valid shell'


def test_lintian_finds_no_error(deb):
    r = _run('lintian', '--fail-on', 'error', deb['path'], timeout=600)
    errors = [line for line in r.stdout.splitlines() if line.startswith('E:')]
    assert r.returncode == 0 and not errors, r.stdout + r.stderr


def test_serves_https_from_the_unpacked_package(deb, unpacked, apache_factory, ca):
    so = unpacked + f'{MODDIR}/mod_tls.so'
    mods = unpacked + '/etc/apache2/mods-available'
    with open(f'{mods}/tls.load') as f:
        assert f'LoadModule tls_module {MODDIR}/mod_tls.so' in f.read()
    cert, key = ca.issue(['a.test'])
    port = harness.free_port()
    # The package's own module (not build/mod_tls.so) and its tls.conf, as a2enmod would
    # have them loaded.
    server = apache_factory(f"""
LoadModule tls_module {so}
Include {mods}/tls.conf
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
  Header always set X-Tls-Module "%{{SSL_VERSION_INTERFACE}}s"
</VirtualHost>
""", tls=False, log_level='warn tls:info', name='deb')
    server.start()
    r = harness.curl(ca, port, '/index.html', args=['--http1.1', '-D', '-'])
    assert (r.rc, r.status) == (0, 200), r
    head, _, body = r.text.partition('\r\n\r\n')
    assert body == INDEX_HTML, r.text
    version = _make_var('MOD_TLS_VERSION')
    assert f'x-tls-module: mod_tls/{version}\r\n' in head.lower() + '\r\n', head


def test_enabled_without_tls_engine_changes_nothing(deb, unpacked, apache_factory):
    """Right after `apt install` the module is enabled with the package's tls.conf and no
    TLSEngine anywhere: Apache starts without a warning and plain http is served as before."""
    port = harness.free_port()
    server = apache_factory(f"""
LoadModule tls_module {unpacked}{MODDIR}/mod_tls.so
Include {unpacked}/etc/apache2/mods-available/tls.conf
Listen 127.0.0.1:{port}
""", tls=False, log_level='warn tls:info', name='deb-idle')
    server.start()
    status, body = harness.http_get(port, '/index.html')
    assert status == 200, (status, body)
    assert body.decode() == INDEX_HTML

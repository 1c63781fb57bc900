"""Test harness for mod_tls: a throw-away CA, Apache instances in temp dirs,
and thin client wrappers (curl, openssl s_client, Python ssl).

Everything secret (keys) is generated at test time into temp dirs.
"""
import datetime
import ipaddress
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import sys
import socket
import ssl
import subprocess
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

TEST_DIR = os.path.dirname(os.path.abspath(__file__))
TOP_DIR = os.path.dirname(TEST_DIR)
# `make asan` runs the suite against a module built with AddressSanitizer and UBSan
# (TLS_TEST_MODULE), whose runtime must be preloaded into the uninstrumented apache2
# (TLS_TEST_PRELOAD); the sanitizers write their reports into TLS_TEST_SANITIZER_DIR, and
# conftest.py fails the test during which one appeared.
MODULE_PATH = os.environ.get('TLS_TEST_MODULE') or os.path.join(TOP_DIR, 'build', 'mod_tls.so')
SANITIZER_DIR = os.environ.get('TLS_TEST_SANITIZER_DIR')
HTTPD = '/usr/sbin/apache2'
MODULES_DIR = '/usr/lib/apache2/modules'
KEEP_TMP = bool(os.environ.get('TLS_TEST_KEEP_TMP'))
# harness self-check only: run the configs with mod_ssl (see modssl_shim.py)
MODSSL = bool(os.environ.get('TLS_TEST_MODSSL'))

_TMP_DIRS = []


def _httpd_env():
    env = dict(os.environ)
    if SANITIZER_DIR:
        # The children run as www-data and open the report file only when they report.
        os.makedirs(SANITIZER_DIR, exist_ok=True)
        os.chmod(SANITIZER_DIR, 0o1777)
        env['LD_PRELOAD'] = os.environ['TLS_TEST_PRELOAD']
        # Leaks are not reported: apache2 leaves its pools to the process's exit, which
        # LeakSanitizer would count against every module. Memory that grows is what the
        # restart and load checks measure.
        # apache2 puts its own handler on SIGSEGV, which would leave a crash without a report.
        env['ASAN_OPTIONS'] = (f'log_path={SANITIZER_DIR}/asan:detect_leaks=0:'
                               'allow_user_segv_handler=0')
        # UBSan writes to the child's stderr, the error log, whatever its log_path says.
        env['UBSAN_OPTIONS'] = 'print_stacktrace=1'
    return env


HTTPD_ENV = _httpd_env()


def run_httpd(*args, timeout=60, env=None):
    """apache2 with `args` (`-f conf -k graceful`, ...), in the environment the suite runs it
    in, changed by `env` (a dict: a value replaces or adds that variable, None removes it);
    returns the CompletedProcess, output as text."""
    run_env = {k: v for k, v in {**HTTPD_ENV, **(env or {})}.items() if v is not None}
    return subprocess.run([HTTPD, *args], capture_output=True, text=True, timeout=timeout,
                          env=run_env)


def sanitizer_reports():
    """Names of the report files the sanitizers wrote so far (none outside `make asan`)."""
    if not SANITIZER_DIR or not os.path.isdir(SANITIZER_DIR):
        return set()
    return set(os.listdir(SANITIZER_DIR))


def mkdtemp(prefix):
    """A temp dir readable by the (non-root) Apache children."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    _TMP_DIRS.append(d)
    return d


def cleanup_tmp():
    for inst in list(INSTANCES):
        inst.stop()
    if not KEEP_TMP:
        for d in _TMP_DIRS:
            shutil.rmtree(d, ignore_errors=True)


def write_file(path, data, mode=0o644):
    if isinstance(data, str):
        data = data.encode()
    with open(path, 'wb') as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------
# Certificates

def _pem_key(key, passphrase=None):
    enc = (serialization.BestAvailableEncryption(passphrase.encode())
           if passphrase else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8, enc)


def _new_key(key_type):
    if key_type == 'rsa':
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == 'ec':
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(key_type)


class CA:
    """A throw-away certificate authority living in a temp dir."""

    def __init__(self, name='mod_tls test CA'):
        self.dir = mkdtemp('tls-ca-')
        self.key = _new_key('ec')
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder()
                     .subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                    critical=True)
                     .add_extension(x509.KeyUsage(
                         digital_signature=True, key_cert_sign=True, crl_sign=True,
                         content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False,
                         encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_path = write_file(os.path.join(self.dir, 'ca.pem'),
                                    self.cert.public_bytes(serialization.Encoding.PEM))
        self._n = 0
        self._cache = {}

    def issue(self, names, key_type='rsa', days=365, expired=False,
              passphrase=None, tag=None, ips=(), cn=None, client=False,
              ocsp_url=None, with_ca=False):
        """Issue a leaf cert for DNS `names` and IP addresses `ips` (the CN
        is `cn`, else the first of them).

        Returns (cert_path, key_path). `expired=True` makes a cert that
        ended yesterday; a small `days` makes one that expires soon.
        `passphrase` writes the key encrypted (PKCS#8, AES-256). `client`
        makes it for TLS clients. `ocsp_url` names an OCSP responder (AIA).
        `with_ca` writes this CA's certificate after it, in the same file.
        """
        if isinstance(names, str):
            names = [names]
        ips = tuple(ips)
        cn = cn or (list(names) + list(ips))[0]
        ckey = (tuple(names), key_type, days, expired, passphrase, tag, ips, cn, client,
                ocsp_url, with_ca)
        if ckey in self._cache:
            return self._cache[ckey]
        key = _new_key(key_type)
        now = datetime.datetime.now(datetime.timezone.utc)
        if expired:
            not_before = now - datetime.timedelta(days=days + 1)
            not_after = now - datetime.timedelta(days=1)
        else:
            not_before = now - datetime.timedelta(days=1)
            not_after = now + datetime.timedelta(days=days)
        usage = (x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client
                 else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH)
        sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i))
                                                   for i in ips]
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                   .issuer_name(self.cert.subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before)
                   .not_valid_after(not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if ocsp_url:
            builder = builder.add_extension(x509.AuthorityInformationAccess([
                x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.OCSP,
                                       x509.UniformResourceIdentifier(ocsp_url))]),
                critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        self._n += 1
        base = os.path.join(self.dir, f'{self._n:03d}-{cn}-{key_type}')
        pem = cert.public_bytes(serialization.Encoding.PEM)
        if with_ca:
            pem += self.cert.public_bytes(serialization.Encoding.PEM)
        cert_path = write_file(base + '.crt', pem)
        key_path = write_file(base + '.key', _pem_key(key, passphrase))
        self._cache[ckey] = (cert_path, key_path)
        return cert_path, key_path

    def path(self, name):
        return os.path.join(self.dir, name)


def cert_names(pem):
    """(subject CN, [SAN DNS names]) of a PEM certificate (str or bytes)."""
    if isinstance(pem, str):
        pem = pem.encode()
    cert = x509.load_pem_x509_certificate(pem)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        dns = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = []
    return (cns[0].value if cns else None), dns


def pem_of(path):
    with open(path) as f:
        return f.read()


# --------------------------------------------------------------------------
# Ports

_USED_PORTS = set()


# Ports below the ephemeral range; `make test` gives its two side-by-side runs a half each.
PORTS = tuple(int(n) for n in os.environ.get('TLS_TEST_PORTS', '20000-32000').split('-'))


def free_port():
    """A 127.0.0.1 TCP port in PORTS that nobody uses."""
    for _ in range(500):
        port = random.randint(*PORTS)
        if port in _USED_PORTS:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(('127.0.0.1', port))
        except OSError:
            continue
        finally:
            s.close()
        _USED_PORTS.add(port)
        return port
    raise RuntimeError('no free port found')


def wait_port(host, port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


# --------------------------------------------------------------------------
# Document root

INDEX_HTML = '<html><body>mod_tls test index</body></html>\n'

# Lines for a test body (event or worker MPM) that keep the server to one child process, for
# a test that counts per child or relies on what a child keeps: a slower server, under ASan
# say, would otherwise start a second one, and a connection could go to either.
ONE_CHILD = '''ServerLimit 1
StartServers 1
MinSpareThreads 1
MaxSpareThreads 25
MaxRequestWorkers 25
'''

CGI_SHA256 = """#!/bin/sh
echo "Content-Type: text/plain"
echo
sha256sum | cut -d' ' -f1
"""

CGI_ENV = """#!/usr/bin/python3
import json, os, sys
sys.stdout.write("Content-Type: application/json\\r\\n\\r\\n")
sys.stdout.write(json.dumps(dict(os.environ)))
"""


def make_docroot(path):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    write_file(os.path.join(path, 'index.html'), INDEX_HTML)
    write_file(os.path.join(path, 'hello.txt'), 'Hello, TLS!\n')
    cgi = os.path.join(path, 'cgi-bin')
    os.makedirs(cgi, exist_ok=True)
    os.chmod(cgi, 0o755)
    write_file(os.path.join(cgi, 'sha256.sh'), CGI_SHA256, 0o755)
    write_file(os.path.join(cgi, 'env.py'), CGI_ENV, 0o755)
    return path


def make_data_file(docroot, name, size):
    """A file of `size` pseudo-random bytes in docroot; returns its sha256."""
    path = os.path.join(docroot, name)
    if not os.path.exists(path) or os.path.getsize(path) != size:
        rnd = random.Random(size)
        block = rnd.randbytes(1 << 20)
        with open(path + '.part', 'wb') as f:
            left = size
            while left > 0:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n
                block = block[7:] + block[:7]  # vary the content per MiB
        os.chmod(path + '.part', 0o644)
        os.replace(path + '.part', path)
    return sha256_file(path)


# --------------------------------------------------------------------------
# Apache

TEST_MODULE_SRC = os.path.join(TEST_DIR, 'mod_tlstest.c')
TEST_MODULE = os.path.join(TOP_DIR, 'build', 'test', 'mod_tlstest.so')


def test_module():
    """A LoadModule line for mod_tlstest (see its source), built with apxs when missing or
    older than its source."""
    if (not os.path.exists(TEST_MODULE)
            or os.path.getmtime(TEST_MODULE) < os.path.getmtime(TEST_MODULE_SRC)):
        os.makedirs(os.path.dirname(TEST_MODULE), exist_ok=True)
        # apxs leaves its objects next to the source: build from a copy in a folder of this
        # run's own, and put the result in place at once, since make test's two side-by-side
        # runs may both build it while the other loads it.
        out = tempfile.mkdtemp(prefix='tlstest-', dir=os.path.dirname(TEST_MODULE))
        shutil.copy(TEST_MODULE_SRC, out)
        p = subprocess.run(['apxs', '-c', '-o', 'mod_tlstest.so', 'mod_tlstest.c'],
                           cwd=out, capture_output=True, text=True, timeout=120)
        built = os.path.join(out, '.libs', 'mod_tlstest.so')
        if p.returncode != 0 or not os.path.exists(built):
            raise RuntimeError(f'apxs could not build mod_tlstest:\n{p.stdout}{p.stderr}')
        shutil.copy(built, os.path.join(out, 'done.so'))
        os.replace(os.path.join(out, 'done.so'), TEST_MODULE)
        shutil.rmtree(out, ignore_errors=True)
    return f'LoadModule tlstest_module {TEST_MODULE}'


def _builtin_modules():
    """Source names of the modules compiled into HTTPD ('mod_watchdog.c', ...)."""
    try:
        p = subprocess.run([HTTPD, '-l'], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return set()
    return {line.strip() for line in p.stdout.splitlines() if line.strip().endswith('.c')}


BUILTIN_MODULES = _builtin_modules()

# mod_tls rotates its ticket keys in a mod_watchdog task. Debian compiles mod_watchdog into
# apache2, and a LoadModule for a built-in module stops the start: load it only where it is not.
BASE_MODULES = ['authz_core', 'mime', 'dir', 'env', 'headers', 'setenvif',
                'rewrite', 'reqtimeout', 'alias', 'socache_shmcb'] + \
    ([] if 'mod_watchdog.c' in BUILTIN_MODULES else ['watchdog'])

# A crashed child is logged at notice. UBSan (`make asan`) writes its reports to the child's
# stderr, which is the error log.
BAD_LEVELS = re.compile(r'\[(?:[\w_]+:)?(warn|error|crit|alert|emerg)\]'
                        r'|exit signal|runtime error:|Sanitizer')

# Lines that tell of the machine, not of mod_tls: reported once at the end of the run
# (conftest.py), never failing a test. AH01882: mod_ssl runs on an older libssl3 than it was
# built against (scripts/deps.sh upgrades it, as root).
ENVIRONMENT_LINES = {
    'AH01882': 'mod_ssl was built against a newer OpenSSL than the libssl3 installed; '
               'run `scripts/deps.sh test` as root (or apt-get install libssl3 openssl)',
}
ENVIRONMENT_PROBLEMS = {}   # tag -> first line seen

INSTANCES = []   # running instances
STARTED = []     # instances whose error log still needs checking


class ApacheError(Exception):
    pass


class Apache:
    """One httpd instance with its own ServerRoot in a temp dir.

    `body` is appended to the generated base config. `expect` is a list of
    regexes for [warn]/[error] lines this instance is known to log; they
    are not reported by the error log check. `modssl=True` serves a mod_tls body with
    mod_ssl instead (modssl_shim), for a side-by-side comparison; by default only in the
    TLS_TEST_MODSSL self-check. `env`: environment variables for this instance alone (e.g.
    SSLKEYLOGFILE; None removes one), on top of the suite's (harness.HTTPD_ENV, with its
    sanitizer settings), for every apache2 run of it.
    """

    def __init__(self, body, docroot, mpm='event', tls=True, ssl=False,
                 http2=None, cgi=True, log_level=None,
                 expect=(), name='httpd', modssl=None, env=None):
        self.dir = mkdtemp(f'tls-{name}-')
        self.conf_path = os.path.join(self.dir, 'httpd.conf')
        self.error_log = os.path.join(self.dir, 'error.log')
        self.access_log = os.path.join(self.dir, 'access.log')
        self.pid_file = os.path.join(self.dir, 'httpd.pid')
        self.docroot = docroot
        self.mpm = mpm
        self.expect = list(expect)
        self.env = dict(env or {})
        self.checked_offset = 0
        self.pid = None
        if http2 is None:
            http2 = mpm != 'prefork'
        if tls and (MODSSL if modssl is None else modssl):
            import modssl_shim
            body = modssl_shim.translate(body, self.dir)
            tls, ssl = False, True
            log_level = log_level or 'warn ssl:info'
        if log_level is None:
            log_level = 'warn tls:info' if tls else 'warn'
        modules = [f'mpm_{mpm}'] + BASE_MODULES
        if http2:
            modules.append('http2')
        if cgi:
            modules.append('cgid')
        if ssl:
            modules.append('ssl')
        lines = [
            f'ServerRoot "{self.dir}"',
            f'PidFile "{self.pid_file}"',
            f'DefaultRuntimeDir "{self.dir}"',
            f'Mutex file:{self.dir} default',
            f'ErrorLog "{self.error_log}"',
            f'LogLevel {log_level}',
            'User www-data',
            'Group www-data',
            'ServerName localhost',
        ]
        for m in modules:
            lines.append(f'LoadModule {m}_module {MODULES_DIR}/mod_{m}.so')
        if tls:
            lines.append(f'LoadModule tls_module {MODULE_PATH}')
        lines += [
            'TypesConfig /etc/mime.types',
            f'DocumentRoot "{docroot}"',
            'DirectoryIndex index.html',
            f'<Directory "{docroot}">',
            '  Options +ExecCGI',
            '  AllowOverride None',
            '  Require all granted',
            '</Directory>',
            f'ScriptAlias /cgi-bin/ "{docroot}/cgi-bin/"',
            'LogFormat "%h %l %u %t \\"%r\\" %>s %b" common',
            f'CustomLog "{self.access_log}" common',
            'Timeout 60',
            'KeepAliveTimeout 5',
            'GracefulShutdownTimeout 3',
        ]
        if cgi:
            lines.append(f'ScriptSock "{self.dir}/cgid.sock"')
        if mpm in ('event', 'worker'):
            lines += ['StartServers 1', 'ServerLimit 2', 'ThreadsPerChild 25',
                      'MinSpareThreads 5', 'MaxSpareThreads 50',
                      'MaxRequestWorkers 50']
        else:
            # enough idle processes that parallel clients need not wait
            # for prefork's (slow) spawning
            lines += ['StartServers 10', 'MinSpareServers 10', 'MaxSpareServers 12',
                      'ServerLimit 20', 'MaxRequestWorkers 20']
        lines.append('# ---- test body ----')
        self.body = body
        self.config = '\n'.join(lines) + '\n' + body.strip('\n') + '\n'
        write_file(self.conf_path, self.config)
        self.listens = []
        for m in re.finditer(r'^\s*Listen\s+(\S+)', body, re.M):
            addr = m.group(1)
            if ':' in addr:
                host, port = addr.rsplit(':', 1)
            else:
                host, port = '127.0.0.1', addr
            self.listens.append((host.strip('[]'), int(port)))

    # -- config helpers

    def line_of(self, text, nth=0):
        """1-based line number in httpd.conf of the nth line containing text."""
        hits = [i + 1 for i, line in enumerate(self.config.splitlines())
                if text in line]
        if len(hits) <= nth:
            raise KeyError(f'{text!r} not in config')
        return hits[nth]

    def configtest(self):
        p = run_httpd('-f', self.conf_path, '-t', env=self.env)
        return p.returncode, p.stdout + p.stderr

    def signal(self, how):
        """`apache2 -k how` (graceful, restart, ...) for this instance; a refusal fails."""
        p = run_httpd('-f', self.conf_path, '-k', how, timeout=30, env=self.env)
        assert p.returncode == 0, p.stdout + p.stderr

    # -- lifecycle

    def start(self, check=True):
        """Start the server. With check=False returns (rc, output) and does
        not raise when the start fails (output = stderr + error log)."""
        INSTANCES.append(self)
        if self not in STARTED:
            STARTED.append(self)
        p = run_httpd('-f', self.conf_path, '-k', 'start', env=self.env)
        out = p.stdout + p.stderr
        ok = p.returncode == 0
        if ok:
            # the daemon writes its pid file after detaching
            deadline = time.time() + 10
            while time.time() < deadline and self.read_pid() is None:
                if not self._startup_failed():
                    time.sleep(0.05)
                else:
                    break
            self.pid = self.read_pid()
            ok = self.pid is not None
            for host, port in self.listens:
                if not ok:
                    break
                ok = wait_port(host, port, 10)
        if not ok:
            # The daemon may have died after detaching; make sure nothing
            # is left running, and report everything we know.
            self.stop()
            out += self.read_log()
            if check:
                raise ApacheError(f'apache failed to start (rc={p.returncode}):\n{out}')
        return (0 if ok else (p.returncode or 1)), out

    def _startup_failed(self):
        log = self.read_log()
        return 'AH00016' in log or 'AH00014' in log

    def read_pid(self):
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def pid_alive(pid):
        try:
            with open(f'/proc/{pid}/stat') as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
            return state != 'Z'
        except (OSError, IndexError):
            return False

    def children(self):
        """Pids of processes whose parent is the Apache parent."""
        kids = []
        if not self.pid:
            return kids
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                with open(f'/proc/{d}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
                if int(fields[1]) == self.pid and fields[0] != 'Z':
                    kids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
        return kids

    def alive(self):
        return bool(self.pid) and self.pid_alive(self.pid)

    def children_rss_kb(self):
        """RSS of the parent's children summed, in kB (children that end meanwhile are
        left out)."""
        total = 0
        for pid in self.children():
            try:
                total += rss_kb(pid)
            except OSError:
                pass
        return total

    def own_pids(self):
        """Pids of all processes running with this instance's config file."""
        pids = []
        needle = self.conf_path.encode()
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                with open(f'/proc/{d}/cmdline', 'rb') as f:
                    if needle in f.read().split(b'\0'):
                        pids.append(int(d))
            except OSError:
                pass
        return [p for p in pids if self.pid_alive(p)]

    def wait_md_rest(self, timeout=20):
        """Until none of mod_md's watchdogs (LogLevel md:debug) is in the middle of a run;
        at most `timeout` seconds. False if one still was.

        They run in a thread of one child that httpd does not join when the child exits:
        stopped in the middle of a run, the thread goes on using OpenSSL after exit() has
        cleaned it up, and the child dies of SIGSEGV. Seen with mod_ssl alone as with
        mod_tls (stopping mod_md servers while they obtain certificates: 9 crashes in 30
        stops with mod_ssl); in the cores, the main thread is in exit() and the watchdog in
        libcrypto under mod_md."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            log = self.read_log()
            if all(_last(start, log) <= _last(end, log) for start, end in MD_WATCHDOG_RUNS):
                return True
            time.sleep(0.1)
        return False

    @classmethod
    def stop_pid(cls, pid, timeout=10):
        """Stops the httpd whose parent is `pid`: a graceful stop (as `apache2 -k
        graceful-stop`), then SIGTERM if it hangs. An immediate SIGTERM makes the event MPM
        close sockets that workers are still closing: httpd itself then crashes now and then
        (seen without mod_tls too), which the log check would blame on the test."""
        for sig in (signal.SIGWINCH, signal.SIGTERM):
            if not pid or not cls.pid_alive(pid):
                break
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            deadline = time.time() + timeout
            while time.time() < deadline and cls.pid_alive(pid):
                time.sleep(0.05)

    def stop(self, timeout=10):
        """stop_pid(), then whatever is left of this instance is killed. A server with
        mod_md is first left to finish what its watchdogs do (wait_md_rest)."""
        pid = self.read_pid() or self.pid
        if pid and self.pid_alive(pid) and '/mod_md.so' in self.body \
                and not self.wait_md_rest():
            # shown with the test's output: a crash at this stop is then no mystery
            print(f'{self.dir}: a watchdog of mod_md was still in a run after 20 s; '
                  'stopping anyway', file=sys.stderr)
        self.stop_pid(pid, timeout)
        # whatever is left of this instance (a hung parent, orphaned
        # children or cgid daemon) is killed
        for _ in range(50):
            left = self.own_pids()
            if not left:
                break
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        if self in INSTANCES:
            INSTANCES.remove(self)
        self.pid = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- logs

    def read_log(self, offset=0):
        try:
            with open(self.error_log, errors='replace') as f:
                f.seek(offset)
                return f.read()
        except OSError:
            return ''

    def log_lines(self, offset=0):
        return self.read_log(offset).splitlines()

    def wait_log(self, pattern, offset=0, timeout=5.0, count=1):
        """Error log lines matching regex `pattern` since `offset`, once there are at least
        `count`; fewer after `timeout` fail the test (see wait_lines)."""
        return wait_lines(self.error_log, pattern, offset, timeout, count)

    def consume_log(self):
        """Mark everything logged so far as checked."""
        self.checked_offset = self.log_size()

    def log_size(self):
        try:
            return os.path.getsize(self.error_log)
        except OSError:
            return 0

    def bad_log_lines(self, allowed=(), offset=None):
        """warn-or-worse lines since offset (default: since the last check)
        not matching one of the allowed regexes."""
        if offset is None:
            offset = self.checked_offset
        pats = [re.compile(p) for p in list(self.expect) + list(allowed)]
        bad = []
        for line in self.log_lines(offset):
            if not BAD_LEVELS.search(line):
                continue
            if any(p.search(line) for p in pats):
                continue
            tag = next((t for t in ENVIRONMENT_LINES if t in line), None)
            if tag:
                ENVIRONMENT_PROBLEMS.setdefault(tag, line)
                continue
            bad.append(line)
        return bad

    def read_access_log(self):
        try:
            with open(self.access_log, errors='replace') as f:
                return f.read()
        except OSError:
            return ''


def conf_location_re(conf_path, line):
    """Regex matching a reference to conf_path line `line`, either as
    'httpd.conf:NN' or Apache's 'line NN of .../httpd.conf'."""
    name = re.escape(os.path.basename(conf_path))
    return re.compile(rf'{name}:{line}\b|line {line} of \S*{name}')


def syscalls(pids, field):
    """A counter of /proc/PID/io (`syscr`: read calls, `syscw`: write calls) summed over
    `pids`; processes that ended meanwhile are left out."""
    total = 0
    for pid in pids:
        try:
            with open(f'/proc/{pid}/io') as f:
                total += int(next(line for line in f if line.startswith(field + ':')).split()[1])
        except (OSError, StopIteration):
            pass
    return total


class SyscallTrace:
    """strace of every thread of the processes `pids`, for the system calls `calls` (e.g.
    'read,writev'), one file per thread in `directory`. As a context manager it is attached
    on entry (the test is skipped where ptrace is not allowed) and stopped by its pid on
    exit; then threads() gives each thread's calls in order as (name, fd, result, bytes
    offered: the iov_len summed, for writev)."""

    CALL = re.compile(r'^(\w+)\((\d+),(.*)=\s+(-?\d+)')
    IOV_LEN = re.compile(r'iov_len=(\d+)')

    def __init__(self, pids, calls, directory):
        self.pids, self.calls = pids, calls
        self.prefix = os.path.join(directory, 'strace')
        self.directory = directory
        self.proc = None

    def _files(self):
        return [os.path.join(self.directory, n) for n in os.listdir(self.directory)
                if n.startswith('strace.')]

    def _unattached(self):
        """Threads of the traced processes that strace has no file for yet."""
        tids = set()
        for p in self.pids:
            try:
                tids.update(os.listdir(f'/proc/{p}/task'))
            except OSError:
                pass
        return tids - {os.path.basename(f).split('.', 1)[1] for f in self._files()}

    def __enter__(self):
        import pytest
        for f in self._files():
            os.unlink(f)
        self.proc = subprocess.Popen(
            ['strace', '-f', '-ff', '-qq', '-s', '0', '-e', 'abbrev=none',
             '-e', f'trace={self.calls}', '-o', self.prefix]
            + [a for p in self.pids for a in ('-p', str(p))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # strace opens a thread's file when it has attached to it: wait for all of them
            # (a loaded machine can take a while)
            deadline = time.monotonic() + 10
            while (self.proc.poll() is None and time.monotonic() < deadline
                   and self._unattached()):
                time.sleep(0.05)
            if self.proc.poll() is not None:
                pytest.skip('strace cannot trace the server here (ptrace not allowed?)')
            left = self._unattached()
            assert not left, f'strace had not attached to threads {sorted(left)} after 10 s'
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return False

    def threads(self):
        for name in self._files():
            with open(name) as fh:
                calls = [self.CALL.match(line) for line in fh]
            yield [(m.group(1), int(m.group(2)), int(m.group(4)),
                    sum(int(n) for n in self.IOV_LEN.findall(m.group(3)))) for m in calls if m]


def rss_kb(pid):
    """VmRSS of a process in kB."""
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise AssertionError(f'no VmRSS for {pid}')


# Why the RSS checks (test_30, test_33's soak) stand down under `make asan`: there the parent
# climbs by 150-300 kB at every graceful restart (measured: 148 kB with ASan's quarantine off,
# ~300 kB with it on; most of it outside the shadow memory, the module unloaded each time),
# while the plain build stays flat. That is the sanitizer's own bookkeeping for a module loaded
# anew at every cycle, not a figure for mod_tls.
SANITIZER_RSS_SKIP = ('RSS growth is not checked under AddressSanitizer: the parent climbs by '
                      '150-300 kB per graceful restart with the instrumented module, flat '
                      'without; everything else in this test was checked')


def capped_growth_kb(samples, step_cap_kb):
    """How much a series of RSS samples (kB) climbed, each rise from one sample to the
    next counted for at most step_cap_kb: a leak climbs page by page, sample after sample,
    while an allocator growing its heap once by a larger step is no trend. Returns (growth,
    number of rises)."""
    rises = [b - a for a, b in zip(samples, samples[1:]) if b > a]
    return sum(min(r, step_cap_kb) for r in rises), len(rises)


# --------------------------------------------------------------------------
# Clients

class CurlResult:
    def __init__(self, rc, body, stderr, infos):
        self.rc = rc
        self.body = body
        self.stderr = stderr
        self.infos = infos
        self.info = infos[-1] if infos else {}

    @property
    def status(self):
        return self.info.get('http_code') or self.info.get('response_code')

    @property
    def http_version(self):
        return self.info.get('http_version')

    @property
    def text(self):
        return self.body.decode(errors='replace')

    def __repr__(self):
        return (f'CurlResult(rc={self.rc}, status={self.status}, '
                f'version={self.http_version}, stderr={self.stderr.strip()!r})')


_CURL_SEP = b'\n@@CURL-INFO@@'


def curl(ca, port, path='/', host='a.test', args=(), urls=None, timeout=60,
         input=None):
    """Run curl against https://host:port/path with host resolved to
    127.0.0.1 and the test CA trusted. Extra curl options in `args`."""
    if urls is None:
        urls = [f'https://{host}:{port}{path}']
    cmd = ['curl', '-sS', '--resolve', f'{host}:{port}:127.0.0.1',
           '--cacert', ca.cert_path, '--max-time', str(timeout),
           '-w', _CURL_SEP.decode() + '%{json}'] + list(args) + list(urls)
    p = subprocess.run(cmd, capture_output=True, input=input, timeout=timeout + 30)
    parts = p.stdout.split(_CURL_SEP)
    bodies = [parts[0]]
    infos = []
    dec = json.JSONDecoder()
    for part in parts[1:]:
        text = part.decode('latin-1')
        obj, end = dec.raw_decode(text)
        infos.append(obj)
        bodies.append(text[end:].encode('latin-1'))
    body = bodies[0] if len(urls) == 1 else b''.join(bodies)
    return CurlResult(p.returncode, body, p.stderr.decode(errors='replace'), infos)


class SClientResult:
    def __init__(self, rc, stdout, stderr):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        out = stdout

        def find(rx, text=out):
            m = re.search(rx, text, re.M)
            return m.group(1) if m else None
        m = re.search(r'^New, (\S+), Cipher is (\S+)', out, re.M)
        self.protocol = m.group(1) if m else None
        self.cipher = m.group(2) if m else None
        if self.cipher == '(NONE)':
            self.protocol = self.cipher = None
        self.subject = find(r'^subject=(.*)$')
        self.pubkey_bits = find(r'^Server public key is (\d+) bit')
        self.peer_sig_type = find(r'^Peer signature type: (\S+)')
        self.alpn = find(r'^ALPN protocol: (\S+)')
        self.verify_code = find(r'Verify return code: (\d+)')
        m = re.search(r'-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----',
                      out, re.S)
        self.cert_pem = m.group(0) if m else None

    @property
    def handshake_ok(self):
        return self.protocol is not None

    @property
    def names(self):
        return cert_names(self.cert_pem) if self.cert_pem else (None, [])

    def __repr__(self):
        return (f'SClientResult(rc={self.rc}, protocol={self.protocol}, '
                f'cipher={self.cipher}, subject={self.subject}, '
                f'stderr={self.stderr.strip()[-500:]!r})')


def s_client(ca, port, servername='a.test', args=(), input=b'', timeout=20,
             host='127.0.0.1', verify=True):
    """openssl s_client against host:port. servername=None sends no SNI.
    `input` is written to the connection; with input the server's answer
    is read until it closes (-ign_eof)."""
    cmd = ['openssl', 's_client', '-connect', f'{host}:{port}',
           '-CAfile', ca.cert_path]
    if verify:
        cmd.append('-verify_return_error')
    if servername:
        cmd += ['-servername', servername]
    else:
        cmd += ['-noservername']
    if input:
        cmd.append('-ign_eof')
    cmd += list(args)
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.run(cmd, capture_output=True, input=input, timeout=timeout)
    return SClientResult(p.returncode, p.stdout.decode(errors='replace'),
                         p.stderr.decode(errors='replace'))


def ssl_context(ca, min_version=None, max_version=None, alpn=None,
                ciphers=None, check_hostname=True, report_eof=False):
    """A client context trusting `ca`. With report_eof, a TCP close without close_notify
    is reported (read_until_close: 'eof') instead of passing for a clean end."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca.cert_path)
    ctx.check_hostname = check_hostname
    if report_eof:
        ctx.options &= ~getattr(ssl, 'OP_IGNORE_UNEXPECTED_EOF', 0)
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def tls_connect(ca, port, servername='a.test', timeout=10, host='127.0.0.1',
                **ctx_args):
    """A connected, handshaken ssl.SSLSocket to host:port."""
    if not servername:
        ctx_args.setdefault('check_hostname', False)
    ctx = ssl_context(ca, **ctx_args)
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=servername or None)
    except Exception:
        raw.close()
        raise


def tls_info(ca, port, servername='a.test', **kw):
    """Handshake and return version, cipher, alpn and the peer cert names."""
    with tls_connect(ca, port, servername, **kw) as s:
        der = s.getpeercert(binary_form=True)
        pem = ssl.DER_cert_to_PEM_cert(der)
        cn, dns = cert_names(pem)
        return {'version': s.version(), 'cipher': s.cipher()[0],
                'alpn': s.selected_alpn_protocol(), 'cn': cn, 'names': dns,
                'cert_pem': pem}


def request_until_close(ca, port, request, servername='a.test', timeout=15, **ctx_args):
    """Send raw request bytes over TLS and read until the server closes.
    Returns (data, clean) where clean says the server ended the TLS stream
    with a close_notify alert before closing the TCP connection. An alert from
    the server raises its ssl.SSLError; no close within `timeout` fails."""
    ctx = ssl_context(ca, report_eof=True, **ctx_args)
    raw = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    with ctx.wrap_socket(raw, server_hostname=servername) as s:
        s.sendall(request)
        got = read_until_close(s, timeout)
    if got.end == 'alert':
        raise got.error
    return got.data, got.end == 'close'


# --------------------------------------------------------------------------
# Raw clients: bytes on a socket, ClientHellos, waiting for log lines.
#
# The rule for every helper here: a test must be able to fail. A server that neither answers
# nor closes within the timeout fails the test (AssertionError); it is never taken for an
# answer or for a refusal. What did arrive is returned as it is, an empty reply as b'', for
# the test to judge: an empty reply is a failure unless silence is what the test is about.

class Closed:
    """What read_until_close() received, and how the connection ended (`end`):
    'close'  the peer closed: a TCP FIN, on TLS a close_notify (or a bare FIN when the
             context does not report those, see ssl_context(report_eof=...));
    'eof'    TLS only: TCP closed without close_notify (report_eof contexts);
    'reset'  a TCP reset;
    'alert'  TLS only: the peer sent a fatal alert, or a record could not be read;
             `error` is the ssl.SSLError."""

    def __init__(self, data, end, error=None):
        self.data = data
        self.end = end
        self.error = error

    def __repr__(self):
        return f'Closed(end={self.end!r}, error={self.error}, data={self.data[:200]!r})'


def tcp_table():
    """The IPv4 TCP sockets, from /proc/net/tcp: (local port, remote port, send queue,
    receive queue, inode) each. A connection still in a listener's accept queue has inode 0:
    no process holds it yet."""
    rows = []
    with open('/proc/net/tcp') as f:
        next(f)
        for line in f:
            parts = line.split()
            local, remote = (int(x.split(':')[1], 16) for x in parts[1:3])
            tx, rx = (int(x, 16) for x in parts[4].split(':'))
            rows.append((local, remote, tx, rx, int(parts[9])))
    return rows


def wait_accepted(port, peer_port, timeout=10.0):
    """Waits until a process has accepted the connection from 127.0.0.1:peer_port to the
    server's `port`; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(row[:2] == (port, peer_port) and row[4] for row in tcp_table()):
            return
        time.sleep(0.05)
    raise AssertionError(f'the connection from port {peer_port} to {port} was not accepted '
                         f'within {timeout}s')


def read_until_close(sock, timeout=15.0):
    """Everything `sock` (a socket or an ssl.SSLSocket) receives until the peer closes the
    connection, as a Closed. A peer still sending, or silent, after `timeout` seconds fails
    with an AssertionError naming what had arrived."""
    deadline = time.monotonic() + timeout
    data = b''
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f'no close from the server within {timeout}s; '
                                 f'got {len(data)} bytes: {data[:200]!r}')
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            continue                 # the deadline check above fails the test
        except ssl.SSLZeroReturnError:
            return Closed(data, 'close')
        except ssl.SSLEOFError:
            return Closed(data, 'eof')
        except ssl.SSLError as e:
            if 'UNEXPECTED_EOF' in str(e):
                return Closed(data, 'eof')
            return Closed(data, 'alert', e)
        except ConnectionResetError:
            return Closed(data, 'reset')
        if not chunk:
            return Closed(data, 'close')
        data += chunk


def exchange(port, data=b'', timeout=10.0, host='127.0.0.1'):
    """Connects to host:port over plain TCP, sends `data` (bytes, or a list of byte strings
    sent one by one), then reads until the server closes: a Closed. The server may close or
    reset while the data is still going out; what it sent is read all the same."""
    chunks = [data] if isinstance(data, (bytes, bytearray)) else list(data)
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        try:
            for chunk in chunks:
                if chunk:
                    s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_close(s, timeout)
    finally:
        s.close()


def client_hello(ca, servername='a.test', **ctx_args):
    """The bytes of a real ClientHello, one TLS record, as Python's ssl (OpenSSL) sends it
    for `servername` (made with memory BIOs: nothing is connected)."""
    ctx = ssl_context(ca, **ctx_args)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=servername)
    try:
        obj.do_handshake()
        raise AssertionError('a handshake finished without a server')
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[0] == 0x16 and hello[5] == 1, hello[:10]
    assert len(hello) == 5 + int.from_bytes(hello[3:5], 'big'), 'more than one record'
    return hello


def hello_extensions(hello):
    """Splits a ClientHello record (see client_hello) into the handshake body before its
    extensions (version, random, session id, cipher suites, compression) and the list of
    extensions as (type, data) pairs, for hello_with_extensions() to put together again."""
    body = hello[9:]
    pos = 2 + 32                                            # version, random
    pos += 1 + body[pos]                                    # session id
    pos += 2 + int.from_bytes(body[pos:pos + 2], 'big')     # cipher suites
    pos += 1 + body[pos]                                    # compression methods
    ext_len = int.from_bytes(body[pos:pos + 2], 'big')
    exts, i, out = body[pos + 2:pos + 2 + ext_len], 0, []
    while i < len(exts):
        typ, n = int.from_bytes(exts[i:i + 2], 'big'), int.from_bytes(exts[i + 2:i + 4], 'big')
        out.append((typ, exts[i + 4:i + 4 + n]))
        i += 4 + n
    return body[:pos], out


def hello_with_extensions(head, extensions):
    """A ClientHello record from a body head and (type, data) extensions, every length
    computed anew (the inverse of hello_extensions)."""
    exts = b''.join(typ.to_bytes(2, 'big') + len(d).to_bytes(2, 'big') + d
                    for typ, d in extensions)
    body = head + len(exts).to_bytes(2, 'big') + exts
    hs = b'\x01' + len(body).to_bytes(3, 'big') + body
    return b'\x16\x03\x01' + len(hs).to_bytes(2, 'big') + hs


def lines_matching(path, pattern, offset=0):
    """The lines of the file at `path`, from byte `offset` on, that match regex `pattern`."""
    rx = re.compile(pattern)
    try:
        with open(path, errors='replace') as f:
            f.seek(offset)
            text = f.read()
    except OSError:
        return []
    return [line for line in text.splitlines() if rx.search(line)]


def wait_lines(path, pattern, offset=0, timeout=5.0, count=1):
    """Waits until the file at `path` (an error log, a CustomLog) holds, from byte `offset` on,
    at least `count` lines matching regex `pattern`, and returns all such lines. Fewer after
    `timeout` seconds fail with an AssertionError showing what the file holds since offset.
    (To check that something is *not* logged, use lines_matching once the server is known
    to be done with the connection.)"""
    deadline = time.monotonic() + timeout
    while True:
        lines = lines_matching(path, pattern, offset)
        if len(lines) >= count:
            return lines
        if time.monotonic() > deadline:
            try:
                with open(path, errors='replace') as f:
                    f.seek(offset)
                    text = f.read()
            except OSError as e:
                text = f'({e})'
            raise AssertionError(f'{len(lines)} of {count} lines matching {pattern!r} in '
                                 f'{path} after {timeout}s; since offset {offset}:\n{text}')
        time.sleep(0.02)


# mod_md's watchdog runs (renewal, OCSP stapling) as its debug lines mark them: a start or
# another round, then the next run planned (after an error too) or the watchdog stopping.
MD_WATCHDOG_RUNS = ((re.compile(r'AH1005[45]: '), re.compile(r'AH10107: |AH10057: |AH10058: ')),
                    (re.compile(r'AH1019[78]: '), re.compile(r'AH10199: |AH10200: ')))


def _last(rx, text):
    """Where the last match of `rx` in `text` ends, -1 without one."""
    end = -1
    for m in rx.finditer(text):
        end = m.end()
    return end


CRASH_LINES = re.compile(r'exit signal|AH00052|[Ss]egmentation')


def assert_unharmed(server, ca, pid, offset, allowed=()):
    """What a server must show after a hostile client: an HTTP/1.1 and an HTTP/2 request
    served with the right body, the same parent (`pid`, read before), children alive, no
    crashed child and no [error] or worse line since `offset` but those matching `allowed`.
    (Warn lines fail the test anyway: conftest.py.) `server` is an Apache with a `port`."""
    status, _, body = https_get(ca, server.port, '/hello.txt')
    assert (status, body) == (200, b'Hello, TLS!\n')
    r = curl(ca, server.port, '/hello.txt', args=['--http2'])
    assert (r.rc, r.status, r.http_version, r.body) == (0, 200, '2', b'Hello, TLS!\n'), r
    assert server.read_pid() == pid
    assert server.alive()
    assert server.children(), 'no child processes left'
    log = server.read_log()
    assert not CRASH_LINES.search(log), log
    bad = [line for line in server.log_lines(offset)
           if re.search(r'\[(\w+:)?(error|crit|alert|emerg)\]', line)
           and not any(re.search(p, line) for p in allowed)]
    assert not bad, '\n'.join(bad)


class HTTPSConn(http.client.HTTPSConnection):
    """http.client over TLS to 127.0.0.1:port with a chosen SNI name,
    independent of the Host header."""

    def __init__(self, ca, port, servername='a.test', timeout=30, **ctx_args):
        if not servername:
            ctx_args.setdefault('check_hostname', False)
        ctx = ssl_context(ca, **ctx_args)
        super().__init__('127.0.0.1', port, timeout=timeout, context=ctx)
        self._sni = servername

    def connect(self):
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self._sni or None)


def https_get(ca, port, path='/', servername='a.test', host=None, headers=None,
              **ctx_args):
    """(status, headers dict, body) of one GET; Host defaults to servername."""
    conn = HTTPSConn(ca, port, servername, **ctx_args)
    try:
        hdrs = dict(headers or {})
        hdrs['Host'] = host or servername or '127.0.0.1'
        conn.request('GET', path, headers=hdrs)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def http_get(port, path='/', host='127.0.0.1', hostname='localhost', timeout=10):
    """A plain-HTTP GET (no TLS)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request('GET', path, headers={'Host': hostname})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()

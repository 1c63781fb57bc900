#!/usr/bin/python3
"""Load test: the same Apache serving https with mod_tls, with mod_ssl, and plain http.

`make loadtest` runs it (LOADTEST=short or `make loadtest-short` for the quick version).
Three Apache instances run side by side, same binary, same MPM settings, same files and
the same certificates; only the TLS module differs (the plain one is the ceiling). Every
measurement runs once per server in turn (mod_tls, mod_ssl, plain; mod_tls, mod_ssl,
plain; ...) for several rounds. Scenario 9 (proxying) has servers of its own: three
mod_tls fronts that differ only in how they reach one https backend (mod_tls'
TLSProxyEngine, mod_ssl's SSLProxyEngine, plain http), and that backend. Scenario 10
(OCSP stapling through mod_md) has two mod_tls servers of its own, stapling on and off, and
an OCSP responder on 127.0.0.1 (test/ocsp_responder.py). The report gives
the median and the spread of each, the ratio mod_tls / mod_ssl and whether it meets its
target, and says where a number should not be trusted (failed or short responses, a load generator that limited the number,
other processes taking CPU time on the shared machine).

Output: a table on the terminal, build/loadtest/report.md, build/loadtest/ratios.png,
build/loadtest/results.json (every sample). --update-docs puts the report into
docs/performance.md.

Load generators: h2load (keep-alive, big files, the mix) and loadtest/hsdrive.c (one
request per connection, with or without resumption: h2load keeps its connections alive).
Memory is measured with an asyncio client in this file.

Scenarios 7 and 8 also get a column "rustls alone + plain HTTP": the server-side cost of
rustls by itself (build/loadtest/rustls-alone.json, written by `make bench-rustls`, which
`make loadtest` runs first) added to plain HTTP's, the floor for any Apache module on rustls.
"""
import argparse
import asyncio
import datetime
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
OUT = os.path.join(TOP, 'build', 'loadtest')
MODULE = os.path.join(TOP, 'build', 'mod_tls.so')
DRIVER_SRC = os.path.join(HERE, 'hsdrive.c')
DRIVER = os.path.join(OUT, 'hsdrive')
DOCROOT = os.path.join(OUT, 'docroot')
DOCS = os.path.join(TOP, 'docs', 'performance.md')
RUSTLS_ALONE = os.path.join(OUT, 'rustls-alone.json')
HTTPD = '/usr/sbin/apache2'
MODDIR = '/usr/lib/apache2/modules'
H2LOAD = 'h2load'
GNUPLOT = 'gnuplot'
HOST = 'a.test'                      # ServerName and SNI; clients connect to 127.0.0.1
NCPU = os.cpu_count() or 1
CLK_TCK = os.sysconf('SC_CLK_TCK')
VARIANTS = ('mod_tls', 'mod_ssl', 'plain')
KEYS = ('ecdsa', 'rsa')
KEY_LABEL = {'ecdsa': 'ECDSA P-256', 'rsa': 'RSA 2048'}
MIB = 1 << 20

# A generator is "saturated" when it used at least this share of the CPUs it can use.
SATURATED = 0.9
# Other processes on the (shared) machine disturbed a run when they used this many cores.
NOISE = 0.25

PROFILES = {
    # ~12.5-13.5 minutes on 2 cores
    'full': dict(rounds=3, duration=3.5, warmup=1.0, hs_threads=16,
                 ka_conns=(1, 10, 100), h2_streams=10, big_conns=2,
                 mix_conns=2, mix_requests=2000, idle_conns=400, active_conns=50,
                 proxy_conns=10),
    # ~3.5 minutes: the same scenarios, short runs, keep-alive with 10 connections only
    'short': dict(rounds=3, duration=1.0, warmup=0.3, hs_threads=16,
                  ka_conns=(10,), h2_streams=10, big_conns=2,
                  mix_conns=2, mix_requests=300, idle_conns=200, active_conns=25,
                  proxy_conns=10),
}

MIX_FILES = 1000
MIX_MIN, MIX_MAX = 1024, 10 * MIB
SMALL = 1024
BIG = 10 * MIB
MID = MIB                            # the proxy scenario's big response (1m.bin)


def log(msg=''):
    print(msg, flush=True)


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kw)


# --------------------------------------------------------------------------
# Files, certificates, ports

def mix_sizes():
    """1,000 sizes from 1 KiB to 10 MiB, log-uniform (many small files, a few big
    ones), in a fixed pseudo-random order: f0000 is 1 KiB, f0001 10 MiB."""
    rnd = random.Random(1000)
    sizes = [int(MIX_MIN * (MIX_MAX / MIX_MIN) ** rnd.random()) for _ in range(MIX_FILES)]
    sizes[0], sizes[1] = MIX_MIN, MIX_MAX
    return sizes


def write_data(path, size, seed, block):
    with open(path + '.part', 'wb') as f:
        left, off = size, seed % len(block)
        while left > 0:
            chunk = block[off:off + left]
            f.write(chunk)
            left -= len(chunk)
            off = 0
    os.chmod(path + '.part', 0o644)
    os.replace(path + '.part', path)


def make_docroot():
    """build/loadtest/docroot: 1k.bin, 10m.bin and mix/fNNNN.bin (about 1.2 GB, made
    once and kept), readable by the www-data children."""
    sizes = mix_sizes()
    stamp = os.path.join(DOCROOT, '.stamp')
    want = json.dumps({'small': SMALL, 'big': BIG, 'mix': sizes})
    try:
        with open(stamp) as f:
            if f.read() == want:
                return sizes
    except OSError:
        pass
    log(f'loadtest: writing the test files into {DOCROOT} (once)')
    os.makedirs(os.path.join(DOCROOT, 'mix'), exist_ok=True)
    for d in (OUT, DOCROOT, os.path.join(DOCROOT, 'mix')):
        os.chmod(d, 0o755)
    block = random.Random(7).randbytes(16 * MIB)
    write_data(os.path.join(DOCROOT, '1k.bin'), SMALL, 1, block)
    write_data(os.path.join(DOCROOT, '10m.bin'), BIG, 2, block)
    for i, size in enumerate(sizes):
        write_data(os.path.join(DOCROOT, 'mix', f'f{i:04d}.bin'), size, i * 4099, block)
    with open(stamp, 'w') as f:
        f.write(want)
    return sizes


def make_mid_file():
    """build/loadtest/docroot/1m.bin for the proxy scenario (kept, like the others)."""
    path = os.path.join(DOCROOT, '1m.bin')
    if not os.path.exists(path) or os.path.getsize(path) != MID:
        write_data(path, MID, 3, random.Random(7).randbytes(2 * MIB))


def openssl(*args):
    p = run(['openssl', *args])
    if p.returncode != 0:
        raise RuntimeError(f'openssl {" ".join(args)} failed:\n{p.stderr}')


def ca_of(d):
    """The CA certificate make_certs(d) made."""
    return os.path.join(d, 'ca.crt')


def make_certs(d):
    """A throw-away CA and two server certificates for a.test from it, ECDSA P-256 and
    RSA 2048, made with the openssl command line. Returns {key: (cert, key)}."""
    ca_key, ca_crt = os.path.join(d, 'ca.key'), os.path.join(d, 'ca.crt')
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
            '-keyout', ca_key, '-out', ca_crt, '-days', '365', '-subj', '/CN=mod_tls loadtest CA')
    ext = os.path.join(d, 'leaf.ext')
    with open(ext, 'w') as f:
        f.write(f'subjectAltName=DNS:{HOST}\nbasicConstraints=critical,CA:FALSE\n'
                'keyUsage=critical,digitalSignature,keyEncipherment\n'
                'extendedKeyUsage=serverAuth\n')
    certs = {}
    for key, newkey in (('ecdsa', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']),
                        ('rsa', ['-newkey', 'rsa:2048'])):
        k, csr, crt = (os.path.join(d, f'{key}.{x}') for x in ('key', 'csr', 'crt'))
        openssl('req', '-new', *newkey, '-nodes', '-keyout', k, '-out', csr, '-subj', f'/CN={HOST}')
        openssl('x509', '-req', '-in', csr, '-CA', ca_crt, '-CAkey', ca_key, '-CAcreateserial',
                '-days', '365', '-sha256', '-extfile', ext, '-out', crt)
        os.chmod(k, 0o600)
        certs[key] = (crt, k)
    return certs


_PORTS = set()
PORT_RANGE = (20000, 32000)            # below the ephemeral range; profile.py sets its own


def free_port():
    """A 127.0.0.1 port of PORT_RANGE that nothing listens on."""
    for _ in range(500):
        port = random.randint(*PORT_RANGE)
        if port in _PORTS:
            continue
        s = socket.socket()
        try:
            s.bind(('127.0.0.1', port))
        except OSError:
            continue
        finally:
            s.close()
        _PORTS.add(port)
        return port
    raise RuntimeError('no free port')


def wait_port(port, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


# --------------------------------------------------------------------------
# Apache

COMMON_CONF = """\
ServerRoot "{dir}"
PidFile "{dir}/httpd.pid"
DefaultRuntimeDir "{dir}"
Mutex file:{dir} default
ErrorLog "{dir}/error.log"
LogLevel warn
User www-data
Group www-data
ServerName localhost
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule mime_module {mods}/mod_mime.so
LoadModule socache_shmcb_module {mods}/mod_socache_shmcb.so
LoadModule http2_module {mods}/mod_http2.so
TypesConfig /etc/mime.types
DocumentRoot "{docroot}"
<Directory "{docroot}">
    Options None
    AllowOverride None
    Require all granted
</Directory>
# The same for all three servers. No access log. 4 processes from the start and never
# more or fewer (no process churn during a measurement), 200 workers for at most 100
# busy connections; the event MPM parks idle keep-alive connections without a thread,
# and AsyncRequestWorkerFactor lets a process hold 50 + 4 * 50 of them (the memory
# scenario holds 400 over the 4 processes).
StartServers 4
ServerLimit 4
ThreadLimit 50
ThreadsPerChild 50
MaxRequestWorkers 200
MinSpareThreads 25
MaxSpareThreads 200
AsyncRequestWorkerFactor 4
MaxConnectionsPerChild 0
ListenBacklog 1024
Timeout 60
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 120
EnableSendfile Off
EnableMMAP On
"""

TLS_CONF = """\
LoadModule tls_module {module}
Protocols h2 http/1.1
TLSSessionCache shmcb:{dir}/tls-sessions(512000)
TLSSessionCacheTimeout 300
TLSSessionTickets on
"""

TLS_VHOST = """\
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName {host}
    TLSCertificate {crt} {key}
</VirtualHost>
"""

# mod_ssl set up like mod_tls' defaults: TLS 1.2 and 1.3, ECDHE with AEAD ciphers only
# (the suites rustls offers), the client's cipher order, the key exchange groups rustls
# has, the same session cache and tickets.
SSL_CONF = """\
LoadModule ssl_module {mods}/mod_ssl.so
Protocols h2 http/1.1
SSLProtocol -all +TLSv1.2 +TLSv1.3
SSLCipherSuite ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-RSA-CHACHA20-POLY1305
SSLCipherSuite TLSv1.3 TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256
SSLHonorCipherOrder off
SSLOpenSSLConfCmd Groups X25519:P-256:P-384
SSLCompression off
SSLSessionCache shmcb:{dir}/ssl-sessions(512000)
SSLSessionCacheTimeout 300
SSLSessionTickets on
"""

SSL_VHOST = """\
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName {host}
    SSLEngine on
    SSLCertificateFile {crt}
    SSLCertificateKeyFile {key}
</VirtualHost>
"""

PLAIN_CONF = """\
Protocols h2c http/1.1
"""

PLAIN_VHOST = """\
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName {host}
</VirtualHost>
"""


def proc_stat(pid):
    """The fields after the command name of /proc/PID/stat (field 3 is index 0)."""
    with open(f'/proc/{pid}/stat') as f:
        return f.read().rsplit(')', 1)[1].split()


class Server:
    """One Apache with its own ServerRoot, two ports: one for the ECDSA certificate, one
    for the RSA one (the plain server serves the same vhost twice without TLS)."""

    def __init__(self, variant, root, certs):
        self.variant = variant
        self.tls = variant != 'plain'
        self.dir = os.path.join(root, variant)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, 'httpd.conf')
        self.pid_file = os.path.join(self.dir, 'httpd.pid')
        self.error_log = os.path.join(self.dir, 'error.log')
        self.ports = {key: free_port() for key in KEYS}
        self.pid = None
        fill = dict(dir=self.dir, mods=MODDIR, docroot=DOCROOT, module=MODULE, host=HOST)
        text = COMMON_CONF.format(**fill)
        text += {'mod_tls': TLS_CONF, 'mod_ssl': SSL_CONF, 'plain': PLAIN_CONF}[variant].format(**fill)
        vhost = {'mod_tls': TLS_VHOST, 'mod_ssl': SSL_VHOST, 'plain': PLAIN_VHOST}[variant]
        for key in KEYS:
            crt, k = certs[key]
            text += vhost.format(port=self.ports[key], crt=crt, key=k, **{'host': HOST})
        with open(self.conf, 'w') as f:
            f.write(text)

    def scheme(self):
        return 'https' if self.tls else 'http'

    def start(self):
        p = run([HTTPD, '-f', self.conf, '-k', 'start'], timeout=60)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.read_pid() is None:
            time.sleep(0.05)
        self.pid = self.read_pid()
        if p.returncode != 0 or self.pid is None or not all(wait_port(pt) for pt in self.ports.values()):
            self.stop()
            raise RuntimeError(f'{self.variant}: apache did not start (rc={p.returncode}):\n'
                               f'{p.stdout}{p.stderr}{self.read_log()}')
        # all 4 processes up before anything is measured
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(self.children()) < 4:
            time.sleep(0.05)

    def restart(self):
        self.stop()
        self.start()

    def read_pid(self):
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def read_log(self):
        try:
            with open(self.error_log, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def children(self):
        kids = []
        if not self.pid:
            return kids
        for d in os.listdir('/proc'):
            if d.isdigit():
                try:
                    st = proc_stat(d)
                except (OSError, IndexError):
                    continue
                if int(st[1]) == self.pid and st[0] != 'Z':
                    kids.append(int(d))
        return kids

    def own_pids(self):
        """Every live process started with this server's config file."""
        pids = []
        needle = self.conf.encode()
        for d in os.listdir('/proc'):
            if d.isdigit():
                try:
                    with open(f'/proc/{d}/cmdline', 'rb') as f:
                        if needle in f.read().split(b'\0') and proc_stat(d)[0] != 'Z':
                            pids.append(int(d))
                except (OSError, IndexError):
                    pass
        return pids

    def stop(self):
        pid = self.read_pid() or self.pid
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    if proc_stat(pid)[0] == 'Z':
                        break
                except OSError:
                    break
                time.sleep(0.05)
        for _ in range(50):          # leftovers of this instance only, by pid
            left = self.own_pids()
            if not left:
                break
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        self.pid = None

    def cpu(self):
        """CPU seconds used so far by the parent and its children. Children that ended
        were reaped by the parent, so their time is in the parent's cutime/cstime."""
        total = 0
        try:
            st = proc_stat(self.pid)
            total += sum(int(x) for x in st[11:15])     # utime stime cutime cstime
        except (OSError, IndexError):
            pass
        for kid in self.children():
            try:
                st = proc_stat(kid)
                total += int(st[11]) + int(st[12])
            except (OSError, IndexError):
                pass
        return total / CLK_TCK

    def memory(self):
        """Bytes summed over the parent and its children, from /proc/PID/smaps_rollup:
        'mem' = Pss without file-backed pages (Apache maps the files it serves, and those
        pages are the page cache, not the connection's memory), 'pss', 'rss'."""
        tot = {'Pss': 0, 'Pss_File': 0, 'Rss': 0}
        for pid in [self.pid] + self.children():
            try:
                with open(f'/proc/{pid}/smaps_rollup') as f:
                    for line in f:
                        name = line.split(':', 1)[0]
                        if name in tot:
                            tot[name] += int(line.split()[1]) * 1024
            except OSError:
                pass
        return {'mem': tot['Pss'] - tot['Pss_File'], 'pss': tot['Pss'], 'rss': tot['Rss']}

    def established(self, key):
        """Established TCP connections on the server side of the port."""
        port = self.ports[key]
        n = 0
        with open('/proc/net/tcp') as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[3] == '01' and int(parts[1].split(':')[1], 16) == port:
                    n += 1
        return n

    def bad_log_lines(self):
        return [line for line in self.read_log().splitlines()
                if re.search(r'\[(?:[\w_]+:)?(warn|error|crit|alert|emerg)\]|exit signal', line)]


# Scenario 9: mod_tls fronts proxying to one https backend. The backend is an Apache with
# mod_ssl (the same for every front), https on one port and plain http on another. Each front
# serves https with mod_tls and passes /px/ to the backend; only the client side of the
# backend connection differs: mod_tls' TLSProxyEngine, mod_ssl's SSLProxyEngine (mod_ssl
# loaded for that alone), or plain http to the backend's http port (the ceiling). The
# backend's name is the client's Host (ProxyPreserveHost): SNI and the name checked are
# a.test for both TLS clients, and both verify the backend's chain.

BACKEND_VHOSTS = """\
LoadModule setenvif_module {mods}/mod_setenvif.so
Listen 127.0.0.1:{https}
<VirtualHost 127.0.0.1:{https}>
    ServerName {host}
    SSLEngine on
    SSLCertificateFile {crt}
    SSLCertificateKeyFile {key}
</VirtualHost>
Listen 127.0.0.1:{http}
<VirtualHost 127.0.0.1:{http}>
    ServerName {host}
</VirtualHost>
# what the fronts' probe requests (header X-Loadtest-Probe) negotiated with the backend
SetEnvIf X-Loadtest-Probe ^1$ probe
CustomLog "{dir}/probe.log" \\
    "%{{SSL_PROTOCOL}}x %{{SSL_CIPHER}}x resumed=%{{SSL_SESSION_RESUMED}}x" env=probe
"""

PROXY_FRONT = """\
LoadModule proxy_module {mods}/mod_proxy.so
LoadModule proxy_http_module {mods}/mod_proxy_http.so
{load_ssl}\
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName {host}
    TLSCertificate {crt} {key}
    ProxyPreserveHost On
{proxy_tls}\
    ProxyPass /px/ {url}
</VirtualHost>
"""

PROXY_CLIENT = {
    'mod_tls': """\
    TLSProxyEngine on
    TLSProxyCA {ca}
""",
    # mod_ssl's defaults for the proxy side, but the chain verified (SSLProxyVerify is
    # `none` by default) as mod_tls always does; the name is checked by default
    'mod_ssl': """\
    SSLProxyEngine on
    SSLProxyVerify require
    SSLProxyVerifyDepth 2
    SSLProxyCACertificateFile {ca}
""",
    'plain': '',
}


class ProxyBackend(Server):
    """The backend of scenario 9: mod_ssl on port 'https', plain http on port 'http'."""

    def __init__(self, root, certs, ca):
        self.variant = 'backend'
        self.tls = True
        self.dir = os.path.join(root, 'backend')
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, 'httpd.conf')
        self.pid_file = os.path.join(self.dir, 'httpd.pid')
        self.error_log = os.path.join(self.dir, 'error.log')
        self.probe_log = os.path.join(self.dir, 'probe.log')
        self.ports = {'https': free_port(), 'http': free_port()}
        self.pid = None
        crt, key = certs['ecdsa']
        fill = dict(dir=self.dir, mods=MODDIR, docroot=DOCROOT, host=HOST)
        text = COMMON_CONF.format(**fill) + SSL_CONF.format(**fill)
        text += BACKEND_VHOSTS.format(crt=crt, key=key, **self.ports, **fill)
        with open(self.conf, 'w') as f:
            f.write(text)

    def probe_lines(self):
        try:
            with open(self.probe_log) as f:
                return f.read().splitlines()
        except OSError:
            return []


class ProxyFront(Server):
    """A mod_tls front of scenario 9 that proxies /px/ to the backend, its backend
    connections made by `variant` (mod_tls, mod_ssl or plain http); port 'ecdsa'."""

    def __init__(self, variant, root, certs, ca, backend):
        self.variant = variant
        self.tls = True
        self.dir = os.path.join(root, f'proxy-{variant}')
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, 'httpd.conf')
        self.pid_file = os.path.join(self.dir, 'httpd.pid')
        self.error_log = os.path.join(self.dir, 'error.log')
        self.ports = {'ecdsa': free_port()}
        self.pid = None
        self.backend = backend
        crt, key = certs['ecdsa']
        fill = dict(dir=self.dir, mods=MODDIR, docroot=DOCROOT, module=MODULE, host=HOST)
        text = COMMON_CONF.format(**fill) + TLS_CONF.format(**fill)
        if variant == 'mod_ssl':
            # mod_ssl for the backend connections only; its cache keeps it from warning
            load_ssl = (f'LoadModule ssl_module {MODDIR}/mod_ssl.so\n'
                        f'SSLSessionCache shmcb:{self.dir}/ssl-sessions(512000)\n')
        else:
            load_ssl = ''
        url = (f'http://127.0.0.1:{backend.ports["http"]}/' if variant == 'plain'
               else f'https://127.0.0.1:{backend.ports["https"]}/')
        text += PROXY_FRONT.format(load_ssl=load_ssl, port=self.ports['ecdsa'], crt=crt,
                                   key=key, url=url,
                                   proxy_tls=PROXY_CLIENT[variant].format(ca=ca), **fill)
        with open(self.conf, 'w') as f:
            f.write(text)


# Scenario 10: OCSP stapling through mod_md. Two mod_tls servers with mod_md loaded and
# `MDStapling on`, serving a certificate whose AIA names an OCSP responder on 127.0.0.1 (the
# test suite's, test/ocsp_responder.py: `openssl ocsp` behind a loopback-only HTTP server).
# Stapling on: `MDStapleOthers on`, so mod_md fetches the static certificate's response and
# mod_tls staples it; off: `MDStapleOthers off`, mod_md leaves the certificate alone. The two
# differ in that line only; the client asks for the status in both.

STAPLE_VHOST = """\
LoadModule md_module {mods}/mod_md.so
MDStoreDir "{dir}/md"
MDStapling on
MDStapleOthers {others}
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName {host}
    TLSCertificate {crt} {key}
</VirtualHost>
"""
STAPLE_TIMEOUT = 30.0                # the first staple after start (mod_md's first fetch)


def make_staple_cert(d, url):
    """An ECDSA P-256 certificate for a.test from make_certs' CA, its AIA naming `url` as
    the OCSP responder; the file holds the chain (leaf, then the CA: mod_md needs the issuer
    to ask). Returns (chain file, key file, leaf file)."""
    ext = os.path.join(d, 'staple.ext')
    with open(ext, 'w') as f:
        f.write(f'subjectAltName=DNS:{HOST}\nbasicConstraints=critical,CA:FALSE\n'
                'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n'
                f'authorityInfoAccess=OCSP;URI:{url}\n')
    k, csr, crt = (os.path.join(d, f'staple.{x}') for x in ('key', 'csr', 'crt'))
    openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
            '-keyout', k, '-out', csr, '-subj', f'/CN={HOST}')
    openssl('x509', '-req', '-in', csr, '-CA', ca_of(d), '-CAkey', os.path.join(d, 'ca.key'),
            '-CAcreateserial', '-days', '365', '-sha256', '-extfile', ext, '-out', crt)
    os.chmod(k, 0o600)
    chain = os.path.join(d, 'staple.chain.crt')
    with open(chain, 'w') as f, open(crt) as leaf, open(ca_of(d)) as ca:
        f.write(leaf.read() + ca.read())
    return chain, k, crt


def start_responder(d):
    """The test suite's OCSP responder (test/ocsp_responder.py) on a free 127.0.0.1 port for
    make_certs' CA, answering good for the certificates entered; started as a child process
    and stopped by its pid (Responder.stop)."""
    sys.path.insert(0, os.path.join(TOP, 'test'))
    try:
        from cryptography import x509
        from ocsp_responder import Responder
    finally:
        sys.path.pop(0)
    work = os.path.join(d, 'ocsp')
    os.makedirs(work)
    r = Responder(work, free_port(), ca_of(d), os.path.join(d, 'ca.key'), ndays=1)

    def add(path):
        with open(path, 'rb') as f:
            r.add(x509.load_pem_x509_certificate(f.read()))
    r.add_file = add
    return r.start()


class StapleServer(Server):
    """A mod_tls server of scenario 10 with mod_md: stapling on (`MDStapleOthers on`) or off
    (`MDStapleOthers off`), the certificate with the AIA OCSP URL on port 'ecdsa'."""

    def __init__(self, on, root, chain, key):
        self.variant = 'stapling-' + ('on' if on else 'off')
        self.staple = on
        self.tls = True
        self.dir = os.path.join(root, self.variant)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, 'httpd.conf')
        self.pid_file = os.path.join(self.dir, 'httpd.pid')
        self.error_log = os.path.join(self.dir, 'error.log')
        self.ports = {'ecdsa': free_port()}
        self.pid = None
        fill = dict(dir=self.dir, mods=MODDIR, docroot=DOCROOT, module=MODULE, host=HOST)
        text = COMMON_CONF.format(**fill) + TLS_CONF.format(**fill)
        text += STAPLE_VHOST.format(port=self.ports['ecdsa'], crt=chain, key=key,
                                    others='on' if on else 'off', **fill)
        with open(self.conf, 'w') as f:
            f.write(text)


def s_client_status(srv, ca):
    """openssl s_client -status against the server (TLS 1.3, SNI a.test): (what it says of
    the staple, its output)."""
    p = run(['openssl', 's_client', '-connect', f'127.0.0.1:{srv.ports["ecdsa"]}',
             '-servername', HOST, '-tls1_3', '-status', '-CAfile', ca, '-verify_return_error'],
            input='', timeout=20)
    out = p.stdout + p.stderr
    if 'OCSP response: no response sent' in out:
        return 'none', out
    if ('OCSP Response Status: successful' in out
            and re.search(r'^\s*Cert Status: good\s*$', out, re.M)):
        return 'good', out
    return 'other', out


def probe_staple(srv, ca):
    """Before measuring: the 'on' server staples a successful, good response (waited for up
    to STAPLE_TIMEOUT: mod_md fetches it after the start), the 'off' one none."""
    deadline = time.monotonic() + (STAPLE_TIMEOUT if srv.staple else 0)
    while True:
        got, out = s_client_status(srv, ca)
        if got == ('good' if srv.staple else 'none') or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if srv.staple:
        if got != 'good':
            return f'probe failed: no good staple after {STAPLE_TIMEOUT:.0f} s ({got})'
        serial = re.search(r'^\s*Serial Number: (\S+)\s*$', out, re.M)
        return ('stapled: successful, good' + (f', serial {serial.group(1)}' if serial else ''))
    return 'no staple sent' if got == 'none' else f'probe failed: {got} ({out.strip()[-200:]})'


# --------------------------------------------------------------------------
# Running a load generator and measuring around it

def machine_cpu():
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat. Interrupt
    time is left out: loopback traffic is mostly softirq work that no process is charged
    for, and it belongs to the measurement."""
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = v
    return (user + nice + system) / CLK_TCK, steal / CLK_TCK


def snap(srv):
    busy, steal = machine_cpu()
    return {'t': time.monotonic(), 'apache': srv.cpu(), 'busy': busy, 'steal': steal}


class Sample:
    """One measurement of one server: metrics (name -> value), the CPU use in cores of
    the generator, of Apache and of everything else on the machine, and problems found."""

    def __init__(self):
        self.metrics = {}
        self.gen_cores = None
        self.gen_threads = 1
        self.apache_cores = None
        self.other_cores = None
        self.steal_cores = None
        self.issues = []       # errors: failed requests, wrong status or length, ...
        self.gen_notes = []    # the load generator limited the result
        self.noise_notes = []  # other processes (or the hypervisor) took CPU time
        self.info = {}

    def window(self, a, b):
        """Apache's and the rest of the machine's CPU use between two snaps."""
        wall = b['t'] - a['t']
        self.apache_cores = (b['apache'] - a['apache']) / wall
        busy = (b['busy'] - a['busy']) / wall
        self.steal_cores = (b['steal'] - a['steal']) / wall
        self.other_cores = max(0.0, busy - self.apache_cores - (self.gen_cores or 0))

    def check_load(self):
        """The generator limited the number when it used (nearly) all the CPUs it can
        use, or when the machine's CPUs were all busy and the generator had the larger
        share of them (the server then got less than half the machine). Other processes
        disturbed the run when they used NOISE cores or more, or the hypervisor stole
        time."""
        if self.other_cores is not None and (self.other_cores >= NOISE
                                             or self.steal_cores >= NOISE / 2):
            self.noise_notes.append(f'other processes used {self.other_cores:.2f} cores'
                                    + (f', {self.steal_cores:.2f} stolen'
                                       if self.steal_cores >= 0.01 else ''))
        if self.gen_cores is None:
            return
        capacity = min(self.gen_threads, NCPU)
        if self.gen_cores >= SATURATED * capacity:
            self.gen_notes.append(f'generator saturated: {self.gen_cores:.2f} of the '
                                  f'{capacity} cores it can use')
        elif (self.apache_cores is not None and self.gen_cores >= self.apache_cores
              and self.gen_cores + self.apache_cores >= SATURATED * NCPU):
            self.gen_notes.append(f'machine saturated and the generator used more CPU '
                                  f'({self.gen_cores:.2f} cores) than Apache '
                                  f'({self.apache_cores:.2f})')

    @classmethod
    def from_dict(cls, d):
        s = cls()
        for k, v in d.items():
            setattr(s, k, v)
        return s

    def as_dict(self):
        return dict(metrics=self.metrics, gen_cores=self.gen_cores, gen_threads=self.gen_threads,
                    apache_cores=self.apache_cores, other_cores=self.other_cores,
                    steal_cores=self.steal_cores, issues=self.issues,
                    gen_notes=self.gen_notes, noise_notes=self.noise_notes, info=self.info)


def run_generator(argv, timeout, on_line=None, at=()):
    """Run argv to its end; returns (output, exit code, its CPU seconds, wall seconds).
    on_line sees each output line as it comes; each (seconds, fn) in `at` is called that
    long after the start (from a thread)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killer = threading.Timer(timeout, p.kill)
    killer.start()
    timers = [threading.Timer(s, fn) for s, fn in at]
    for t in timers:
        t.start()
    out = []
    try:
        for line in p.stdout:
            out.append(line)
            if on_line:
                on_line(line)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    finally:
        killer.cancel()
        for t in timers:
            t.join()
        p.stdout.close()
    return ''.join(out), p.returncode, ru.ru_utime + ru.ru_stime, time.monotonic() - t0


def driver_argv(srv, key, threads, duration, warmup, version, resume):
    """hsdrive's command line: connections to srv's `key` port, each one GET of /1k.bin;
    TLS `version` (13, 12) and `resume` ('none', 'ticket', 'id') only where srv speaks TLS."""
    return [DRIVER, '-p', str(srv.ports[key]), '-s', HOST, '-u', '/1k.bin', '-l', str(SMALL),
            '-t', str(threads), '-d', str(duration), '-w', str(warmup),
            '-v', str(version if srv.tls else 0), '-r', resume if srv.tls else 'none']


def driver_failures(res):
    """What went wrong in an hsdrive run's result (its JSON line), by counter."""
    return {k: res[k] for k in ('conn_err', 'io_err', 'bad_status', 'bad_len') if res[k]}


def measure_driver(srv, opt, key, version, resume, staple=None):
    """Connections (each one request, Connection: close) per second, and Apache's CPU
    time per connection, over the driver's measuring window. staple: None, the client does
    not ask for the OCSP status; True or False, it asks in every handshake (-o) and every
    one must carry a staple (True) or none may (False)."""
    marks = {}

    def on_line(line):
        if line.startswith('window-'):
            marks[line.strip()] = snap(srv)

    argv = driver_argv(srv, key, opt['hs_threads'], opt['duration'], opt['warmup'], version,
                       resume)
    if staple is not None:
        argv.append('-o')
    out, rc, _, _ = run_generator(argv, opt['duration'] + opt['warmup'] + 60, on_line)
    s = Sample()
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        s.issues.append(f'driver failed (rc={rc}): {out.strip()[-300:]}')
        return s
    done = res['done']
    s.metrics['rate'] = done / res['wall']
    s.gen_cores = res['cpu'] / res['wall']
    s.gen_threads = res['threads']
    if 'window-start' in marks and 'window-end' in marks:
        s.window(marks['window-start'], marks['window-end'])
        if done:
            s.metrics['cpu_us'] = s.apache_cores * res['wall'] / done * 1e6
    fails = driver_failures(res)
    if fails or not done:
        s.issues.append('failures ' + ', '.join(f'{k}={v}' for k, v in fails.items())
                        + (f' ({res["first_error"]})' if res['first_error'] else '')
                        + ('' if done else ' no connection completed'))
    if srv.tls and done:
        share = res['resumed'] / done
        s.info['resumed'] = share
        if resume == 'none' and res['resumed']:
            s.issues.append(f'{res["resumed"]} of {done} handshakes resumed, expected none')
        if resume != 'none' and share < 0.99:
            s.issues.append(f'only {share:.1%} of the handshakes resumed')
        s.info['negotiated'] = f'{res["version"]} {res["cipher"]} {res["group"]}'
    if staple is not None and done:
        s.info['stapled'] = res['stapled'] / done
        if staple and res['stapled'] != done:
            s.issues.append(f'{res["stapled"]} of {done} handshakes stapled, expected all')
        if not staple and res['stapled']:
            s.issues.append(f'{res["stapled"]} of {done} handshakes stapled, expected none')
    s.check_load()
    return s


H2LOAD_LINES = {
    'requests': re.compile(r'requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, '
                           r'(\d+) failed, (\d+) errored, (\d+) timeout'),
    'status': re.compile(r'status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx'),
    'traffic': re.compile(r'traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?\((\d+)\) data'),
    'finished': re.compile(r'finished in ([\d.]+)(ms|s), ([\d.]+) req/s'),
    'proto': re.compile(r'Application protocol: (\S+)'),
    'tls': re.compile(r'TLS Protocol: (\S+)\s+Cipher: (\S+)'),
}


def measure_h2load(srv, opt, path=None, size=None, h1=True, conns=1, streams=1,
                   requests=None, urilist=None, expect_bytes=None, also=None):
    """h2load against the ECDSA port: timed (-D) unless `requests` is given. Checks that
    every request succeeded with a 2xx, with the right protocol, and the byte count
    where it can be known (-n mode). `also`: another Server working for these requests
    (a proxy's backend), whose CPU time is measured over the same window: as
    'backend_cpu_us_req', and not taken for other load on the machine."""
    port = srv.ports['ecdsa']
    base = f'{srv.scheme()}://{HOST}:{port}'
    argv = [H2LOAD, '-c', str(conns), '-t', '1', '-m', str(streams),
            '--connect-to', f'127.0.0.1:{port}']
    if h1:
        argv.append('--h1')
    if requests:
        argv += ['-n', str(requests)]
        warm = 0.0
    else:
        argv += ['-D', f'{round(opt["duration"] * 1000)}ms',
                 '--warm-up-time', f'{round(opt["warmup"] * 1000)}ms']
        warm = opt['warmup']
    if urilist:
        argv += ['-i', urilist, '-B', base]
    else:
        argv.append(base + path)
    marks = {}

    def mark(name):
        marks[name] = snap(srv)
        if also is not None:
            marks[name]['also'] = also.cpu()

    mark('start')
    at = [(warm, lambda: mark('window'))] if warm else []
    out, rc, gen_cpu, wall = run_generator(argv, opt['duration'] + opt['warmup'] + 300,
                                           at=at)
    mark('end')
    s = Sample()
    s.gen_cores = gen_cpu / wall
    s.gen_threads = 1
    m = {k: r.search(out) for k, r in H2LOAD_LINES.items()}
    if rc != 0 or not (m['requests'] and m['status'] and m['finished']):
        s.issues.append(f'h2load failed (rc={rc}): {out.strip()[-300:]}')
        return s
    total, started, done, ok, failed, errored, tmo = map(int, m['requests'].groups())
    s2xx = int(m['status'].group(1))
    secs = float(m['finished'].group(1)) / (1000 if m['finished'].group(2) == 'ms' else 1)
    span = opt['duration'] if not requests else secs
    s.metrics['rps'] = ok / span
    if size:
        s.metrics['mibps'] = ok * size / span / MIB
    if requests and m['traffic']:
        data = int(m['traffic'].group(3))
        s.metrics['mibps'] = data / secs / MIB
        if expect_bytes is not None and data != expect_bytes:
            s.issues.append(f'body bytes {data} != expected {expect_bytes}')
    # In a timed run h2load counts a status when the header arrives but a request when it
    # completes, so up to the requests in flight at the window's edges can differ.
    slack = 0 if requests else conns * streams
    other = sum(int(x) for x in m['status'].groups()[1:])
    if (failed or errored or tmo or other or ok != done or abs(s2xx - ok) > slack
            or not done):
        s.issues.append(f'{done} done, {ok} succeeded, {failed} failed, {errored} errored, '
                        f'{tmo} timeout; status {s2xx} 2xx, {other} other')
    if requests and done != requests:
        s.issues.append(f'{done} of {requests} requests done')
    want_proto = 'http/1.1' if h1 else ('h2' if srv.tls else 'h2c')
    got_proto = m['proto'].group(1) if m['proto'] else '?'
    if got_proto != want_proto:
        s.issues.append(f'protocol {got_proto}, expected {want_proto}')
    if m['tls']:
        s.info['negotiated'] = f'{m["tls"].group(1)} {m["tls"].group(2)} {got_proto}'
    a, b = marks.get('window', marks['start']), marks['end']
    s.window(a, b)
    if ok:
        s.metrics['cpu_us_req'] = s.apache_cores / s.metrics['rps'] * 1e6
    if also is not None:
        also_cores = (b['also'] - a['also']) / (b['t'] - a['t'])
        s.info['backend_cores'] = also_cores
        s.other_cores = max(0.0, s.other_cores - also_cores)
        if ok:
            s.metrics['backend_cpu_us_req'] = also_cores / s.metrics['rps'] * 1e6
    s.check_load()
    return s


def measure_proxy(front, opt, path, size):
    """Scenario 9: h2load over HTTP/1.1 keep-alive to a proxying front, the front's and
    the backend's CPU time per request."""
    return measure_h2load(front, opt, path, size, True, opt['proxy_conns'], 1,
                          also=front.backend)


def probe_proxy(front):
    """One request through the front (/px/1k.bin with X-Loadtest-Probe: 1, which mod_proxy
    passes on): its status and length, and what the backend connection negotiated, from the
    backend's probe log."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    before = len(front.backend.probe_lines())
    try:
        with socket.create_connection(('127.0.0.1', front.ports['ecdsa']), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname=HOST) as t:
                t.sendall(f'GET /px/1k.bin HTTP/1.1\r\nHost: {HOST}\r\n'
                          'X-Loadtest-Probe: 1\r\nConnection: close\r\n\r\n'.encode())
                data = b''
                while True:
                    chunk = t.recv(65536)
                    if not chunk:
                        break
                    data += chunk
    except OSError as e:
        return f'probe failed: {e}'
    head, _, body = data.partition(b'\r\n\r\n')
    status = head.split(b'\r\n', 1)[0].decode(errors='replace')
    if ' 200 ' not in status or len(body) != SMALL:
        return f'probe failed: {status!r}, {len(body)} body bytes'
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and len(front.backend.probe_lines()) <= before:
        time.sleep(0.05)
    lines = front.backend.probe_lines()[before:]
    return (f'backend connection {lines[-1]}' if lines else 'not in the backend\'s probe log')


# --------------------------------------------------------------------------
# Memory: hold connections open with an asyncio client

REQ = 'GET {path} HTTP/1.1\r\nHost: ' + HOST + '\r\nUser-Agent: loadtest-memory\r\n\r\n'


async def _open(port, tls, path, read_body, rcvbuf):
    sock = socket.socket()
    sock.setblocking(False)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await asyncio.get_running_loop().sock_connect(sock, ('127.0.0.1', port))
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(['http/1.1'])
    reader, writer = await asyncio.open_connection(
        sock=sock, ssl=ctx, server_hostname=HOST if tls else None, limit=32768)
    writer.write(REQ.format(path=path).encode())
    await writer.drain()
    head = await reader.readuntil(b'\r\n\r\n')
    status = int(head.split(None, 2)[1])
    if read_body:
        length = int(re.search(rb'(?i)\r\ncontent-length:\s*(\d+)', head).group(1))
        got = 0
        while got < length:         # in pieces: 50 clients of 10 MiB need not hold 500 MiB
            piece = await reader.read(min(1 << 20, length - got))
            if not piece:
                break
            got += len(piece)
        if status != 200 or got != length:
            raise RuntimeError(f'status {status}, {got} bytes')
    elif status != 200:
        raise RuntimeError(f'status {status}')
    return reader, writer


async def _hold(port, tls, n, path, read_body, rcvbuf, measure):
    """Open n connections (50 at a time), each with one request; with read_body the
    response is read whole and the connection stays idle, else the client stops
    reading after the header and the server stays busy sending. Then measure()."""
    sem = asyncio.Semaphore(50)

    async def one():
        async with sem:
            return await asyncio.wait_for(_open(port, tls, path, read_body, rcvbuf), 30)

    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    conns = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    await asyncio.sleep(1.0)           # let the server settle (parked, or blocked writing)
    still_open = sum(1 for r, _ in conns if not r.at_eof())
    result = measure()
    for _, w in conns:
        w.transport.abort()
    await asyncio.sleep(0.2)
    return result, len(conns), still_open, errors


def measure_memory(srv, opt):
    """Bytes per idle keep-alive connection and per active one (a worker busy sending a
    10 MiB response to a client that does not read), from the Pss of all Apache
    processes with the connections open minus before. The server is restarted first so
    that every round starts from the same state."""
    s = Sample()
    port = srv.ports['ecdsa']
    # Each group starts from a restarted server, warmed up with as many connections as the
    # idle measurement holds, so what every worker thread touches once (its stack, its
    # malloc arena and caches) is in the memory before and not counted as the connections';
    # the idle memory after big responses gets its own start, so it does not reuse what the
    # busy connections left behind.
    for group in ((('idle', opt['idle_conns'], '/1k.bin', True, 0),
                   ('active', opt['active_conns'], '/10m.bin', False, 32768)),
                  (('idle_big', opt['active_conns'], '/10m.bin', True, 0),)):
        srv.restart()
        warm = asyncio.run(_hold(port, srv.tls, opt['idle_conns'], '/1k.bin', True, 0,
                                 lambda: None))
        if warm[3]:
            s.issues.append(f'warm-up failed: {warm[3][0]!r}')
        time.sleep(0.5)
        s.info.setdefault('base', srv.memory())
        for kind, n, path, read_body, rcvbuf in group:
            before = srv.memory()

            def measure():
                return srv.memory(), srv.established('ecdsa')
            (after, est), opened, still_open, errors = asyncio.run(
                _hold(port, srv.tls, n, path, read_body, rcvbuf, measure))
            s.metrics[f'{kind}_bytes'] = (after['mem'] - before['mem']) / n
            s.info[f'{kind}_pss_bytes'] = (after['pss'] - before['pss']) / n
            s.info[f'{kind}_rss_bytes'] = (after['rss'] - before['rss']) / n
            s.info[f'{kind}_open'] = est
            if errors or opened != n or still_open != n or est < n:
                s.issues.append(f'{kind}: {opened} of {n} opened, {still_open} still open, '
                                f'{est} established at the server'
                                + (f' ({errors[0]!r})' if errors else ''))
            time.sleep(0.5)
    return s


# --------------------------------------------------------------------------
# What is measured: cases (one run per server and round) and rows (the numbers shown)

class Case:
    """One measurement, run on each of `variants` per round. `group` names the servers it
    runs on: '' the three main ones, 'proxy' the fronts of scenario 9 (with their backend),
    'staple' the two servers of scenario 10 (their 'mod_tls' column is stapling on, their
    'mod_ssl' column stapling off). `names`: what a variant is called in the progress lines
    when not its column's name."""

    def __init__(self, cid, scenario, variants, fn, group='', names=None):
        self.id, self.scenario, self.variants, self.fn = cid, scenario, variants, fn
        self.group = group
        self.names = names or {}

    def server_key(self, variant):
        return f'{self.group}-{variant}' if self.group else variant


class Row:
    def __init__(self, case, metric, label, unit, higher=True, targets=(), plain_case=None,
                 plain_metric=None, chart=None, gen_matters=True, ref_name=None, names=None,
                 rustls=None):
        self.case, self.metric, self.label, self.unit = case, metric, label, unit
        self.higher = higher
        self.scenario = None
        # False: a busy load generator does not bend this number (Apache's CPU time per
        # handshake, memory), so generator notes are not shown with it
        self.gen_matters = gen_matters
        # (kind, '>=' | '<=', threshold): kind 'mod_ssl' or 'plain' compares mod_tls / that
        # column's median with the threshold; the others are in TARGET_KINDS
        self.targets = list(targets)
        self.plain_case = plain_case or case
        self.plain_metric = plain_metric or metric
        self.chart = chart or label
        # what the mod_ssl column holds, for the targets' text, when not mod_ssl (scenario 10)
        self.ref_name = ref_name
        self.names = names or {}        # the servers' names in the notes, when not the column's
        # the figure of the rustls-alone benchmark that, with plain HTTP's, is this row's floor
        self.rustls = rustls


SCENARIOS = {
    1: 'Full handshakes per second (one request per connection, no resumption)',
    2: 'Resumed handshakes per second (one request per connection)',
    3: '1 KiB responses per second on kept-alive connections',
    4: 'Throughput of a 10 MiB file',
    5: 'A mix of 1,000 files of 1 KiB to 10 MiB',
    6: 'Memory per connection (Apache Pss)',
    7: 'Apache CPU time per handshake, full and resumed',
    8: 'Apache CPU time per response: 1 KiB on kept-alive connections (from scenario 3\'s runs)'
       ' and 10 MiB (from scenario 4\'s)',
    9: 'Proxied to an https backend: mod_tls\' TLSProxyEngine against mod_ssl\'s SSLProxyEngine'
       ' (plain: to the backend\'s http port)',
    10: 'OCSP stapling through mod_md: full TLS 1.3 ECDSA handshakes with mod_tls stapling on'
        ' (mod_tls column) against the same server with stapling off (mod_ssl column)',
}
TLS_ONLY = ('mod_tls', 'mod_ssl')

# The targets that are not a ratio of two columns, by kind: how the ascii bars name them.
# 'glue': mod_tls - (rustls alone + plain HTTP), in µs, what Apache with mod_tls costs
# between the network and rustls (mod_ssl's, taken the same way, is larger: `make
# bench-openssl`, docs/performance.md); 'added': (mod_tls - plain) / (mod_ssl - plain), what
# TLS adds over plain HTTP with mod_tls against with mod_ssl; 'floor': mod_tls at most plain + the
# threshold times rustls alone.
TARGET_KINDS = {'glue': 'glue', 'added': 'TLS adds', 'floor': 'floor'}
GLUE_US = 40
FLOOR_X = 1.3


def plan(opt, sizes, urilist):
    cases, rows = [], []
    vnames = {13: 'TLS 1.3', 12: 'TLS 1.2'}
    cases.append(Case('conn-plain', 1, ('plain',),
                      lambda srv: measure_driver(srv, opt, 'ecdsa', 0, 'none')))
    for ver in (13, 12):
        for key in KEYS:
            cid = f'full-{ver}-{key}'
            cases.append(Case(cid, 1, TLS_ONLY, lambda srv, v=ver, k=key:
                              measure_driver(srv, opt, k, v, 'none')))
            rows.append(Row(cid, 'rate', f'Full handshakes/s, {vnames[ver]}, {KEY_LABEL[key]}',
                            'conn/s', True, [('mod_ssl', '>=', 1.3)], 'conn-plain',
                            chart=f'full hs/s {vnames[ver]} {key}'))
    for ver in (13, 12):
        for key in KEYS:
            cid = f'full-{ver}-{key}'
            rows.append(Row(cid, 'cpu_us', f'Apache CPU per full handshake, {vnames[ver]}, '
                            f'{KEY_LABEL[key]}', 'us', False,
                            [('mod_ssl', '<=', 0.7), ('glue', '<=', GLUE_US)],
                            'conn-plain', chart=f'CPU/full hs {vnames[ver]} {key} (lower=better)',
                            gen_matters=False, rustls=cid))
    for cid, ver, mode, label in (('resume-13-ticket', 13, 'ticket', 'TLS 1.3, ticket'),
                                  ('resume-12-ticket', 12, 'ticket', 'TLS 1.2, ticket'),
                                  ('resume-12-id', 12, 'id', 'TLS 1.2, session id (cache)')):
        cases.append(Case(cid, 2, TLS_ONLY, lambda srv, v=ver, md=mode:
                          measure_driver(srv, opt, 'ecdsa', v, md)))
        rows.append(Row(cid, 'rate', f'Resumed handshakes/s, {label}', 'conn/s', True,
                        [('mod_ssl', '>=', 1.5)], 'conn-plain',
                        chart=f'resumed hs/s {label.split(" (")[0]}'))
        rows.append(Row(cid, 'cpu_us', f'Apache CPU per resumed handshake, {label}', 'us', False,
                        [('glue', '<=', GLUE_US)], plain_case='conn-plain',
                        chart=f'CPU/resumed hs {label.split(" (")[0]} (lower=better)',
                        gen_matters=False, rustls=cid))
    for h1 in (True, False):
        for c in opt['ka_conns']:
            proto = 'HTTP/1.1' if h1 else 'HTTP/2'
            cid = f'ka-{"h1" if h1 else "h2"}-c{c}'
            streams = 1 if h1 else opt['h2_streams']
            cases.append(Case(cid, 3, VARIANTS, lambda srv, h=h1, cc=c, m=streams:
                              measure_h2load(srv, opt, '/1k.bin', SMALL, h, cc, m)))
            targets = ([('mod_ssl', '>=', 1.5), ('plain', '>=', 0.95)] if h1
                       else [('mod_ssl', '>=', 1.15)])
            extra = '' if h1 else f', {streams} streams'
            rows.append(Row(cid, 'rps', f'1 KiB responses/s, {proto}, {c} conn{extra}', 'req/s',
                            True, targets, chart=f'1 KiB {proto} c={c}'))
            rows.append(Row(cid, 'cpu_us_req', f'Apache CPU per 1 KiB request, {proto}, {c} conn'
                            f'{extra}', 'us', False, [('added', '<=', 0.5)],
                            chart=f'CPU/1 KiB {proto} c={c} (lower=better)', gen_matters=False,
                            rustls='encrypt-1k'))
    for h1 in (True, False):
        proto = 'HTTP/1.1' if h1 else 'HTTP/2'
        cid = f'big-{"h1" if h1 else "h2"}'
        cases.append(Case(cid, 4, VARIANTS, lambda srv, h=h1:
                          measure_h2load(srv, opt, '/10m.bin', BIG, h, opt['big_conns'], 1)))
        rows.append(Row(cid, 'mibps', f'10 MiB file, {proto}, {opt["big_conns"]} conn', 'MiB/s',
                        True, [('mod_ssl', '>=', 2.6)], chart=f'10 MiB {proto}'))
        rows.append(Row(cid, 'cpu_us_req', f'Apache CPU per 10 MiB response, {proto}', 'us', False,
                        [('floor', '<=', FLOOR_X)], chart=f'CPU/10 MiB {proto} (lower=better)',
                        gen_matters=False, rustls='encrypt-10m'))
    per_client = opt['mix_requests'] // opt['mix_conns']
    mix_bytes = opt['mix_conns'] * sum(sizes[i % len(sizes)] for i in range(per_client))
    for h1 in (True, False):
        proto = 'HTTP/1.1' if h1 else 'HTTP/2'
        cid = f'mix-{"h1" if h1 else "h2"}'
        streams = 1 if h1 else opt['h2_streams']
        cases.append(Case(cid, 5, VARIANTS, lambda srv, h=h1, m=streams:
                          measure_h2load(srv, opt, h1=h, conns=opt['mix_conns'], streams=m,
                                         requests=opt['mix_requests'], urilist=urilist,
                                         expect_bytes=mix_bytes)))
        rows.append(Row(cid, 'mibps', f'Mix of {MIX_FILES} files, {proto}, '
                        f'{opt["mix_conns"]} conn × {per_client} requests', 'MiB/s', True,
                        chart=f'mix {proto}'))
    cases.append(Case('memory', 6, VARIANTS, lambda srv: measure_memory(srv, opt)))
    rows.append(Row('memory', 'idle_bytes', f'Memory per idle TLS connection '
                    f'({opt["idle_conns"]} held)', 'bytes', False, [('mod_ssl', '<=', 0.6)],
                    chart='memory/idle conn (lower=better)', gen_matters=False))
    rows.append(Row('memory', 'active_bytes', f'Memory per active connection '
                    f'({opt["active_conns"]} sending 10 MiB)', 'bytes', False,
                    [('mod_ssl', '<=', 1.0)], chart='memory/active conn (lower=better)',
                    gen_matters=False))
    rows.append(Row('memory', 'idle_big_bytes', f'Memory per idle connection after a 10 MiB '
                    f'response ({opt["active_conns"]} held)', 'bytes', False,
                    [('mod_ssl', '<=', 0.8)], chart='memory/idle after 10 MiB (lower=better)',
                    gen_matters=False))
    for size, name, label in ((SMALL, '1k', '1 KiB'), (MID, '1m', '1 MiB')):
        cid = f'proxy-{name}'
        cases.append(Case(cid, 9, VARIANTS, lambda srv, n=name, sz=size:
                          measure_proxy(srv, opt, f'/px/{n}.bin', sz), group='proxy'))
        conns = f'HTTP/1.1, {opt["proxy_conns"]} conn'
        rows.append(Row(cid, 'rps', f'Proxied {label} responses/s, {conns}', 'req/s', True,
                        [('mod_ssl', '>=', 1.0)], chart=f'proxied {label}/s'))
        rows.append(Row(cid, 'cpu_us_req', f'Front Apache CPU per proxied {label} response',
                        'us', False, [('mod_ssl', '<=', 0.8)],
                        chart=f'CPU/proxied {label} (lower=better)', gen_matters=False))
        rows.append(Row(cid, 'backend_cpu_us_req', f'Backend Apache CPU per proxied {label}'
                        ' response', 'us', False,
                        chart=f'backend CPU/proxied {label} (lower=better)', gen_matters=False))
    cid = 'staple-13-ecdsa'
    on_off = {'mod_tls': 'stapling on', 'mod_ssl': 'stapling off'}
    cases.append(Case(cid, 10, TLS_ONLY, lambda srv: measure_driver(srv, opt, 'ecdsa', 13, 'none',
                                                                    staple=srv.staple),
                      group='staple', names={'mod_tls': 'on', 'mod_ssl': 'off'}))
    rows.append(Row(cid, 'rate', 'Full handshakes/s, TLS 1.3, ECDSA P-256, stapling on'
                    ' (mod_tls column) / off (mod_ssl column)', 'conn/s', True,
                    [('mod_ssl', '>=', 0.95)], ref_name='stapling off', names=on_off,
                    chart='stapling on/off: full hs/s'))
    rows.append(Row(cid, 'cpu_us', 'Apache CPU per full handshake, TLS 1.3, ECDSA P-256,'
                    ' stapling on / off', 'us', False, [('mod_ssl', '<=', 1.05)],
                    ref_name='stapling off', chart='stapling on/off: CPU/full hs (lower=better)',
                    gen_matters=False, names=on_off))
    by_id = cases_by_id(cases)
    for r in rows:
        r.scenario = by_id[r.case].scenario
        if r.metric.startswith('cpu_us') and r.scenario in (1, 2, 3, 4):
            r.scenario = 7 if r.scenario in (1, 2) else 8
    rows.sort(key=lambda r: r.scenario)     # stable: the order above within a scenario
    return cases, rows


def cases_by_id(cases):
    return {c.id: c for c in cases}


# --------------------------------------------------------------------------
# Statistics and formatting

def samples_of(results, row, variant):
    case = row.plain_case if variant == 'plain' else row.case
    return results.get((case, variant), [])


def median(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def fmt(v, unit):
    if v is None:
        return '-'
    if unit == 'bytes':
        return f'{v / 1024:.1f} KiB'
    if unit == 'us':
        return f'{v:,.0f} µs'
    if abs(v) >= 100:
        return f'{v:,.0f} {unit}'
    return f'{v:.3g} {unit}'


def spread(v):
    """± half the min-max range, in % of the median."""
    if len(v) < 2 or not median(v):
        return ''
    pct = (max(v) - min(v)) / 2 / abs(median(v)) * 100
    return f'±{pct:.0f}%' if pct <= 100 else '±>100%'


def load_rustls_alone():
    """The figures of `make bench-rustls` ({'data': ...}), or why there are none
    ({'error': ...})."""
    try:
        with open(RUSTLS_ALONE) as f:
            data = json.load(f)
        if not isinstance(data, dict) or not isinstance(data.get('results'), dict):
            raise ValueError('no "results" in it')
        return {'data': data}
    except OSError as e:
        return {'error': f'{RUSTLS_ALONE}: {e.strerror}'}
    except ValueError as e:            # json.JSONDecodeError included
        return {'error': f'{RUSTLS_ALONE}: {e}'}


def rustls_floor(e, alone):
    """The column "rustls alone + plain HTTP" of a row: (text, value or None). Empty for the
    rows the benchmark has nothing for."""
    r = e['row']
    if not r.rustls:
        return '', None
    if not alone or 'data' not in alone:
        return 'no benchmark', None
    fig = alone['data']['results'].get(r.rustls)
    if not isinstance(fig, dict) or not isinstance(fig.get('median_us'), (int, float)):
        return 'not in the benchmark', None
    us = fig['median_us']
    alone_text = f'{us:,.0f}' if us >= 10 else f'{us:.2g}'     # encrypt-1k: under 1 µs
    if e['plain_med'] is None:
        return f'{alone_text} µs + plain: -', None
    total = us + e['plain_med']
    return f'{fmt(total, "us")} ({alone_text} + {e["plain_med"]:,.0f})', total


def evaluate(rows, results, alone=None):
    """Per row: each server's values, median and spread; the ratios of the medians (and
    the range of the per-round ratios); each target met or missed; the problems seen in
    the runs behind the numbers: errors ('?') and a limiting load generator ('g'); with
    `alone` (load_rustls_alone), rustls alone + plain HTTP where the benchmark measured it."""
    out = []
    for r in rows:
        e = {'row': r, 'marks': {}, 'notes': []}
        for v in VARIANTS:
            metric = r.plain_metric if v == 'plain' else r.metric
            ss = samples_of(results, r, v)
            e[v] = [x.metrics[metric] for x in ss if metric in x.metrics]
            e[v + '_med'] = median(e[v])
            marks = ''
            for i, x in enumerate(ss):
                for msg in x.issues:
                    e['notes'].append(('?', v, f'{r.names.get(v, v)}, round {i + 1}: {msg}'))
                    marks += '' if '?' in marks else '?'
                if r.gen_matters:
                    for kind, msgs in (('g', x.gen_notes), ('n', x.noise_notes)):
                        for msg in msgs:
                            e['notes'].append((kind, v, f'{r.names.get(v, v)}, round {i + 1}:'
                                               f' {msg}'))
                            marks += '' if kind in marks else kind
            e['marks'][v] = marks
        tls, ssl_, plain = e['mod_tls_med'], e['mod_ssl_med'], e['plain_med']
        e['ratio'] = tls / ssl_ if tls is not None and ssl_ else None
        e['ratio_plain'] = tls / plain if tls is not None and plain else None
        pairs = [a / b for a, b in zip(e['mod_tls'], e['mod_ssl']) if b]
        e['ratio_range'] = (min(pairs), max(pairs)) if len(pairs) > 1 else None
        e['floor_text'], e['floor'] = rustls_floor(e, alone)
        # what mod_tls costs beyond rustls alone and plain HTTP: the glue
        e['glue'] = tls - e['floor'] if None not in (tls, e['floor']) else None
        e['verdicts'] = [(ref, op, thr) + judge(e, ref, op, thr) for ref, op, thr in r.targets]
        out.append(e)
    return out


def judge(e, kind, op, thr):
    """One target of an evaluated row: (the number shown with it, True met / False missed),
    (None, None) when that number could not be had: not measured. The number is the one
    judged (a ratio, the glue in µs), but for 'floor' the limit mod_tls is held to."""
    tls, ssl_, plain, floor = e['mod_tls_med'], e['mod_ssl_med'], e['plain_med'], e['floor']
    value = None
    if kind == 'mod_ssl':
        value = e['ratio']
    elif kind == 'plain':
        value = e['ratio_plain']
    elif kind == 'glue':
        value = e['glue']
    elif kind == 'added' and None not in (tls, ssl_, plain) and ssl_ > plain:
        value = (tls - plain) / (ssl_ - plain)
    elif kind == 'floor' and None not in (tls, plain, floor):
        value = plain + thr * (floor - plain)      # the limit; floor - plain: rustls alone
        return value, tls <= value
    if value is None:
        return None, None
    return value, value >= thr if op == '>=' else value <= thr


def cell(e, v):
    r = e['row']
    text = fmt(e[v + '_med'], r.unit)
    sp = spread(e[v])
    if sp:
        text += f' {sp}'
    if e['marks'].get(v):
        text += f' ({e["marks"][v]})'
    return text


def row_mark(e):
    """The marks that bear on the ratio mod_tls / mod_ssl."""
    kinds = ''.join(sorted({k for k, v, _ in e['notes'] if v in TLS_ONLY}))
    return f' ({kinds})' if kinds else ''


def verdict_text(verdicts, md=False, ref_name=None):
    """The targets' text: each with the number it was judged on where the ratio column does
    not have it, and met, missed or not measured."""
    parts = []
    for ref, op, thr, value, ok in verdicts:
        sym = '≥' if op == '>=' else '≤'
        state = ('not measured' if ok is None
                 else 'met' if ok else ('**missed**' if md else 'MISSED'))
        if ref == 'glue':
            got = '' if value is None else f'{value:,.0f} µs, '
            parts.append(f'glue {sym} {thr:g} µs: {got}{state}')
        elif ref == 'added':
            got = '' if value is None else f'{value:.2f}×, '
            parts.append(f'TLS adds {sym} {thr:g}× mod_ssl\'s: {got}{state}')
        elif ref == 'floor':
            got = '' if value is None else f' ({value:,.0f} µs)'
            parts.append(f'{sym} plain + {thr:g} × rustls alone{got}: {state}')
        else:
            name = ref_name if ref_name and ref == 'mod_ssl' else ref
            parts.append(f'{sym} {thr:g}× {name}: {state}')
    return '; '.join(parts)


def overall(verdicts):
    """True when every measured target is met, False when one is missed, None when none
    was measured."""
    oks = [ok for *_, ok in verdicts if ok is not None]
    return all(oks) if oks else None


def ratio_text(e):
    if e['ratio'] is None:
        return '-'
    t = f'{e["ratio"]:.2f}'
    if e['ratio_range']:
        lo, hi = e['ratio_range']
        t += f' ({lo:.2f}–{hi:.2f})'
    return t


def ascii_bars(evals, width=40):
    """The ratios mod_tls / mod_ssl as text bars: | at 1.0, ^ at a ratio target to mod_ssl;
    after the ratio every target's verdict, named when it is not such a ratio."""
    shown = [e for e in evals if e['ratio'] is not None]
    if not shown:
        return ''
    top = max(3.0, max(e['ratio'] for e in shown) * 1.05)
    lab = max(len(e['row'].chart) for e in shown)
    one = int(round(1.0 / top * width))
    scale = ('0' + ' ' * (one - 1) + '1' + ' ' * (width - one - 1))[:width]
    lines = [f'{"mod_tls / mod_ssl":{lab}}  {scale}  {top:.1f}   (| = 1.0, ^ = target'
             ' on this scale)']
    for e in shown:
        n = min(width, int(round(e['ratio'] / top * width)))
        bar = list('#' * n + ' ' * (width - n))
        if one < width:
            bar[one] = '|' if bar[one] == ' ' else '+'
        said = []
        for ref, op, thr, value, ok in e['verdicts']:
            if ref == 'mod_ssl':      # the only targets on this scale
                bar[min(width - 1, int(round(thr / top * width)))] = '^'
            name = TARGET_KINDS.get(ref, ref if ref != 'mod_ssl' else '')
            said.append(f'{name} {"not measured" if ok is None else "met" if ok else "MISSED"}'
                        .strip())
        verdict = (' ' + ', '.join(said)) if said else ''
        lines.append(f'{e["row"].chart:{lab}}  {"".join(bar)}  {e["ratio"]:.2f}{verdict}'
                     f'{row_mark(e)}')
    return '\n'.join(lines)


# --------------------------------------------------------------------------
# Report

def machine_info():
    cpu = '?'
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    mem = '?'
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemTotal:'):
                mem = f'{int(line.split()[1]) / 1024 / 1024:.1f} GiB'
    apache = run([HTTPD, '-v']).stdout.splitlines()
    apache = apache[0].split(':', 1)[1].strip() if apache else '?'
    rustls = '?'
    for name, pattern in (('Cargo.lock', r'name = "rustls"\nversion = "([^"]+)"'),
                          ('Cargo.toml', r'(?m)^rustls = \{ version = "([^"]+)"')):
        try:
            with open(os.path.join(TOP, 'mtls', name)) as f:
                m = re.search(pattern, f.read())
        except OSError:
            continue
        if m:            # the lock file has the version built; Cargo.toml the minimum
            rustls = m.group(1) if name == 'Cargo.lock' else f'{m.group(1)} or newer'
            break
    return {
        'nproc': NCPU,
        'cpu': cpu,
        'memory': mem,
        'kernel': os.uname().release,
        'apache': apache,
        'rustls': rustls,
        'openssl': run(['openssl', 'version']).stdout.strip(),
        'h2load': run([H2LOAD, '--version']).stdout.strip() or '?',
    }


def probe(srv, key='ecdsa'):
    """What a client (Python's OpenSSL) negotiates with the server, offering h2."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(['h2', 'http/1.1'])
    try:
        with socket.create_connection(('127.0.0.1', srv.ports[key]), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=HOST) as t:
                return f'{t.version()}, {t.cipher()[0]}, ALPN {t.selected_alpn_protocol()}'
    except OSError as e:
        return f'probe failed: {e}'


# (case, its rate metric, unit, scale, the plain HTTP case it is compared with)
CEILING_CASES = tuple((cid, 'rate', 'µs per connection', 1e6, 'conn-plain') for cid in (
    'full-13-ecdsa', 'full-12-ecdsa', 'resume-13-ticket', 'resume-12-ticket', 'resume-12-id')) + (
    ('ka-h1-c1', 'rps', 'µs per request', 1e6, 'ka-h1-c1'),
    ('ka-h1-c10', 'rps', 'µs per request', 1e6, 'ka-h1-c10'),
    ('ka-h1-c100', 'rps', 'µs per request', 1e6, 'ka-h1-c100'),
    ('big-h1', 'mibps', 'ms per MiB', 1e3, 'big-h1'),
    ('big-h2', 'mibps', 'ms per MiB', 1e3, 'big-h2'))


def ceiling_note(results, row_of):
    """How far a TLS layer that cost the server nothing could get, from this run's own CPU
    times per request (or MiB): the client's under TLS plus Apache's with plain HTTP,
    against each server's client + Apache time. The load generator shares the cores, so
    its TLS work lowers the rate whatever the server does. row_of: case id -> its rate row."""
    rows = []
    for cid, metric, unit, scale, plain_cid in CEILING_CASES:
        def per_unit(variant, cores):
            return median([getattr(x, cores) / x.metrics[metric] * scale
                           for x in results.get((plain_cid if variant == 'plain' else cid,
                                                 variant), [])
                           if x.metrics.get(metric) and getattr(x, cores) is not None])
        cl = {v: per_unit(v, 'gen_cores') for v in VARIANTS}
        ap = {v: per_unit(v, 'apache_cores') for v in VARIANTS}
        if None in cl.values() or None in ap.values():
            continue
        free = cl['mod_tls'] + ap['plain']
        digits = 0 if scale == 1e6 else 2
        rows.append(f'| {row_of[cid].label if cid in row_of else cid} | {unit} |'
                    f' {cl["mod_tls"]:.{digits}f} / {cl["mod_ssl"]:.{digits}f} /'
                    f' {cl["plain"]:.{digits}f} | {ap["mod_tls"]:.{digits}f} /'
                    f' {ap["mod_ssl"]:.{digits}f} / {ap["plain"]:.{digits}f} |'
                    f' {(cl["mod_ssl"] + ap["mod_ssl"]) / free:.2f}× |'
                    f' {(cl["plain"] + ap["plain"]) / free:.2f}× |')
    if not rows:
        return []
    return ['', 'What a free TLS layer could reach (scenarios 1 to 4): the load generator'
            ' decrypts and encrypts on the same cores, so its TLS work takes a share of the'
            ' machine whatever the server does. The table gives the CPU time per request (or'
            ' MiB, or connection; plain HTTP: a new TCP connection per request) of the client'
            ' and of Apache, and the rate a TLS layer costing Apache'
            ' nothing would reach (client time under TLS plus Apache\'s with plain HTTP),'
            ' relative to mod_ssl and to plain HTTP, when CPU time is what limits the rate'
            ' (with one connection, client and server take turns, so their times add up the'
            ' same way).'
            ' A target above these ceilings cannot be met on this machine by any server.', '',
            '| Measurement | unit | client: mod_tls / mod_ssl / plain | Apache: mod_tls /'
            ' mod_ssl / plain | free TLS layer / mod_ssl | free TLS layer / plain |',
            '|---|---|---|---|---:|---:|'] + rows


def proxy_note(evals):
    """Scenario 9: the front's CPU time per response holds its own TLS (mod_tls in every
    column) and mod_proxy's work besides the backend connection's TLS. With plain http to the
    backend (no TLS there at all) the ratio to mod_ssl is the lowest any TLS client could
    reach; and the backend TLS alone is each column minus plain."""
    out = []
    for e in evals:
        r = e['row']
        if r.scenario != 9 or r.metric != 'cpu_us_req':
            continue
        tls, ssl_, plain = e['mod_tls_med'], e['mod_ssl_med'], e['plain_med']
        if None in (tls, ssl_, plain) or not ssl_:
            continue
        if plain >= min(tls, ssl_):
            out.append(f'- {r.label}: with plain http to the backend {plain:,.0f} µs, no less'
                       f' than with TLS ({tls:,.0f} and {ssl_:,.0f} µs): the backend TLS\'s'
                       ' share is within this run\'s noise, no floor can be given.')
            continue
        part = (f'; the backend connection\'s TLS alone (each minus plain) {tls - plain:,.0f}'
                f' against {ssl_ - plain:,.0f} µs'
                + (f', {(tls - plain) / (ssl_ - plain):.2f}×' if ssl_ - plain > 0 else ''))
        out.append(f'- {r.label}: with plain http to the backend {plain:,.0f} µs, so no TLS'
                   f' client can bring the ratio below {plain / ssl_:.2f}× mod_ssl{part}.')
    if not out:
        return []
    return ['', 'Scenario 9, what the backend connection\'s TLS costs the front (medians): the'
            ' front\'s CPU time per response also pays for its own TLS to the client (mod_tls in'
            ' every column) and for mod_proxy, the same in every column.', ''] + out


def rustls_note(evals, alone):
    """What the column "rustls alone + plain HTTP" holds, and what mod_tls costs beyond it
    (the glue between Apache and rustls), or why the column is empty."""
    rows = [e for e in evals if e['row'].rustls]
    if not rows:
        return []
    if not alone or 'data' not in alone:
        why = alone.get('error', '') if alone else 'not looked for'
        return ['The column "rustls alone + plain HTTP" (scenarios 7 and 8) has no figures:'
                f' the benchmark\'s were missing ({why}), so the targets on them (the glue of'
                ' scenario 7, the floor of the 10 MiB responses of scenario 8) are not'
                ' measured. `make bench-rustls` writes them; `make loadtest` runs it first.', '']
    d = alone['data']
    when = (datetime.datetime.fromtimestamp(d['unix_time']).strftime('%Y-%m-%d %H:%M')
            if isinstance(d.get('unix_time'), (int, float)) else 'at an unknown time')
    out = ['The column "rustls alone + plain HTTP" (scenarios 7 and 8): the median CPU time'
           ' rustls by itself costs a server (`make bench-rustls`: the same rustls and ring'
           ' build, a rustls client in memory, the server\'s calls timed alone; a handshake'
           ' with a 1 KiB response, or the encryption of 1 KiB or of 10 MiB; run'
           f' {when}, {d.get("iterations", "?")} timed runs per handshake figure, see'
           ' docs/performance.md) plus plain HTTP\'s median in this run, the two in brackets:'
           ' about the least any Apache module on rustls can cost. What mod_tls costs beyond it'
           ' (mod_tls − rustls alone − plain HTTP, medians) is the glue between Apache and'
           ' rustls: mod_tls\' own code, and what Apache and the kernel pay for a TLS'
           ' connection beyond plain HTTP\'s (mod_ssl\'s glue, taken the same way with'
           ' `make bench-openssl`, is larger; docs/performance.md). Scenario 7 has a target on'
           ' it (at most'
           f' {GLUE_US} µs, in the table); scenario 8 is judged otherwise: per 1 KiB response'
           ' on what TLS adds over plain HTTP against what mod_ssl adds, per 10 MiB response'
           f' against plain HTTP + {FLOOR_X:g} × rustls alone. The glue of every row:', '']
    for e in rows:
        glue = e['glue']
        if glue is None:
            out.append(f'- {e["row"].label}: -')
            continue
        if glue < 0:
            out.append(f'- {e["row"].label}: {glue:,.0f} µs, below the floor: within the noise'
                       ' of this run and of the benchmark\'s')
            continue
        out.append(f'- {e["row"].label}: {glue:,.0f} µs'
                   + (f' ({glue / e["mod_tls_med"] * 100:.0f}% of mod_tls\'s)'
                      if e['mod_tls_med'] > 0 else ''))
    return out + ['']


def report_md(meta, evals, results, cases, level=1):
    h = '#' * level
    opt = meta['profile']
    mi = meta['machine']
    run_cmd = '`LOADTEST=short make loadtest`' if meta['mode'] == 'short' else '`make loadtest`'
    lines = [
        f'{h} mod_tls load test, {meta["date"]}', '',
        f'- Mode: **{meta["mode"]}** ({run_cmd}): {opt["rounds"]} rounds, each running every'
        f' measurement on mod_tls, mod_ssl and plain HTTP in turn; timed runs '
        f'{opt["duration"]} s after {opt["warmup"]} s of warm-up. The whole run took '
        f'{meta["elapsed"] / 60:.1f} min.',
        f'- Machine: {mi["nproc"]} cores ({mi["cpu"]}), {mi["memory"]} memory, Linux '
        f'{mi["kernel"]}, shared with other work; the load generators run on the same cores,'
        f' over loopback.',
        f'- Versions: {mi["apache"]} with mpm_event; mod_tls with rustls {mi["rustls"]} (ring'
        f' crypto provider); mod_ssl with {mi["openssl"]}; load generators {mi["h2load"]} and'
        f' loadtest/hsdrive.c with the same OpenSSL.',
        f'- Negotiated with an OpenSSL client offering h2: mod_tls {meta["probe"]["mod_tls"]};'
        f' mod_ssl {meta["probe"]["mod_ssl"]}.',
    ]
    if meta.get('probe_proxy'):
        pp = meta['probe_proxy']
        lines.append(f'- Scenario 9, one request through each front: TLSProxyEngine'
                     f' {pp.get("mod_tls")}; SSLProxyEngine {pp.get("mod_ssl")}; plain'
                     f' {pp.get("plain")} (the backend\'s mod_ssl variables).')
    if meta.get('probe_staple'):
        ps = meta['probe_staple']
        lines.append(f'- Scenario 10, `openssl s_client -status` before measuring: stapling on'
                     f' {ps.get("on")}; stapling off {ps.get("off")}.')
    lines += [
        '',
        'Each cell: the median over the rounds, ± half the range between the lowest and highest'
        ' round in % of the median. The ratio is mod_tls / mod_ssl of the medians, in brackets'
        ' the lowest and highest ratio of one round\'s pair. Plain is the same Apache without'
        ' TLS, the ceiling (for handshakes: a new TCP connection per request). Marks: **(?)**'
        ' a run had errors, **(g)** the load generator limited the number, **(n)** other'
        ' processes on the machine took CPU time during a run; all explained under'
        ' "Numbers to doubt".',
        '',
        '| # | Measurement | mod_tls | mod_ssl | plain | rustls alone + plain HTTP |'
        ' mod_tls / mod_ssl | target | mod_tls / plain |',
        '|---|---|---:|---:|---:|---:|---:|---|---:|',
    ]
    for e in evals:
        r = e['row']
        rp = f'{e["ratio_plain"]:.2f}' if e['ratio_plain'] is not None and r.higher else '-'
        lines.append(f'| {r.scenario} | {r.label} | {cell(e, "mod_tls")} | {cell(e, "mod_ssl")} |'
                     f' {cell(e, "plain")} | {e["floor_text"]} | {ratio_text(e)} | '
                     f'{verdict_text(e["verdicts"], md=True, ref_name=r.ref_name) or "-"} |'
                     f' {rp} |')
    met = sum(1 for e in evals for v in e['verdicts'] if v[4])
    total = sum(1 for e in evals for v in e['verdicts'] if v[4] is not None)
    unmeasured = sum(1 for e in evals for v in e['verdicts'] if v[4] is None)
    lines += ['', f'**Targets met: {met} of {total}.**'
              + (f' {unmeasured} more not measured (their figures were missing, or mod_ssl'
                 ' cost no more than plain HTTP).'
                 if unmeasured else '') + ' Scenarios: ' +
              '; '.join(f'{n}. {t}' for n, t in SCENARIOS.items()) + '.', '',
              '```', ascii_bars(evals), '```', '',
              '(`build/loadtest/ratios.png` has the same as a chart.)', '']
    lines += rustls_note(evals, meta.get('rustls_alone'))
    lines += [f'{h}# Numbers to doubt', '']
    noted = False
    for e in evals:
        if e['notes']:
            noted = True
            lines.append(f'- {e["row"].label}:')
            for kind, _, msg in dict.fromkeys(e['notes']):
                lines.append(f'  - ({kind}) {msg}')
    if not noted:
        lines.append('None: every response was a 200 with the full body, every resumption'
                     ' resumed, no load generator limited a number and no other process'
                     ' disturbed one.')
    client = [x.gen_cores / x.metrics['rate'] * 1e6 for (cid, v), ss in results.items()
              if cid.startswith('full-') for x in ss if x.metrics.get('rate') and x.gen_cores]
    server = [x.metrics['cpu_us'] for (cid, v), ss in results.items()
              if cid.startswith('full-') for x in ss if 'cpu_us' in x.metrics]
    if client and server:
        lines += ['', f'About the handshake rates (scenarios 1 and 2): the client\'s side of a'
                  f' full handshake (OpenSSL 3.0) cost {median(client):.0f} µs of CPU (median'
                  f' of all scenario 1 runs; Apache\'s side: {min(server):.0f} to'
                  f' {max(server):.0f} µs), on the same {NCPU} cores. A rate is therefore that'
                  ' of client and server together, and a server that saves CPU gains less rate'
                  ' than it saves: Apache\'s CPU time per handshake (scenario 7) is the'
                  ' server-side comparison.']
    lines += ceiling_note(results, {r.case: r for r in (e['row'] for e in evals)
                                            if r.metric in ('rps', 'mibps', 'rate')})
    lines += proxy_note(evals)
    lines += ['', f'{h}# Every measurement', '',
              'Each server\'s values per round; the CPU use in cores of the load generator,'
              ' of Apache and of all other processes (medians; the machine has'
              f' {NCPU}); Apache\'s CPU time per request or connection (median).', '',
              '| Case | server | median | rounds | generator cores | Apache cores | '
              'other cores | Apache CPU / request |', '|---|---|---:|---|---:|---:|---:|---:|']
    main_metric = {'conn-plain': ('rate', 'conn/s')}
    for e in evals:
        main_metric.setdefault(e['row'].case, (e['row'].metric, e['row'].unit))
    for c in cases:
        metric, unit = main_metric.get(c.id, ('rate', ''))
        for v in c.variants:
            ss = results.get((c.id, v), [])
            vals = [x.metrics[metric] for x in ss if metric in x.metrics]
            gc = median([x.gen_cores for x in ss])
            ac = median([x.apache_cores for x in ss])
            oc = median([x.other_cores for x in ss])
            op = median([x.metrics.get('cpu_us', x.metrics.get('cpu_us_req')) for x in ss])
            lines.append(f'| {c.id} | {c.names.get(v, v)} | {fmt(median(vals), unit)} | '
                         f'{", ".join(fmt(x, unit) for x in vals)} | '
                         f'{"-" if gc is None else f"{gc:.2f}"} | '
                         f'{"-" if ac is None else f"{ac:.2f}"} | '
                         f'{"-" if oc is None else f"{oc:.2f}"} | '
                         f'{"-" if op is None else f"{op:,.0f} µs"} |')
    mem_lines = []
    for v in VARIANTS:
        ss = results.get(('memory', v), [])
        if ss:
            base = median([x.info['base']['mem'] for x in ss if 'base' in x.info])
            got = {k: median([x.info.get(k) for x in ss]) for k in
                   ('idle_pss_bytes', 'idle_rss_bytes', 'idle_open', 'active_pss_bytes',
                    'active_rss_bytes', 'active_open', 'idle_big_pss_bytes',
                    'idle_big_rss_bytes', 'idle_big_open')}
            mem_lines.append(
                f'- {v}: {base / MIB:.1f} MiB before; per idle connection {fmt(got["idle_pss_bytes"], "bytes")}'
                f' by Pss, {fmt(got["idle_rss_bytes"], "bytes")} by Rss ({got["idle_open"]:.0f} held'
                f' at the server); per active connection {fmt(got["active_pss_bytes"], "bytes")}'
                f' by Pss, {fmt(got["active_rss_bytes"], "bytes")} by Rss ({got["active_open"]:.0f} held)'
                + (f'; per idle connection after a 10 MiB response'
                   f' {fmt(got["idle_big_pss_bytes"], "bytes")} by Pss,'
                   f' {fmt(got["idle_big_rss_bytes"], "bytes")} by Rss'
                   f' ({got["idle_big_open"]:.0f} held).' if got['idle_big_open'] is not None
                   else '.'))
    idle = [e for e in evals if e['row'].metric == 'idle_bytes']
    if idle and None not in (idle[0]['mod_tls_med'], idle[0]['mod_ssl_med'], idle[0]['plain_med']):
        e = idle[0]
        t, o = e['mod_tls_med'] - e['plain_med'], e['mod_ssl_med'] - e['plain_med']
        mem_lines.append(f'- The TLS part of an idle connection (minus plain HTTP\'s): mod_tls '
                         f'{fmt(t, "bytes")}, mod_ssl {fmt(o, "bytes")}'
                         + (f', ratio {t / o:.2f}.' if o > 0 else '.'))
    if mem_lines:
        lines += ['', 'Memory (medians): the anonymous and shared memory (Pss without file'
                  ' pages) of all Apache processes before the connections, and per'
                  ' connection by whole Pss and by Rss, which also count the pages of the'
                  ' served files that Apache maps:', ''] + mem_lines
    neg = {}
    for (cid, v), ss in results.items():
        for x in ss:
            if 'negotiated' in x.info:
                neg[(cid, v)] = x.info['negotiated']
    if neg:
        lines += ['', 'Negotiated, as the load generators saw it:', '']
        lines += [f'- {cid}, {v}: {n}' for (cid, v), n in sorted(neg.items())]
    logs = meta.get('logs', {})
    if any(logs.values()):
        lines += ['', 'Apache logged warnings or errors (first 5 of each server):', '']
        for v, ls in logs.items():
            for line in ls[:5]:
                lines.append(f'- {v}: `{line[:240]}`')
    else:
        lines += ['', 'No server logged a warning or an error.']
    lines += ['', f'{h}# How it was measured', '',
              METHOD.format(**opt, nproc=NCPU, mix_files=MIX_FILES, noise=NOISE,
                            ka_list=', '.join(map(str, opt['ka_conns'])), glue=GLUE_US,
                            floor=f'{FLOOR_X:g}'), '']
    return '\n'.join(lines)


METHOD = """\
Three Apache instances run side by side: the same binary and MPM settings (event, 4
processes of 50 threads from the start, KeepAlive On, MaxKeepAliveRequests 0, no access
log), the same files and the same certificates, made for the run with the openssl command
line (ECDSA P-256 and RSA 2048 from one throw-away CA, one port each). mod_ssl is set up
like mod_tls' defaults: TLS 1.2 and 1.3, ECDHE with AEAD ciphers only, the client's cipher
order, X25519 / P-256 / P-384, a shmcb session cache and session tickets. The load
generators run on the same {nproc} cores. Their CPU time (from wait4 or their own
getrusage) and Apache's (utime + stime of the parent and all children from /proc, reaped
children included) are recorded with every run. A run is marked (g) when the generator
used {saturated:.0%} or more of the CPUs it can use, or when all CPUs were busy and the
generator used more of them than Apache; (n) when the rest of the machine (busy time in
/proc/stat minus Apache and the generator) used {noise} cores or more; (?) when a request
failed, a status was not 200, a body was short, a resumption did not resume, or the
protocol was not the one asked for. (g) and (n) are not shown with Apache's CPU time per
handshake and with memory, which they do not bend.

1. Full handshakes: `loadtest/hsdrive`, {hs_threads} threads in a closed loop, one
   connection per request (`GET /1k.bin`, `Connection: close`, the response read to the
   end and checked: 200, 1,024 body bytes), offering no session; TLS 1.3 or TLS 1.2 only,
   ECDSA or RSA port. h2load has no mode for this (it keeps connections alive).
2. Resumed handshakes: the same, each thread offering the session of its previous
   connection (the newest ticket): TLS 1.3 tickets, TLS 1.2 tickets, and TLS 1.2 without
   the ticket extension, which makes the server resume by session id from its cache.
   ECDSA port (the certificate plays no part in a resumption).
3. `h2load` on kept-alive connections, `GET /1k.bin`: HTTP/1.1 (`--h1`, one request at a
   time per connection) and HTTP/2 ({h2_streams} streams per connection), {ka_list}
   connections, one h2load thread, {duration} s after {warmup} s of warm-up. Plain HTTP/2
   is h2c with prior knowledge. Every request must succeed with a 2xx (h2load counts
   statuses and completions at different moments, so in a timed run the two may differ by
   the requests in flight at the window's edges; nothing else is allowed).
4. `h2load` fetching `/10m.bin` over {big_conns} connections, HTTP/1.1 and HTTP/2.
5. `h2load -i` with the list of the {mix_files} files (1 KiB to 10 MiB, log-uniform, about
   1.2 GB): {mix_requests} requests over {mix_conns} connections (each connection walks the
   list from the start); the total of body bytes must be exact. HTTP/2 with
   {h2_streams} streams per connection.
6. Memory: each server restarted and warmed up with {idle_conns} connections held at once
   and closed again (so what each worker thread touches once is not counted as the
   connections'), then the memory of all Apache processes (Pss from
   /proc/PID/smaps_rollup, without file-backed pages) with {idle_conns} connections held
   idle after one 1 KiB request each (HTTP/1.1 keep-alive, parked by the event MPM), with
   {active_conns} connections each in the middle of a 10 MiB response that the client does
   not read (a worker blocked writing), and (after another restart and warm-up) with
   {active_conns} connections held idle after reading a whole 10 MiB response, minus the
   memory just before, divided by the connections. The number of connections the server
   holds is checked in /proc/net/tcp.
7. Apache's CPU time over the measuring window of scenarios 1 and 2, divided by the
   connections completed in it: the server's cost of one full (or resumed) handshake plus
   one small request (plain: of one TCP connection plus the request).
8. Apache's CPU time over the measuring window of scenarios 3 and 4, divided by the
   responses completed in it: the server's cost of a 1 KiB response on a kept-alive
   connection (each case of 3) and of sending 10 MiB (4), without the client's: the
   server-side view of 3 and 4, as 7 is of 1 and 2.
9. Proxying: a fourth Apache (mod_ssl, the same settings as the mod_ssl server above) is the
   backend for three more fronts, each an Apache with mod_tls serving https and mod_proxy_http
   passing /px/ to it: over https with mod_tls' `TLSProxyEngine` (column mod_tls), over https
   with mod_ssl's `SSLProxyEngine` (column mod_ssl; mod_ssl is loaded there for the backend
   connections only, `SSLProxyVerify require`), and over plain http to the backend's http port
   (column plain). Both TLS clients verify the backend's chain and name (the client's Host,
   ProxyPreserveHost) and keep their backend connections alive (mod_proxy's pool). `h2load
   --h1` fetches `/px/1k.bin` and `/px/1m.bin` over {proxy_conns} kept-alive connections,
   {duration} s after {warmup} s of warm-up; the front's CPU time per request is the
   measurement (the backend's is given too; it runs on the same cores and is not counted as
   other load).
10. OCSP stapling through mod_md: two more mod_tls servers, each with mod_md loaded and
   `MDStapling on`, serve an ECDSA P-256 certificate (with its issuer in the file, so both
   send a chain of two where scenario 1 sends the leaf alone) whose AIA names an OCSP
   responder on 127.0.0.1 (test/ocsp_responder.py: `openssl ocsp` answering good, responses
   valid a day, so mod_md renews nothing during the run). Stapling on (column mod_tls):
   `MDStapleOthers on`; stapling off (column mod_ssl): `MDStapleOthers off`, nothing else
   differs. Before measuring, `openssl s_client -status` must get a successful, good staple
   from the first (mod_md fetches it after the start) and none from the second. Then as
   scenario 1 (TLS 1.3, no resumption, {hs_threads} threads), the client asking for the
   status in every handshake: every handshake on the first must carry the staple, none on
   the second. Full handshakes/s and Apache's CPU time per handshake (as 7).

Targets (mod_tls / mod_ssl, medians of the same run): full handshakes/s ≥ 1.3×, Apache CPU
per full handshake ≤ 0.7×, resumed handshakes/s ≥ 1.5×, 1 KiB responses/s ≥ 1.5× over
HTTP/1.1 (and ≥ 0.95× plain HTTP) and ≥ 1.15× over HTTP/2, 10 MiB throughput ≥ 2.6×,
memory per idle connection ≤ 0.6×, per active connection ≤ 1.0× and per idle connection
after a 10 MiB response ≤ 0.8×; proxied (scenario 9): responses/s ≥ 1.0× and the front's
CPU per proxied response ≤ 0.8×, with 1 KiB and with 1 MiB; stapling (scenario 10, on / off):
handshakes/s ≥ 0.95× and Apache CPU per handshake ≤ 1.05×. Three more kinds, on Apache's
CPU time (medians; "rustls alone" is the benchmark's figure of the row): the glue, mod_tls −
(rustls alone + plain HTTP), ≤ {glue} µs per handshake, full and resumed (scenario 7),
which holds mod_tls' own code and Apache's work for a TLS connection; "TLS adds", (mod_tls −
plain) / (mod_ssl − plain), ≤ 0.5 per 1 KiB response on kept-alive connections (scenario 8),
because it compares what each module adds over plain HTTP; and per 10 MiB response mod_tls ≤
plain + {floor} × rustls alone (scenario 8): beyond plain HTTP's cost, at most {floor} times
what encrypting the 10 MiB costs rustls by itself. A target whose figures are missing (no
benchmark, no plain or mod_ssl median, or mod_ssl not above plain) is not measured: neither
met nor missed."""


def terminal_table(evals):
    head = ['#', 'Measurement', 'mod_tls', 'mod_ssl', 'plain', 'rustls+plain', 'tls/ssl',
            'target']
    body = []
    for e in evals:
        r = e['row']
        body.append([str(r.scenario), r.label, cell(e, 'mod_tls'), cell(e, 'mod_ssl'),
                     cell(e, 'plain'), e['floor_text'] or '-', ratio_text(e),
                     verdict_text(e['verdicts'], ref_name=r.ref_name) or '-'])
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    lines = ['  '.join(c.ljust(w) if i in (1, 7) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in [head] + body]
    lines.insert(1, '-' * max(len(x) for x in lines))
    return '\n'.join(lines)


def chart(evals, path, meta):
    """ratios.png: a horizontal bar per comparison, green all its targets met, red one
    missed, grey none measured; a black tick at a ratio target to mod_ssl, a dashed line
    at 1.0."""
    shown = [e for e in evals if e['ratio'] is not None]
    if not shown or not shutil.which(GNUPLOT):
        return False
    data = path + '.dat'
    with open(data, 'w') as f:
        for i, e in enumerate(shown):
            # the tick: a ratio target on this scale; the colour: all its targets
            tgt = [thr for ref, op, thr, value, ok in e['verdicts'] if ref == 'mod_ssl']
            ok = overall(e['verdicts'])
            color = 0x9e9e9e if ok is None else (0x2e7d32 if ok else 0xc62828)
            label = (e['row'].chart + row_mark(e)).replace('"', "'")
            at = max([e['ratio']] + tgt) + 0.04     # right of bar and tick
            f.write(f'{i} {e["ratio"]:.4f} {tgt[0] if tgt else "NaN"} {color} "{label}" '
                    f'{at:.4f}\n')
    top = max(3.0, max(e['ratio'] for e in shown) * 1.12)
    height = 150 + 24 * len(shown)
    rounds = meta['profile']['rounds']
    title = (f'mod_tls / mod_ssl, {meta["date"]}, {meta["mode"]} mode, median of '
             f'{rounds} round{"s" if rounds != 1 else ""}\\nabove 1: mod_tls ahead, except the'
             f' lower=better rows. (?) errors, (g) generator-limited, (n) other load')
    script = f"""
set terminal pngcairo size 1100,{height} font "DejaVu Sans,10" noenhanced
set output "{path}"
set title "{title}"
set yrange [{len(shown) - 0.4}:-0.6]
set xrange [0:{top:.2f}]
set xlabel "mod_tls / mod_ssl    (green: all its targets met, red: one missed, grey: none measured; black tick: target)"
set grid xtics
set ytics nomirror
set xtics nomirror
set style fill solid 0.85 noborder
set arrow from 1, graph 0 to 1, graph 1 nohead front dt 2 lw 2 lc rgb "black"
plot "{data}" using ($2/2):1:($2/2):(0.35):4:ytic(5) with boxxyerror lc rgb variable notitle, \\
     "{data}" using 3:($1-0.42):(0):(0.84) with vectors nohead lw 3 lc rgb "black" notitle, \\
     "{data}" using 6:1:(sprintf("%.2f",$2)) with labels left notitle
"""
    p = subprocess.run([GNUPLOT], input=script, capture_output=True, text=True)
    if p.returncode != 0:
        log(f'loadtest: gnuplot failed: {p.stderr.strip()[-300:]}')
        return False
    os.unlink(data)
    return True


def update_docs(md):
    begin, end = '<!-- loadtest report: begin -->', '<!-- loadtest report: end -->'
    with open(DOCS) as f:
        text = f.read()
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise RuntimeError(f'{DOCS} has no {begin} ... {end} section')
    text = text[:i + len(begin)] + '\n\n' + md.strip() + '\n\n' + text[j:]
    with open(DOCS, 'w') as f:
        f.write(text)


# --------------------------------------------------------------------------

def interrupt_on_sigterm():
    """A kill ends the run as Ctrl-C does: through the finally that stops what it started."""
    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)


def build_driver():
    if os.path.exists(DRIVER) and os.path.getmtime(DRIVER) >= os.path.getmtime(DRIVER_SRC):
        return
    os.makedirs(OUT, exist_ok=True)
    p = run(['cc', '-O2', '-Wall', '-pthread', '-o', DRIVER, DRIVER_SRC, '-lssl', '-lcrypto'])
    if p.returncode != 0:
        raise RuntimeError(f'building {DRIVER} failed:\n{p.stderr}')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--mode', choices=sorted(PROFILES), default=os.environ.get('LOADTEST') or 'full')
    ap.add_argument('--rounds', type=int, help='override the number of rounds')
    ap.add_argument('--only', help='comma-separated case ids or scenario numbers to run')
    ap.add_argument('--update-docs', action='store_true',
                    help='also put the report into docs/performance.md')
    ap.add_argument('--keep', action='store_true', help='keep the servers\' temp dir')
    ap.add_argument('--render', metavar='RESULTS_JSON',
                    help='measure nothing: make the report, chart (and with --update-docs the'
                    ' docs) again from a results.json of an earlier run')
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            data = json.load(f)
        meta = data['meta']
        # results of a run from before scenario 9
        meta['profile'].setdefault('proxy_conns', PROFILES['full']['proxy_conns'])
        # results of a run from before the rustls-alone benchmark: today's figures, if any
        # (the report gives the benchmark's date)
        meta.setdefault('rustls_alone', load_rustls_alone())
        results = {tuple(k.rsplit('/', 1)): [Sample.from_dict(d) for d in ss]
                   for k, ss in data['results'].items()}
        cases, rows = select(*plan(meta['profile'], mix_sizes(), ''), meta.get('only'))
        finish(meta, cases, rows, results, args.update_docs)
        return
    if args.mode not in PROFILES:
        ap.error(f'unknown mode {args.mode}')
    opt = dict(PROFILES[args.mode], saturated=SATURATED)
    if args.rounds:
        opt['rounds'] = args.rounds
    if os.geteuid() != 0:
        sys.exit('loadtest: run as root (Apache switches its children to www-data)')
    for path in (MODULE, HTTPD, os.path.join(MODDIR, 'mod_ssl.so')):
        if not os.path.exists(path):
            sys.exit(f'loadtest: {path} is missing (run `make` first)')
    for tool in (H2LOAD, 'openssl', 'cc'):
        if not shutil.which(tool):
            sys.exit(f'loadtest: {tool} not found (scripts/deps.sh loadtest installs it)')

    t_start = time.monotonic()
    os.makedirs(OUT, exist_ok=True)
    build_driver()
    sizes = make_docroot()
    make_mid_file()
    urilist = os.path.join(OUT, 'mix-uris.txt')
    with open(urilist, 'w') as f:
        f.writelines(f'/mix/f{i:04d}.bin\n' for i in range(len(sizes)))
    root = tempfile.mkdtemp(prefix='mod_tls-loadtest-')
    os.chmod(root, 0o755)
    servers = {}
    responder = None

    interrupt_on_sigterm()
    try:
        certs = make_certs(root)
        for v in VARIANTS:
            servers[v] = Server(v, root, certs)
            servers[v].start()
        meta = {'mode': args.mode, 'profile': opt,
                'date': datetime.datetime.now().strftime('%Y-%m-%d %H:%M'),
                'machine': machine_info(),
                'probe': {v: probe(servers[v]) for v in TLS_ONLY}}
        meta['only'] = args.only
        meta['rustls_alone'] = load_rustls_alone()
        if 'error' in meta['rustls_alone']:
            log(f'loadtest: no rustls-alone figures ({meta["rustls_alone"]["error"]}):'
                ' `make bench-rustls` makes them')
        cases, rows = select(*plan(opt, sizes, urilist), args.only)
        if any(c.group == 'proxy' for c in cases):
            backend = servers['proxy-backend'] = ProxyBackend(root, certs, ca_of(root))
            backend.start()
            for v in VARIANTS:
                srv = servers[f'proxy-{v}'] = ProxyFront(v, root, certs, ca_of(root), backend)
                srv.start()
            meta['probe_proxy'] = {v: probe_proxy(servers[f'proxy-{v}']) for v in VARIANTS}
        if any(c.group == 'staple' for c in cases):
            responder = start_responder(root)
            chain, key, leaf = make_staple_cert(root, responder.url)
            responder.add_file(leaf)
            for v, on in (('mod_tls', True), ('mod_ssl', False)):
                srv = servers[f'staple-{v}'] = StapleServer(on, root, chain, key)
                srv.start()
            meta['probe_staple'] = {
                'on': probe_staple(servers['staple-mod_tls'], ca_of(root)),
                'off': probe_staple(servers['staple-mod_ssl'], ca_of(root))}
            log(f'loadtest: scenario 10 probe: {meta["probe_staple"]}')
        log(f'loadtest: {args.mode} mode, {opt["rounds"]} rounds, {len(cases)} cases; '
            f'servers in {root}')
        results = {}
        for scen in sorted({c.scenario for c in cases}):
            log(f'\n== {scen}. {SCENARIOS[scen]}')
            for rnd in range(opt['rounds']):
                for c in [c for c in cases if c.scenario == scen]:
                    for v in c.variants:
                        s = c.fn(servers[c.server_key(v)])
                        results.setdefault((c.id, v), []).append(s)
                        shown = ', '.join(f'{k} {x:,.1f}' for k, x in s.metrics.items())
                        cores = (f'cores: gen {s.gen_cores:.2f}, apache {s.apache_cores:.2f},'
                                 f' other {s.other_cores:.2f}'
                                 if s.other_cores is not None else '')
                        notes = ([f'(?) {x}' for x in s.issues] + [f'(g) {x}' for x in s.gen_notes]
                                 + [f'(n) {x}' for x in s.noise_notes])
                        log(f'  r{rnd + 1} {c.id:17} {c.names.get(v, v):8} {shown}  {cores}'
                            + (f'  !! {"; ".join(notes)}' if notes else ''))
        meta['elapsed'] = time.monotonic() - t_start
        meta['logs'] = {k: srv.bad_log_lines() for k, srv in servers.items()}
    finally:
        for srv in servers.values():
            srv.stop()
        if responder is not None:
            responder.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, 'results.json'), 'w') as f:
        json.dump({'meta': meta, 'results': {f'{c}/{v}': [s.as_dict() for s in ss]
                                             for (c, v), ss in results.items()}}, f, indent=1)
    finish(meta, cases, rows, results, args.update_docs)


def select(cases, rows, only):
    """The cases named (ids or scenario numbers, comma-separated) and their rows."""
    if not only:
        return cases, rows
    want = set(only.split(','))
    # 7 and 8 are Apache's CPU time in the runs of 1 and 2, and of 3 and 4
    want |= {'1', '2'} if '7' in want else set()
    want |= {'3', '4'} if '8' in want else set()
    cases = [c for c in cases if c.id in want or str(c.scenario) in want]
    keep = {c.id for c in cases}
    return cases, [r for r in rows if r.case in keep]


def finish(meta, cases, rows, results, docs):
    """Report, chart and terminal table (and the docs) from the results."""
    evals = evaluate(rows, results, meta.get('rustls_alone'))
    with open(os.path.join(OUT, 'report.md'), 'w') as f:
        f.write(report_md(meta, evals, results, cases) + '\n')
    png = os.path.join(OUT, 'ratios.png')
    have_png = chart(evals, png, meta)
    log('\n' + terminal_table(evals))
    log('\n' + ascii_bars(evals))
    doubts = sum(1 for e in evals if e['notes'])
    if doubts:
        log(f'\n{doubts} numbers to doubt, marked (?) errors, (g) a limiting load generator,'
            ' (n) other load on the machine: see "Numbers to doubt" in the report')
    log(f'\nloadtest: report {os.path.join(OUT, "report.md")}'
        + (f', chart {png}' if have_png else ' (no chart: gnuplot missing or failed)')
        + f'; the run took {meta["elapsed"] / 60:.1f} min')
    if docs:
        update_docs(report_md(meta, evals, results, cases, level=3))
        log(f'loadtest: report written into {DOCS}')


if __name__ == '__main__':
    main()

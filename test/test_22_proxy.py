"""TLS to proxied backends (issue 11): TLSProxyEngine, TLSProxyCA, TLSProxyProtocol,
TLSProxyCiphers*, TLSProxyMachineCertificate, TLSProxyPeerName.

A front Apache (mod_tls, mod_proxy, mod_proxy_http, mod_proxy_http2; clients talk plain HTTP
to it) proxies to real backends: an Apache with mod_tls and one with mod_ssl, each port with
its own certificate or settings, and to Python sockets that misbehave. Every backend serves a
`whoami.txt` that names it, and logs per request what it saw of the front's TLS connection
(source port, HTTP version, SNI, resumption, protocol, client certificate): the tests judge by
the status and body the client got and by those lines, and by the front's error log.

Names: only `localhost` resolves (to 127.0.0.1), so other SNI names come from TLSProxyPeerName
or ProxyPreserveHost. Each ProxyPass has its own backend path (`/w-<name>/`, mapped to the
docroot by the backends) so that no two share a mod_proxy worker and its connection pool.

Harness self-check: with TLS_TEST_PROXY_MODSSL=1 the front does its backend TLS with mod_ssl
(SSLProxy* for TLSProxy*), to see that backends and checks are right; tests of what only
mod_tls does (its log lines, TLSProxyPeerName, its config errors) fail in that mode.
"""
import itertools
import os
import re
import socket
import threading
import time

import pytest

import clientcerts as cc
import harness

FRONT_MODSSL = bool(os.environ.get('TLS_TEST_PROXY_MODSSL'))
PROXY_MODULES = '\n'.join(
    f'LoadModule {m}_module {harness.MODULES_DIR}/mod_{m}.so'
    for m in ('proxy', 'proxy_http', 'proxy_http2'))

# What each backend logs per request; parsed by hits()
BACKEND_LOG = ('"%{remote}p %H %>s %U%q sni=%{SSL_TLS_SNI}x resumed=%{SSL_SESSION_RESUMED}x '
               'proto=%{SSL_PROTOCOL}x cn=%{SSL_CLIENT_S_DN_CN}x cipher=%{SSL_CIPHER}x"')
HIT_RE = re.compile(r'^(?P<port>\d+) (?P<http>\S+) (?P<status>\d+) (?P<url>\S+) '
                    r'sni=(?P<sni>\S*) resumed=(?P<resumed>\S*) proto=(?P<proto>\S*) '
                    r'cn=(?P<cn>\S*) cipher=(?P<cipher>\S*)$')

BODY_TLS = 'backend: mod_tls\n'
BODY_SSL = 'backend: mod_ssl\n'
# How long a backend keeps an idle connection; connection reuse is tested within it
BACKEND_KEEPALIVE = 30

# How the front answers a backend it cannot do TLS with. mod_ssl (self-check mode) marks the
# connection (SSL_connect_rv) and mod_proxy then answers 500.
REFUSED = 500 if FRONT_MODSSL else 502

# mod_proxy's own lines when a backend fails (AH01084 pass request body failed, AH00898
# error reading from remote, AH01102 error reading status line, AH01097, ...)
PROXY_ERRORS = r'\[proxy(?:_http2?)?:error\]'


# tests of what mod_ssl as the front cannot do (self-check mode)
MODSSL_CANNOT = pytest.mark.xfail(FRONT_MODSSL, strict=True, reason='mod_ssl cannot')


# --------------------------------------------------------------------------
# certificates

@pytest.fixture(scope='module')
def pki(ca):
    """Server certificates for the backends (from the session CA, and from a second CA the
    front does not trust) and the front's machine certificates from two client CAs."""
    other = harness.CA('proxy test other CA')
    mca_a = cc.Authority(cc.dn(O='Proxy Tests', CN='Machine CA A'), 'ec', label='mca-a')
    mca_b = cc.Authority(cc.dn(O='Proxy Tests', CN='Machine CA B'), 'ec', label='mca-b')
    return {
        'other_ca': other,
        'main': ca.issue(['localhost', 'be.test']),
        'ip': ca.issue(['localhost'], key_type='ec', days=90, ips=['127.0.0.1']),
        'wrong': ca.issue(['other.test']),
        'wrong_same_server': ca.issue(['other.test']),
        'expired': ca.issue(['localhost'], expired=True),
        'unknown': other.issue(['localhost']),
        'h1only': ca.issue(['localhost', 'be.test']),
        'mca_a': mca_a,
        'mca_b': mca_b,
        'machine_a': mca_a.issue(cc.dn(CN='machine-a')),
        'machine_b': mca_b.issue(cc.dn(CN='machine-b')),
    }


# --------------------------------------------------------------------------
# backends

def backend_docroot(label, body):
    d = harness.make_docroot(os.path.join(harness.mkdtemp(f'tls-{label}-'), 'htdocs'))
    harness.write_file(os.path.join(d, 'whoami.txt'), body)
    return d


def backend_common(docroot, log):
    """Server-level lines of every backend: /w-<anything>/x is docroot/x, and the log."""
    return f"""
ScriptAliasMatch "^/w-[^/]+/cgi-bin/(.*)$" "{docroot}/cgi-bin/$1"
AliasMatch "^/w-[^/]+/(.*)$" "{docroot}/$1"
LogFormat {BACKEND_LOG} proxylog
CustomLog "{log}" proxylog
KeepAliveTimeout {BACKEND_KEEPALIVE}
"""


def tls_backend(pki, name, vhosts):
    """A mod_tls backend: one port per (certificate key in pki, ServerName, extra lines)."""
    ports = {key: harness.free_port() for key, _, _ in vhosts}
    docroot = backend_docroot(name, BODY_TLS)
    log = os.path.join(harness.mkdtemp(f'tls-{name}-log-'), 'proxy.log')
    body = backend_common(docroot, log)
    for key, server_name, extra in vhosts:
        cert, key_file = pki[key]
        port = ports[key]
        if 'Protocols' not in extra:     # (Protocols lines add up)
            extra = '  Protocols h2 http/1.1\n' + extra
        body += f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName {server_name}
  TLSCertificate {cert} {key_file}
{extra}
</VirtualHost>"""
    a = harness.Apache(body, docroot, name=name, expect=[r'\[tls:warn\].*expire'])
    a.ports, a.proxy_log = ports, log
    return a


@pytest.fixture(scope='module')
def be_tls(pki, module_path):
    """The mod_tls backend that serves."""
    a = tls_backend(pki, 'be-tls', [
        ('main', 'localhost', '  ServerAlias be.test'),
        # a port of the same server whose certificate is for another name: see
        # test_session_not_offered_to_another_port
        ('wrong_same_server', 'other.test', '  TLSStrictSNI off')])
    a.start()
    yield a
    a.stop()


@pytest.fixture(scope='module')
def be_tls2(pki, module_path):
    """Another mod_tls server: the backends whose certificate fails, and the one with an IP
    SAN. Not in be_tls: a server resumes the sessions it issued on any of its ports, so the
    front, which resumes by name, would skip verifying their certificates with a session
    from be_tls, issued for the same name (see the report on test_22)."""
    a = tls_backend(pki, 'be-tls2', [
        ('ip', 'localhost', ''),
        # SNI localhost gets the other.test vhost, the only one on its address
        ('wrong', 'other.test', '  TLSStrictSNI off'),
        ('expired', 'localhost', ''),
        ('unknown', 'localhost', ''),
        ('h1only', 'localhost', '  Protocols http/1.1')])
    a.start()
    yield a
    a.stop()


@pytest.fixture(scope='module')
def be_ssl(pki, module_path):
    """The mod_ssl backend: a plain one, one speaking TLS 1.2 only, one that requires a
    client certificate from machine CA A."""
    ports = {k: harness.free_port() for k in ('main', 'tls12', 'client')}
    docroot = backend_docroot('be-ssl', BODY_SSL)
    log = os.path.join(harness.mkdtemp('tls-be-ssl-log-'), 'proxy.log')
    cert, key = pki['main']

    def vhost(key_, extra=''):
        port = ports[key_]
        return f"""
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName localhost
  ServerAlias be.test
  SSLEngine on
  SSLCertificateFile {cert}
  SSLCertificateKeyFile {key}
  Protocols h2 http/1.1
{extra}
</VirtualHost>"""
    body = (backend_common(docroot, log)
            + f'SSLSessionCache "shmcb:{harness.mkdtemp("tls-be-ssl-cache-")}/scache(512000)"\n'
            + vhost('main')
            + vhost('tls12', '  SSLProtocol -all +TLSv1.2')
            + vhost('client', f"""  SSLVerifyClient require
  SSLVerifyDepth 3
  SSLCACertificateFile {pki['mca_a'].cert_path}"""))
    a = harness.Apache(body, docroot, tls=False, ssl=True, name='be-ssl')
    a.ports, a.proxy_log = ports, log
    a.start()
    yield a
    a.stop()


class BadBackend:
    """A TCP server on 127.0.0.1 that misbehaves in one way with every connection:
    'close' closes at once, 'garbage' reads the ClientHello and answers with text that is no
    TLS, 'silent' reads and never answers (the connection stays open until stop())."""

    def __init__(self, how):
        self.how = how
        self.port = harness.free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self.held = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                break
            self.accepted += 1
            if self.how == 'close':
                conn.close()
                continue
            conn.settimeout(5)
            try:
                conn.recv(65536)
                if self.how == 'garbage':
                    conn.sendall(b'SSH-2.0-this is no TLS server\r\n' * 20)
            except OSError:
                pass
            self.held.append(conn)     # closed by stop()

    def stop(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.fixture(scope='module')
def bad_backends():
    bads = {how: BadBackend(how) for how in ('close', 'garbage', 'silent')}
    yield bads
    for b in bads.values():
        b.stop()


# --------------------------------------------------------------------------
# the front

def _machine_pair_file(issued_list):
    """mod_ssl (self-check mode) wants certificate and key in one file."""
    data = ''.join(harness.pem_of(i[0]) + harness.pem_of(i[1]) for i in issued_list)
    d = harness.mkdtemp('tls-machine-')
    return harness.write_file(os.path.join(d, 'machine.pem'), data)


def modssl_front(body, passes):
    """TLSProxy* lines as mod_ssl's SSLProxy* (self-check mode only); mod_ssl takes them in
    <Proxy> sections only, so <Location /x/> becomes <Proxy backend-of-x>."""
    out, machine = [], []

    def flush():
        if machine:
            out.append(f'  SSLProxyMachineCertificateFile {_machine_pair_file(machine)}')
            machine.clear()
    for line in body.splitlines():
        words = line.split()
        d = words[0] if words else ''
        if d != 'TLSProxyMachineCertificate':
            flush()
        m = re.match(r'\s*<Location /([^/]+)/>', line)
        if m and m.group(1) in passes:
            out.append(f'  <Proxy "{passes[m.group(1)].split()[0]}">')
        elif d == '</Location>':
            out.append('  </Proxy>')
        elif d == 'TLSProxyEngine':
            out.append(f'  SSLProxyEngine {words[1]}')
            out.append('  SSLProxyVerify require')   # mod_ssl's default is none
        elif d == 'TLSProxyCA':
            path = ('/etc/ssl/certs/ca-certificates.crt' if words[1] == 'system'
                    else words[1])
            out.append(f'  SSLProxyCACertificateFile {path}')
        elif d == 'TLSProxyProtocol':
            out.append('  SSLProxyProtocol ' + {'TLSv1.3+': '-all +TLSv1.3',
                                                'TLSv1.2+': '-all +TLSv1.2 +TLSv1.3'}[words[1]])
        elif d == 'TLSProxyMachineCertificate':
            machine.append((words[1], words[2]))
        elif d == 'TLSProxyCiphersPrefer':
            out.append('  SSLProxyCipherSuite TLSv1.3 '
                       + ':'.join(w.replace('TLS13_', 'TLS_') for w in words[1:]))
        elif d.startswith('TLSProxy'):
            continue
        else:
            out.append(line)
    flush()
    return '\n'.join(out) + '\n'


def make_front(body, name, passes=None, **kw):
    # one child: backend connections and sessions are kept per child
    body = PROXY_MODULES + '\n' + harness.ONE_CHILD + body
    if FRONT_MODSSL:
        body = modssl_front(body, passes or {})
        kw.update(tls=False, ssl=True, expect=[r'\[ssl:warn\]'])
    return harness.Apache(body, kw.pop('docroot'), name=name, **kw)


FRONT_LOG = '"%U%q front_sni=%{SSL_TLS_SNI}x front_proto=%{SSL_PROTOCOL}x https=%{HTTPS}x"'


@pytest.fixture(scope='module')
def front(ca, pki, be_tls, be_tls2, be_ssl, bad_backends, docroot, module_path):
    """Port `port`: a vhost with TLSProxyEngine on and TLSProxyCA the test CA, one ProxyPass
    per case. Port `sys_port`: TLSProxyEngine on, no TLSProxyCA (the system bundle)."""
    port, sys_port = harness.free_port(), harness.free_port()
    t, s = {**be_tls.ports, **be_tls2.ports}, be_ssl.ports
    bad = {k: b.port for k, b in bad_backends.items()}
    ma, mb = pki['machine_a'], pki['machine_b']
    log = os.path.join(harness.mkdtemp('tls-front-log-'), 'front.log')
    passes = {
        # path on the front: backend URL (+ ProxyPass parameters)
        'tls': f'https://localhost:{t["main"]}/w-tls/',
        'ssl': f'https://localhost:{s["main"]}/w-ssl/',
        'sysca': f'https://localhost:{t["main"]}/w-sysca/',
        'unknown': f'https://localhost:{t["unknown"]}/w-unknown/',
        'expired': f'https://localhost:{t["expired"]}/w-expired/',
        'wrong': f'https://localhost:{t["wrong"]}/w-wrong/',
        'wrong-same': f'https://localhost:{t["wrong_same_server"]}/w-wrong-same/',
        'v13only': f'https://localhost:{s["tls12"]}/w-v13only/',
        'v12ok': f'https://localhost:{s["tls12"]}/w-v12ok/',
        'ipsan': f'https://127.0.0.1:{t["ip"]}/w-ipsan/',
        'ipnosan': f'https://127.0.0.1:{t["main"]}/w-ipnosan/',
        'peername': f'https://127.0.0.1:{t["main"]}/w-peername/',
        'preserve': f'https://localhost:{t["main"]}/w-preserve/',
        'h2tls': f'h2://localhost:{t["main"]}/w-h2tls/',
        'h2ssl': f'h2://localhost:{s["main"]}/w-h2ssl/',
        'h2none': f'h2://localhost:{t["h1only"]}/w-h2none/',
        'h1only': f'https://localhost:{t["h1only"]}/w-h1only/',
        'chacha': f'https://localhost:{s["main"]}/w-chacha/',
        'reuse': f'https://localhost:{t["main"]}/w-reuse/',
        'noreuse': f'https://localhost:{t["main"]}/w-noreuse/ disablereuse=On',
        'noreuse-ssl': f'https://localhost:{s["main"]}/w-noreuse-ssl/ disablereuse=On',
        'mc': f'https://localhost:{s["client"]}/w-mc/',
        'mc-wrong': f'https://localhost:{s["client"]}/w-mc-wrong/',
        'mc-none': f'https://localhost:{s["client"]}/w-mc-none/',
        'merge-loc': f'https://localhost:{t["main"]}/w-merge-loc/',
        'merge-proxy': f'https://localhost:{t["main"]}/w-merge-proxy/',
        'proxysec-v13': f'https://localhost:{s["tls12"]}/w-proxysec-v13/',
        'off': f'https://localhost:{t["main"]}/w-off/',
        'bad-close': f'https://localhost:{bad["close"]}/w-bad-close/',
        'bad-garbage': f'https://localhost:{bad["garbage"]}/w-bad-garbage/',
        'bad-silent': f'https://localhost:{bad["silent"]}/w-bad-silent/ timeout=2',
    }
    proxy_pass = '\n'.join(f'  ProxyPass /{k}/ {v} retry=0' for k, v in passes.items())
    body = f"""
Listen 127.0.0.1:{port}
Listen 127.0.0.1:{sys_port}
LogFormat {FRONT_LOG} frontlog

<VirtualHost 127.0.0.1:{port}>
  ServerName front.test
  CustomLog "{log}" frontlog
  TLSProxyEngine on
  TLSProxyCA {ca.cert_path}
{proxy_pass}
  <Location /sysca/>
    TLSProxyCA system
  </Location>
  <Location /v13only/>
    TLSProxyProtocol TLSv1.3+
  </Location>
  <Location /peername/>
    TLSProxyPeerName be.test
  </Location>
  <Location /preserve/>
    ProxyPreserveHost On
  </Location>
  <Location /mc/>
    TLSProxyMachineCertificate {mb.cert_path} {mb.key_path}
    TLSProxyMachineCertificate {ma.cert_path} {ma.key_path}
  </Location>
  <Location /mc-wrong/>
    TLSProxyMachineCertificate {mb.cert_path} {mb.key_path}
  </Location>
  <Location /chacha/>
    TLSProxyCiphersPrefer TLS13_CHACHA20_POLY1305_SHA256
  </Location>
  <Location /merge-loc/>
    TLSProxyProtocol TLSv1.3+
  </Location>
  <Proxy "https://localhost:{t["main"]}/w-merge-proxy/">
    TLSProxyProtocol TLSv1.3+
  </Proxy>
  <Proxy "https://localhost:{s["tls12"]}/w-proxysec-v13/">
    TLSProxyProtocol TLSv1.3+
  </Proxy>
  <Location /off/>
    TLSProxyEngine off
  </Location>
</VirtualHost>

<VirtualHost 127.0.0.1:{sys_port}>
  ServerName sys.test
  TLSProxyEngine on
  ProxyPass /sys/ https://localhost:{t["main"]}/w-sys/ retry=0
</VirtualHost>
"""
    a = make_front(body, 'front', passes, docroot=docroot)
    a.port, a.sys_port, a.front_log, a.passes = port, sys_port, log, passes
    a.start()
    yield a
    a.stop()


# --------------------------------------------------------------------------
# helpers

_ids = itertools.count(1)


def new_id():
    return f'r{next(_ids)}x'


def get(front, where, rid=None, port=None, host='front.test', file='whoami.txt'):
    """GET /<where>/<file>?id=<rid> on the front over plain HTTP: (status, body)."""
    rid = rid or new_id()
    return harness.http_get(port or front.port, f'/{where}/{file}?id={rid}',
                            hostname=host, timeout=30)


def hits(backend, rid, count=1, timeout=BACKEND_KEEPALIVE + 10):
    """The backend's log entries (dicts) for requests with ?id=<rid>. An HTTP/2 backend logs a
    stream when mod_http2 destroys it. If the worker finishes the stream only after the
    connection went back to the MPM, that is at the connection's next event: the front's next
    request on it, or the backend closing it after KeepAliveTimeout. Seen under ASan with the
    two suites side by side; so the wait is longer than that timeout."""
    lines = harness.wait_lines(backend.proxy_log, rf' \S*\?id={re.escape(rid)} ', 0,
                               timeout=timeout, count=count)
    out = []
    for line in lines:
        m = HIT_RE.match(line)
        assert m, f'backend log line not understood: {line!r}'
        out.append(m.groupdict())
    return out


def get_ok(front, backend, where, body, **kw):
    """A GET that the backend must answer with 200 and its body; its log entry."""
    rid = new_id()
    status, got = get(front, where, rid, **kw)
    assert (status, got.decode(errors='replace')) == (200, body), \
        f'/{where}/: {status} {got[:300]!r}\nfront log:\n{front.read_log()[-3000:]}'
    return hits(backend, rid)[0]


def tls_error_line(front, offset, name, port, reason):
    """Exactly one mod_tls error line since offset: MTLS00035 naming the backend (name and
    address) and the reason."""
    if FRONT_MODSSL:
        return None
    pattern = (rf'\[tls:error\] .*MTLS00035: tls: backend {re.escape(name)} at '
               rf'127\.0\.0\.1:{port} failed during handshake: ')
    front.wait_log(pattern, offset)
    time.sleep(0.2)   # a second line would come with the first
    tls_errors = harness.lines_matching(front.error_log, r'\[tls:error\]', offset)
    assert len(tls_errors) == 1, 'not one [tls:error] line:\n' + '\n'.join(tls_errors)
    assert re.search(pattern, tls_errors[0]), tls_errors[0]
    assert re.search(reason, tls_errors[0]), f'{reason!r} not in {tls_errors[0]}'
    return tls_errors[0]


def allow_backend_failure(allow_log):
    allow_log(r'MTLS00035', PROXY_ERRORS)
    if FRONT_MODSSL:
        allow_log(r'\[ssl:(?:error|warn)\]')


def refused(front, allow_log, where, name, port, reason, status=REFUSED):
    """A request the front must answer with `status` because the backend failed TLS, with
    its one error line."""
    allow_backend_failure(allow_log)
    offset = front.log_size()
    got_status, body = get(front, where)
    assert got_status == status, f'/{where}/: {got_status} {body[:300]!r}'
    assert b'backend: ' not in body, body
    return tls_error_line(front, offset, name, port, reason)


# --------------------------------------------------------------------------
# 1. https:// backends, trust anchors

@pytest.mark.parametrize('kind', ['tls', 'ssl'])
def test_https_backend(front, be_tls, be_ssl, kind):
    backend, body = (be_tls, BODY_TLS) if kind == 'tls' else (be_ssl, BODY_SSL)
    hit = get_ok(front, backend, kind, body)
    assert (hit['http'], hit['status'], hit['url'].split('?')[0]) == \
        ('HTTP/1.1', '200', f'/w-{kind}/whoami.txt'), hit
    assert hit['proto'] in ('TLSv1.2', 'TLSv1.3'), hit


def test_https_backend_cgi(front, be_tls):
    """A body from a program, not a file: the backend's sha256 CGI over a POST."""
    data = b'proxied request body\n' * 1000
    conn = harness.http.client.HTTPConnection('127.0.0.1', front.port, timeout=30)
    try:
        conn.request('POST', '/tls/cgi-bin/sha256.sh', body=data,
                     headers={'Host': 'front.test', 'Content-Type': 'text/plain'})
        r = conn.getresponse()
        status, got = r.status, r.read()
    finally:
        conn.close()
    assert status == 200, (status, got[:300])
    assert got.decode().strip() == harness.hashlib.sha256(data).hexdigest()


def test_system_ca_refuses_test_ca(front, allow_log, be_tls):
    """Without TLSProxyCA the system bundle is the trust: the test CA's backend is refused."""
    allow_backend_failure(allow_log)
    offset = front.log_size()
    status, body = get(front, 'sys', port=front.sys_port, host='sys.test')
    assert status == REFUSED, (status, body[:300])
    tls_error_line(front, offset, 'localhost', be_tls.ports['main'], r'UnknownIssuer')


def test_ca_system_keyword(front, allow_log, be_tls):
    """`TLSProxyCA system` in a <Location> replaces the vhost's test CA there."""
    refused(front, allow_log, 'sysca', 'localhost', be_tls.ports['main'], r'UnknownIssuer')
    # and the vhost's CA still holds next door
    get_ok(front, be_tls, 'tls', BODY_TLS)


def test_front_variables_are_the_front_connection(front, be_tls):
    """A proxied request on the plain-HTTP front has no SSL_* variables and no HTTPS, though
    its backend connection was TLS."""
    rid = new_id()
    status, body = get(front, 'tls', rid)
    assert (status, body.decode()) == (200, BODY_TLS)
    assert hits(be_tls, rid)[0]['proto'].startswith('TLSv')
    line = harness.wait_lines(front.front_log, rf'\?id={rid} ')[0]
    m = re.search(r'front_sni=(\S+) front_proto=(\S+) https=(\S+)$', line)
    assert m and m.groups()[:2] == ('-', '-') and m.group(3) in ('-', 'off'), line


# --------------------------------------------------------------------------
# 2. verification failures

@pytest.mark.parametrize('case,reason', [
    ('unknown', r'invalid peer certificate: UnknownIssuer'),
    ('expired', r'invalid peer certificate: .*Expired'),
    ('wrong', r'invalid peer certificate: .*NotValidForName'),
])
def test_verification_fails(front, be_tls2, allow_log, case, reason):
    refused(front, allow_log, case, 'localhost', be_tls2.ports[case], reason)


def test_session_not_offered_to_another_port(front, be_tls, allow_log):
    """The same server on two ports: the main one verifies, the other has a certificate for
    another name. After a request to the first, the second must still be verified (docs/proxy:
    a new connection resumes 'the TLS session it last had with that backend')."""
    # a fresh handshake (disablereuse) brings fresh tickets: earlier ones may be spent
    get_ok(front, be_tls, 'noreuse', BODY_TLS)
    refused(front, allow_log, 'wrong-same', 'localhost', be_tls.ports['wrong_same_server'],
            r'NotValidForName')


def test_no_common_version(front, be_ssl, allow_log):
    """TLSProxyProtocol TLSv1.3+ against a TLS 1.2 only backend; without it, that backend
    serves."""
    hit = get_ok(front, be_ssl, 'v12ok', BODY_SSL)
    assert hit['proto'] == 'TLSv1.2', hit
    refused(front, allow_log, 'v13only', 'localhost', be_ssl.ports['tls12'],
            r'(?i)ProtocolVersion|incompatible')


# --------------------------------------------------------------------------
# 3. SNI and the name verified

def test_sni_is_url_host(front, be_tls, be_ssl):
    assert get_ok(front, be_tls, 'tls', BODY_TLS)['sni'] == 'localhost'
    assert get_ok(front, be_ssl, 'ssl', BODY_SSL)['sni'] == 'localhost'


@MODSSL_CANNOT
def test_ip_url_sends_no_sni(front, be_tls2):
    """127.0.0.1 in the URL: no SNI, and the certificate's IP SAN is what verifies."""
    hit = get_ok(front, be_tls2, 'ipsan', BODY_TLS)
    assert hit['sni'] == '-', hit


def test_ip_url_needs_ip_san(front, be_tls, allow_log):
    refused(front, allow_log, 'ipnosan', '127.0.0.1', be_tls.ports['main'],
            r'NotValidForName')


@MODSSL_CANNOT
def test_peer_name_for_ip_url(front, be_tls):
    """TLSProxyPeerName: an IP URL whose backend's certificate names DNS names only verifies
    against the peer name, which is also the SNI."""
    hit = get_ok(front, be_tls, 'peername', BODY_TLS)
    assert hit['sni'] == 'be.test', hit


def test_preserved_host_is_sni(front, be_tls):
    """ProxyPreserveHost On: the client's Host is the name sent and verified."""
    hit = get_ok(front, be_tls, 'preserve', BODY_TLS, host='be.test')
    assert hit['sni'] == 'be.test', hit


# --------------------------------------------------------------------------
# 4. ALPN

@pytest.mark.parametrize('kind', ['tls', 'ssl'])
def test_h2_backend(front, be_tls, be_ssl, kind):
    backend, body = (be_tls, BODY_TLS) if kind == 'tls' else (be_ssl, BODY_SSL)
    hit = get_ok(front, backend, f'h2{kind}', body)
    assert hit['http'] == 'HTTP/2.0', hit
    # the same backend over https:// speaks HTTP/1.1 (no ALPN sent, or http/1.1)
    hit = get_ok(front, backend, kind, body)
    assert hit['http'] == 'HTTP/1.1', hit


def test_h2_backend_without_h2(front, be_tls2, allow_log):
    """h2:// to a backend that agrees on no ALPN protocol: the connection fails and the line
    says why; over https:// the same backend serves. The status is mod_proxy_http2's for a
    backend it could not open a session with (503, the same with mod_ssl), and it tries a
    second connection: one line per connection."""
    get_ok(front, be_tls2, 'h1only', BODY_TLS)
    allow_backend_failure(allow_log)
    offset = front.log_size()
    rid = new_id()
    status, body = get(front, 'h2none', rid)
    assert status == 503, (status, body[:300])
    if not FRONT_MODSSL:
        lines = front.wait_log(r'MTLS00035', offset)
        time.sleep(0.2)
        lines = harness.lines_matching(front.error_log, r'\[tls:error\]', offset)
        port = be_tls2.ports['h1only']
        assert 1 <= len(lines) <= 2, lines
        for line in lines:
            assert re.search(rf"MTLS00035: tls: backend localhost at 127\.0\.0\.1:{port} failed "
                             rf"during handshake: .*no ALPN protocol.*'h2'", line), line
    assert not harness.lines_matching(be_tls2.proxy_log, rf'\?id={rid} ')


# --------------------------------------------------------------------------
# ciphers

def test_ciphers_prefer(front, be_ssl):
    """TLSProxyCiphersPrefer in a <Location>: the front offers ChaCha20 first and mod_ssl,
    which takes the client's order, picks it; without it, AES first (rustls' order)."""
    assert get_ok(front, be_ssl, 'chacha', BODY_SSL)['cipher'] == \
        'TLS_CHACHA20_POLY1305_SHA256'
    assert get_ok(front, be_ssl, 'ssl', BODY_SSL)['cipher'] != 'TLS_CHACHA20_POLY1305_SHA256'


# --------------------------------------------------------------------------
# 5. connection reuse and session resumption

def test_keepalive_reuse(front, be_tls):
    n = 6
    ports = [get_ok(front, be_tls, 'reuse', BODY_TLS)['port'] for _ in range(n)]
    assert len(set(ports)) < n, f'{n} requests, {len(set(ports))} backend connections'


@MODSSL_CANNOT
@pytest.mark.parametrize('kind', ['tls', 'ssl'])
def test_resumption_without_reuse(front, be_tls, be_ssl, kind):
    backend, body = (be_tls, BODY_TLS) if kind == 'tls' else (be_ssl, BODY_SSL)
    where = 'noreuse' if kind == 'tls' else 'noreuse-ssl'
    n = 4
    got = [get_ok(front, backend, where, body) for _ in range(n)]
    assert len({h['port'] for h in got}) == n, f'connections reused with disablereuse: {got}'
    # the first may resume a session of an earlier test (same config and backend)
    assert [h['resumed'] for h in got[1:]] == ['Resumed'] * (n - 1), got


# --------------------------------------------------------------------------
# 6. machine certificates

def test_machine_certificate_chosen_by_ca(front, be_ssl):
    """Two machine certificates; the backend accepts CA A's, listed second: it is the one
    sent."""
    hit = get_ok(front, be_ssl, 'mc', BODY_SSL)
    assert hit['cn'] == 'machine-a', hit


@pytest.mark.parametrize('where', ['mc-wrong', 'mc-none'])
def test_machine_certificate_missing(front, be_ssl, allow_log, where):
    """Only CA B's certificate, or none: nothing the backend accepts, 502."""
    allow_backend_failure(allow_log)
    offset = front.log_size()
    status, body = get(front, where)
    assert status == 502, (status, body[:300])
    if not FRONT_MODSSL:
        # the backend ends the handshake (TLS 1.3: after the client's Finished, so the
        # front may see it on reading); what mod_tls says names the backend
        lines = front.wait_log(r'\[tls:error\].*MTLS00035', offset)
        assert len(lines) == 1, lines
        assert f'backend localhost at 127.0.0.1:{be_ssl.ports["client"]}' in lines[0], lines
        # the backend missed a certificate: none was sent (not CA B's, which it would call
        # an unknown CA)
        assert 'CertificateRequired' in lines[0], lines


# --------------------------------------------------------------------------
# 7. merging

def test_location_keeps_engine_and_ca(front, be_tls):
    """A <Location> that only sets TLSProxyProtocol: engine and CA come from the vhost."""
    hit = get_ok(front, be_tls, 'merge-loc', BODY_TLS)
    assert hit['proto'] == 'TLSv1.3', hit


def test_proxy_section_keeps_engine_and_ca(front, be_tls):
    hit = get_ok(front, be_tls, 'merge-proxy', BODY_TLS)
    assert hit['proto'] == 'TLSv1.3', hit


def test_proxy_section_applies(front, be_ssl, allow_log):
    """The <Proxy> section's TLSProxyProtocol is in force: the TLS 1.2 backend is refused."""
    refused(front, allow_log, 'proxysec-v13', 'localhost', be_ssl.ports['tls12'],
            r'(?i)ProtocolVersion|incompatible')


def test_engine_off_in_location(front, be_tls, allow_log):
    """TLSProxyEngine off in a <Location>: nobody does TLS for https://, mod_proxy says so
    (AH01961) and answers 500."""
    allow_log(r'AH01961', PROXY_ERRORS)
    offset = front.log_size()
    status, body = get(front, 'off')
    assert status == 500, (status, body[:300])
    front.wait_log(r'AH01961', offset)
    assert not harness.lines_matching(front.error_log, r'MTLS00035', offset)


# --------------------------------------------------------------------------
# 9. bad backends

@pytest.mark.parametrize('how,status', [('close', REFUSED), ('garbage', REFUSED),
                                        ('silent', 500 if FRONT_MODSSL else 504)])
def test_bad_backend(front, be_tls, bad_backends, allow_log, how, status):
    allow_backend_failure(allow_log)
    pid, kids = front.read_pid(), sorted(front.children())
    offset = front.log_size()
    before = bad_backends[how].accepted
    t0 = time.monotonic()
    got, body = get(front, f'bad-{how}')
    took = time.monotonic() - t0
    assert got == status, (got, body[:300])
    assert bad_backends[how].accepted > before, 'the bad backend was never connected'
    if how == 'silent':
        assert 1.5 < took < 15, took
    if how == 'garbage' and not FRONT_MODSSL:
        tls_error_line(front, offset, 'localhost', bad_backends[how].port, r'.')
    # the front goes on serving, with the same processes
    get_ok(front, be_tls, 'tls', BODY_TLS)
    assert front.read_pid() == pid and front.alive()
    assert sorted(front.children()) == kids
    assert not harness.lines_matching(front.error_log, r'exit signal|AH00052', offset)


# --------------------------------------------------------------------------
# mod_ssl loaded as well

def test_with_mod_ssl_proxy_engine(apache_factory, docroot, ca, pki, be_tls):
    """SSLProxyEngine and TLSProxyEngine both on: one startup notice naming the
    TLSProxyEngine line, and mod_tls takes the backend connection (mod_ssl, trusting
    another CA only, would refuse it)."""
    port = harness.free_port()
    body = f"""{PROXY_MODULES}
Listen 127.0.0.1:{port}
SSLSessionCache "shmcb:{harness.mkdtemp('tls-both-cache-')}/scache(512000)"
<VirtualHost 127.0.0.1:{port}>
  ServerName both.test
  SSLProxyEngine on
  SSLProxyVerify require
  SSLProxyCACertificateFile {pki['other_ca'].cert_path}
  TLSProxyEngine on
  TLSProxyCA {ca.cert_path}
  ProxyPass /both/ https://localhost:{be_tls.ports['main']}/w-both/ retry=0
</VirtualHost>
"""
    a = apache_factory(body, docroot=docroot, ssl=True, name='proxy-both')
    a.start()
    line = a.line_of('TLSProxyEngine on')
    notices = a.wait_log(r'MTLS00036')
    time.sleep(0.2)
    notices = harness.lines_matching(a.error_log, r'MTLS00036')
    assert len(notices) == 1, a.read_log()
    assert re.search(rf'TLSProxyEngine on at {re.escape(a.conf_path)}:{line}:', notices[0]), \
        notices[0]
    rid = new_id()
    status, body = harness.http_get(port, f'/both/whoami.txt?id={rid}', hostname='both.test')
    assert (status, body.decode(errors='replace')) == (200, BODY_TLS), a.read_log()
    assert hits(be_tls, rid)[0]['sni'] == 'localhost'


# --------------------------------------------------------------------------
# 8. configuration errors

def _conf_front(apache_factory, docroot, inner, extra=''):
    port = harness.free_port()
    body = f"""{PROXY_MODULES}
Listen 127.0.0.1:{port}
{extra}
<VirtualHost 127.0.0.1:{port}>
  ServerName conf.test
  TLSProxyEngine on
{inner}
  ProxyPass /x/ https://localhost:{port}/
</VirtualHost>
"""
    return apache_factory(body, docroot=docroot, name='proxy-conf')


def _conf_fails(a, marker, patterns):
    rc, out = a.configtest()
    assert rc != 0, f'configtest passed:\n{out}'
    loc = harness.conf_location_re(a.conf_path, a.line_of(marker))
    assert loc.search(out), f'{a.conf_path}:{a.line_of(marker)} not named in:\n{out}'
    for rx in patterns:
        assert re.search(rx, out), f'{rx!r} not in:\n{out}'


def test_conf_good(apache_factory, docroot, ca, pki):
    ma = pki['machine_a']
    a = _conf_front(apache_factory, docroot, f"""  TLSProxyCA {ca.cert_path}
  TLSProxyProtocol TLSv1.3+
  TLSProxyCiphersPrefer TLS13_AES_256_GCM_SHA384
  TLSProxyMachineCertificate {ma.cert_path} {ma.key_path}
  TLSProxyPeerName be.test""")
    rc, out = a.configtest()
    assert rc == 0, out


@pytest.mark.parametrize('inner,marker,patterns', [
    ('  TLSProxyEngine bogus', 'TLSProxyEngine bogus', [r'TLSProxyEngine']),
    ('  TLSProxyCA /nonexistent/proxy-ca.pem', 'TLSProxyCA', [r'/nonexistent/proxy-ca\.pem']),
    ('  TLSProxyProtocol TLSv9.9+', 'TLSProxyProtocol', [r'TLSProxyProtocol', r'TLSv9\.9\+']),
    ('  TLSProxyCiphersPrefer TLS_NO_SUCH_CIPHER', 'TLSProxyCiphersPrefer',
     [r'TLSProxyCiphersPrefer', r'TLS_NO_SUCH_CIPHER']),
    ('  TLSProxyMachineCertificate /nonexistent/m.crt /nonexistent/m.key',
     'TLSProxyMachineCertificate', [r'/nonexistent/m\.(crt|key)']),
], ids=['engine', 'ca-missing', 'protocol', 'cipher', 'machine-missing'])
def test_conf_error(apache_factory, docroot, inner, marker, patterns):
    _conf_fails(_conf_front(apache_factory, docroot, inner), marker, patterns)


def test_conf_machine_key_mismatch(apache_factory, docroot, pki):
    ma, mb = pki['machine_a'], pki['machine_b']
    a = _conf_front(apache_factory, docroot,
                    f'  TLSProxyMachineCertificate {ma.cert_path} {mb.key_path}')
    _conf_fails(a, 'TLSProxyMachineCertificate',
                [re.escape(ma.cert_path) + '|' + re.escape(mb.key_path), r'(?i)match'])

"""SSL_* variables: CGI environment, logging, mod_rewrite and expressions."""
import json
import os
import re
import ssl

import pytest

import harness

TLS12 = ['--tlsv1.2', '--tls-max', '1.2']
TLS13 = ['--tlsv1.3']


@pytest.fixture(scope='module')
def server(docroot, module_path, ca):
    a_cert, a_key = ca.issue(['a.test'])
    b_cert, b_key = ca.issue(['b.test'])
    c_cert, c_key = ca.issue(['c.test'])
    d_cert, d_key = ca.issue(['d.test'])
    logdir = harness.mkdtemp('tls-varlog-')
    tls_log = os.path.join(logdir, 'tls.log')
    port, plain = harness.free_port(), harness.free_port()
    a = harness.Apache(f"""
Listen 127.0.0.1:{port}
Listen 127.0.0.1:{plain}
TLSEngine 127.0.0.1:{port}
LogFormat "tlslog %{{SSL_PROTOCOL}}x %{{SSL_CIPHER}}x %{{SSL_TLS_SNI}}x %U" tlsfmt
RewriteEngine on
RewriteCond %{{HTTPS}} =on
RewriteRule ^/rw-https$ /hello.txt [PT]
<If "%{{SSL:SSL_PROTOCOL}} == 'TLSv1.3'">
  Header always set X-Proto tls13
</If>
<If "%{{HTTPS}} == 'on'">
  Header always set X-Https yes
</If>
Header always set X-Proto-Var "%{{SSL_PROTOCOL}}s"
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  Protocols h2 http/1.1
  TLSCertificate {a_cert} {a_key}
  TLSOptions +StdEnvVars +ExportCertData
  CustomLog "{tls_log}" tlsfmt
  RewriteEngine on
  RewriteOptions Inherit
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName b.test
  TLSCertificate {b_cert} {b_key}
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName c.test
  TLSCertificate {c_cert} {c_key}
  TLSOptions +StdEnvVars
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName d.test
  TLSCertificate {d_cert} {d_key}
  <Location /cgi-bin/>
    TLSOptions +StdEnvVars
  </Location>
</VirtualHost>
""", docroot, name='vars')
    a.port, a.plain_port, a.tls_log = port, plain, tls_log
    a.pems = {'a': harness.pem_of(a_cert)}
    a.start()
    yield a
    a.stop()


def cgi_env(ca, server, host='a.test', args=()):
    r = harness.curl(ca, server.port, '/cgi-bin/env.py', host=host,
                     args=['--http1.1'] + list(args))
    assert (r.rc, r.status) == (0, 200), r
    return json.loads(r.body)


@pytest.mark.parametrize('tls,proto', [(TLS12, 'TLSv1.2'), (TLS13, 'TLSv1.3')],
                         ids=['tls12', 'tls13'])
def test_std_env_vars(ca, server, tls, proto):
    env = cgi_env(ca, server, args=tls)
    assert env.get('HTTPS') == 'on'
    assert env.get('SSL_PROTOCOL') == proto
    assert re.fullmatch(r'TLS_[A-Z0-9_]+', env.get('SSL_CIPHER', '')), env.get('SSL_CIPHER')
    if proto == 'TLSv1.2':
        assert '_WITH_' in env['SSL_CIPHER']
    assert env.get('SSL_TLS_SNI') == 'a.test'
    assert env.get('SSL_SESSION_RESUMED') == 'Initial'
    assert env.get('SSL_VERSION_INTERFACE', '').startswith('mod_tls'), env
    assert env.get('SSL_VERSION_LIBRARY') == f'rustls/{rustls_version()}', env
    # what scripts written for mod_ssl read: constant facts of rustls
    assert env.get('SSL_SECURE_RENEG') == 'false', env
    assert env.get('SSL_COMPRESS_METHOD') == 'NULL', env
    assert env.get('SSL_CIPHER_EXPORT') == 'false', env
    bits = '128' if '_AES_128_' in env['SSL_CIPHER'] else '256'
    assert env.get('SSL_CIPHER_USEKEYSIZE') == env.get('SSL_CIPHER_ALGKEYSIZE') == bits, env


def rustls_version():
    """The rustls version cargo resolved for this build, from the lock file it wrote."""
    with open(os.path.join(harness.TOP_DIR, 'mtls', 'Cargo.lock')) as f:
        m = re.search(r'name = "rustls"\nversion = "([0-9.]+)"', f.read())
    assert m and re.fullmatch(r'0\.23\.\d+', m.group(1)), 'rustls 0.23 not in Cargo.lock'
    return m.group(1)


def test_cipher_matches_connection(ca, server):
    conn = harness.HTTPSConn(ca, server.port, 'a.test',
                             min_version=ssl.TLSVersion.TLSv1_3)
    try:
        conn.request('GET', '/cgi-bin/env.py', headers={'Host': 'a.test'})
        r = conn.getresponse()
        env = json.loads(r.read())
        # TLS 1.3 suites have the same name in OpenSSL and IANA spelling
        assert env['SSL_CIPHER'] == conn.sock.cipher()[0]
        assert env['SSL_PROTOCOL'] == conn.sock.version()
    finally:
        conn.close()


def test_export_cert_data(ca, server):
    env = cgi_env(ca, server)
    pem = env.get('SSL_SERVER_CERT')
    assert pem, 'SSL_SERVER_CERT missing'
    assert pem.strip() == server.pems['a'].strip()


def test_std_env_without_cert_data(ca, server):
    env = cgi_env(ca, server, host='c.test')
    assert env.get('SSL_PROTOCOL') in ('TLSv1.2', 'TLSv1.3')
    assert 'SSL_SERVER_CERT' not in env


def test_no_std_env_vars(ca, server):
    env = cgi_env(ca, server, host='b.test')
    for name in ('SSL_PROTOCOL', 'SSL_CIPHER', 'SSL_TLS_SNI', 'SSL_SESSION_RESUMED',
                 'SSL_VERSION_INTERFACE', 'SSL_VERSION_LIBRARY', 'SSL_SERVER_CERT'):
        assert name not in env, name


def test_std_env_vars_in_location(ca, server):
    env = cgi_env(ca, server, host='d.test')
    assert env.get('SSL_TLS_SNI') == 'd.test'
    assert env.get('SSL_PROTOCOL') in ('TLSv1.2', 'TLSv1.3')


def test_log_format(ca, server):
    r = harness.curl(ca, server.port, '/hello.txt', args=['--http1.1'] + TLS13)
    assert r.status == 200, r
    r = harness.curl(ca, server.port, '/index.html', args=['--http1.1'] + TLS12)
    assert r.status == 200, r
    harness.wait_lines(server.tls_log, r' /index\.html$')
    with open(server.tls_log) as f:
        text = f.read()
    assert re.search(r'^tlslog TLSv1\.3 TLS_\S+ a\.test /hello\.txt$', text, re.M), text
    assert re.search(r'^tlslog TLSv1\.2 TLS_\S+_WITH_\S+ a\.test /index\.html$', text, re.M), text


def test_rewrite_https(ca, server):
    r = harness.curl(ca, server.port, '/rw-https', args=['--http1.1'])
    assert (r.rc, r.status, r.body) == (0, 200, b'Hello, TLS!\n'), r
    status, _ = harness.http_get(server.plain_port, '/rw-https')
    assert status == 404


@pytest.mark.parametrize('tls,proto', [(TLS12, 'TLSv1.2'), (TLS13, 'TLSv1.3')],
                         ids=['tls12', 'tls13'])
def test_expression_and_header(ca, server, tls, proto):
    for host in ('a.test', 'b.test'):  # independent of TLSOptions
        r = harness.curl(ca, server.port, '/hello.txt', host=host,
                         args=['--http1.1', '-D', '-'] + tls)
        assert (r.rc, r.status) == (0, 200), r
        headers = r.text.lower()
        assert 'x-https: yes' in headers, r.text
        assert ('x-proto: tls13' in headers) == (proto == 'TLSv1.3'), r.text
        assert f'x-proto-var: {proto.lower()}' in headers, r.text


def test_plain_port_has_no_tls(server):
    conn = harness.http.client.HTTPConnection('127.0.0.1', server.plain_port, timeout=10)
    try:
        conn.request('GET', '/hello.txt')
        r = conn.getresponse()
        r.read()
        assert r.status == 200
        assert r.getheader('X-Https') is None
        assert r.getheader('X-Proto') is None
    finally:
        conn.close()


@pytest.mark.parametrize('tls,proto', [(TLS12, 'TLSv1.2'), (TLS13, 'TLSv1.3')],
                         ids=['tls12', 'tls13'])
def test_h2_vars(ca, server, tls, proto):
    """A request on an HTTP/2 stream runs on a secondary connection: the variables are
    those of the TLS connection below it."""
    r = harness.curl(ca, server.port, '/cgi-bin/env.py', args=['--http2'] + tls)
    assert (r.rc, r.status, r.http_version) == (0, 200, '2'), r
    env = json.loads(r.body)
    assert env.get('SERVER_PROTOCOL') == 'HTTP/2.0', env
    assert env.get('HTTPS') == 'on'
    assert env.get('SSL_TLS_SNI') == 'a.test'
    assert env.get('SSL_PROTOCOL') == proto, env
    assert re.fullmatch(r'TLS_[A-Z0-9_]+', env.get('SSL_CIPHER', '')), env
    assert env.get('SSL_SERVER_CERT', '').strip() == server.pems['a'].strip()


def _env_over(sock):
    sock.sendall(b'GET /cgi-bin/env.py HTTP/1.0\r\nHost: a.test\r\n\r\n')
    got = harness.read_until_close(sock)
    assert got.end == 'close', got
    head, _, body = got.data.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200'), head
    return json.loads(body)


@pytest.mark.parametrize('version', [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=['tls12', 'tls13'])
def test_session_resumed(ca, server, version):
    ctx = harness.ssl_context(ca, max_version=version, min_version=version)
    session = None
    seen = []
    for _ in range(3):
        raw = harness.socket.create_connection(('127.0.0.1', server.port), timeout=10)
        with ctx.wrap_socket(raw, server_hostname='a.test', session=session) as s:
            env = _env_over(s)
            seen.append((s.session_reused, env.get('SSL_SESSION_RESUMED')))
            session = s.session
    assert seen[0] == (False, 'Initial'), seen
    # the client resumed: the variable must say so
    assert any(reused for reused, _ in seen[1:]), seen
    for reused, var in seen[1:]:
        assert var == ('Resumed' if reused else 'Initial'), seen


@pytest.mark.parametrize('version', [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=['tls12', 'tls13'])
def test_server_cert_vars_when_resumed(ca, server, version):
    """A resumed handshake sends no certificate; the SSL_SERVER_* variables still tell
    the one of the session (the vhost has a single certificate)."""
    ctx = harness.ssl_context(ca, max_version=version, min_version=version)
    session = None
    envs = []
    for _ in range(3):
        raw = harness.socket.create_connection(('127.0.0.1', server.port), timeout=10)
        with ctx.wrap_socket(raw, server_hostname='a.test', session=session) as s:
            envs.append((s.session_reused, _env_over(s)))
            session = s.session
    assert any(reused for reused, _ in envs[1:]), 'no resumption to test with'
    for reused, env in envs:
        assert env.get('SSL_SERVER_S_DN_CN') == envs[0][1].get('SSL_SERVER_S_DN_CN'), env
        assert env.get('SSL_SERVER_S_DN_CN'), (reused, env)

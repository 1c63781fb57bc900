"""mod_tls and mod_ssl side by side, with mod_proxy: serving clients, and TLS to backends.

Every server here is a real Apache on 127.0.0.1. One backend (mod_tls) serves all proxy tests;
it answers with headers that tell how the TLS connection to it was made:

- X-Back-Cipher: the suite. The two client sides are set up to prefer different ones:
  mod_tls' side `TLSProxyCiphersPrefer TLS_AES_128_GCM_SHA256` (the backend honours the
  client's order), mod_ssl's side `SSLProxyCipherSuite TLSv1.3 TLS_CHACHA20_POLY1305_SHA256`;
  OpenSSL and rustls left alone would both pick TLS_AES_256_GCM_SHA384. So the cipher names
  the module that made the connection.
- X-Back-SNI: the name the client sent (unset for none), X-Back-CN: the backend's own
  certificate name.

URLs name the backend by IP (no name resolution, 127.0.0.1 only). Its certificate is valid for
`back.test` (a DNS SAN, for TLSProxyPeerName) and for 127.0.0.1: as an IP SAN, which is what
rustls checks for an IP URL, and as the subject CN, which is what mod_ssl matches (it does not
look at IP SANs: AH02411 otherwise). Both modules verify the backend fully.
"""
import json
import os
import re
import ssl

import pytest

import harness

PROXY_MODULES = f"""
LoadModule proxy_module {harness.MODULES_DIR}/mod_proxy.so
LoadModule proxy_http_module {harness.MODULES_DIR}/mod_proxy_http.so
"""

BACK_CN = '127.0.0.1'                        # the backend certificate's subject CN
TLS_PREF = 'TLS_AES_128_GCM_SHA256'          # what mod_tls' side is told to prefer
SSL_ONLY = 'TLS_CHACHA20_POLY1305_SHA256'    # the only TLS 1.3 suite mod_ssl's side offers
SSL_SUITES = f'SSLProxyCipherSuite TLSv1.3 {SSL_ONLY}'

NO_SNI = '(null)'                           # mod_headers' %{VAR}s of an unset variable

# headers the backend adds, and the front's view of its own connection
BACK_HEADERS = """
  Header always set X-Back-Cipher "%{SSL_CIPHER}s"
  Header always set X-Back-SNI "%{SSL_TLS_SNI}s"
  Header always set X-Back-CN "%{SSL_SERVER_S_DN_CN}s"
  Header always set X-Back-Protocol "%{SSL_PROTOCOL}s"
"""


@pytest.fixture(scope='module')
def pki(ca):
    return {
        'back': ca.issue(['back.test'], key_type='ec', days=90, ips=['127.0.0.1'], cn='127.0.0.1'),
        'front_tls': ca.issue(['front-tls.test'], key_type='ec', days=90),
        'front_ssl': ca.issue(['front-ssl.test'], key_type='ec', days=90),
    }


@pytest.fixture(scope='module')
def backend(ca, pki, module_path):
    """A mod_tls https backend: /back.txt, /a/back.txt, /b/back.txt, /cgi-bin/env.py."""
    doc = harness.make_docroot(os.path.join(harness.mkdtemp('tls-p23-back-'), 'htdocs'))
    harness.write_file(os.path.join(doc, 'back.txt'), 'backend body\n')
    for sub in ('a', 'b', 'c', 'e', 'f'):
        os.makedirs(os.path.join(doc, sub), mode=0o755)
        harness.write_file(os.path.join(doc, sub, 'back.txt'), f'backend body {sub}\n')
    port = harness.free_port()
    cert, key = pki['back']
    a = harness.Apache(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName back.test
  TLSCertificate {cert} {key}
  TLSOptions +StdEnvVars
{BACK_HEADERS}
</VirtualHost>
""", doc, name='p23-back')
    a.port = port
    a.start()
    yield a
    a.stop()


def front_url(port, path):
    return f'https://127.0.0.1:{port}{path}'


def get(ca, port, path, sni, **kw):
    """(status, headers with lower-case names, body text) of a GET over TLS to 127.0.0.1."""
    status, headers, body = harness.https_get(ca, port, path, servername=sni, **kw)
    return status, {k.lower(): v for k, v in headers.items()}, body.decode(errors='replace')


def proxied_through(ca, port, front_name, backend, tag, cipher):
    """The front serves its own certificate, and /p/back.txt comes from the backend's /<tag>/
    over a connection with `cipher` (which names the module that made it), to the backend's
    certificate, without SNI (an IP URL)."""
    info = harness.tls_info(ca, port, servername=front_name)
    assert info['cn'] == front_name, info
    status, headers, body = get(ca, port, '/p/back.txt', front_name)
    assert (status, body) == (200, f'backend body {tag}\n'), headers
    assert headers.get('x-back-cipher') == cipher, headers
    assert headers.get('x-back-cn') == BACK_CN, headers
    assert headers.get('x-back-sni') == NO_SNI, headers
    # (the backend logs the request after sending the response, so it may come later)
    harness.wait_lines(backend.access_log, re.escape(f'"GET /{tag}/back.txt '), timeout=15)


# --------------------------------------------------------------------------
# a. each module serves its own addresses

def test_both_serve_their_addresses(ca, pki, docroot, apache_factory):
    """mod_tls on one address, mod_ssl on another, one Apache: each handshake shows its own
    certificate, each answers with its own vhost's body, and each request was served by the
    module meant for it (SSL_VERSION_INTERFACE names the module)."""
    tls_port, ssl_port = harness.free_port(), harness.free_port()
    doc = harness.mkdtemp('tls-p23-a-')
    for sub in ('tls', 'ssl'):
        os.makedirs(os.path.join(doc, sub), mode=0o755)
        harness.write_file(os.path.join(doc, sub, 'who.txt'), f'served by the {sub} vhost\n')
    tls_cert, tls_key = pki['front_tls']
    ssl_cert, ssl_key = pki['front_ssl']
    a = apache_factory(f"""
SSLSessionCache "shmcb:{doc}/ssl_scache(512000)"
Listen 127.0.0.1:{tls_port}
Listen 127.0.0.1:{ssl_port}
TLSEngine 127.0.0.1:{tls_port}
<Directory "{doc}">
  Require all granted
</Directory>
Header always set X-Module "%{{SSL_VERSION_INTERFACE}}s"
Header always set X-Sni "%{{SSL_TLS_SNI}}s"
<VirtualHost 127.0.0.1:{tls_port}>
  ServerName front-tls.test
  DocumentRoot "{doc}/tls"
  TLSCertificate {tls_cert} {tls_key}
</VirtualHost>
<VirtualHost 127.0.0.1:{ssl_port}>
  ServerName front-ssl.test
  DocumentRoot "{doc}/ssl"
  SSLEngine on
  SSLCertificateFile {ssl_cert}
  SSLCertificateKeyFile {ssl_key}
</VirtualHost>
""", ssl=True, name='p23-a')
    a.start()
    for which, port in (('tls', tls_port), ('ssl', ssl_port)):
        name = f'front-{which}.test'
        info = harness.tls_info(ca, port, servername=name)
        assert (info['cn'], info['names']) == (name, [name]), (which, info)
        status, headers, body = get(ca, port, '/who.txt', name)
        assert (status, body) == (200, f'served by the {which} vhost\n'), (which, headers)
        module = 'mod_tls/' if which == 'tls' else 'mod_ssl/'
        assert headers.get('x-module', '').startswith(module), (which, headers)
        assert headers.get('x-sni') == name, (which, headers)
    # a name of the other module's address is not served here (each keeps its own certs)
    with pytest.raises(ssl.SSLError, match='UNRECOGNIZED_NAME'):
        harness.tls_info(ca, tls_port, servername='front-ssl.test')
    a.wait_log(r'MTLS00010')   # strict SNI refused the foreign name, at info


# --------------------------------------------------------------------------
# b. mod_tls serves the client, mod_ssl the backend connection

def test_tls_front_modssl_backend(ca, pki, backend, apache_factory):
    """A mod_tls front proxies through mod_ssl (SSLProxyEngine on, TLSProxyEngine not set):
    200 with the backend's body; the backend saw mod_ssl's cipher and the URL had no name
    to send as SNI."""
    port = harness.free_port()
    cert, key = pki['front_tls']
    d = harness.mkdtemp('tls-p23-b-')
    a = apache_factory(f"""
{PROXY_MODULES}
SSLSessionCache "shmcb:{d}/ssl_scache(512000)"
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
ProxyTimeout 10
<VirtualHost 127.0.0.1:{port}>
  ServerName front-tls.test
  TLSCertificate {cert} {key}
  SSLProxyEngine on
  SSLProxyVerify require
  SSLProxyCACertificateFile {ca.cert_path}
  {SSL_SUITES}
  ProxyPass /p/ https://127.0.0.1:{backend.port}/b/
</VirtualHost>
""", ssl=True, name='p23-b')
    a.start()
    proxied_through(ca, port, 'front-tls.test', backend, 'b', SSL_ONLY)


# --------------------------------------------------------------------------
# c. mod_ssl serves the client, mod_tls the backend connection

def test_modssl_front_tls_backend(ca, pki, backend, apache_factory):
    """A mod_ssl front (no TLSEngine anywhere) proxies through mod_tls (TLSProxyEngine on,
    TLSProxyCA): 200 with the backend's body, made with mod_tls' preferred cipher. mod_ssl
    could not have made it: SSLProxyEngine is off (mod_proxy would answer 500, AH00961)."""
    port = harness.free_port()
    cert, key = pki['front_ssl']
    d = harness.mkdtemp('tls-p23-c-')
    a = apache_factory(f"""
{PROXY_MODULES}
SSLSessionCache "shmcb:{d}/ssl_scache(512000)"
Listen 127.0.0.1:{port}
ProxyTimeout 10
<VirtualHost 127.0.0.1:{port}>
  ServerName front-ssl.test
  SSLEngine on
  SSLCertificateFile {cert}
  SSLCertificateKeyFile {key}
  TLSProxyEngine on
  TLSProxyCA {ca.cert_path}
  TLSProxyCiphersPrefer {TLS_PREF}
  ProxyPass /p/ https://127.0.0.1:{backend.port}/c/
</VirtualHost>
""", ssl=True, name='p23-c')
    a.start()
    # an IP URL without TLSProxyPeerName: no SNI (the IP SAN was verified)
    proxied_through(ca, port, 'front-ssl.test', backend, 'c', TLS_PREF)


# --------------------------------------------------------------------------
# d. both kinds of backend TLS in one virtual host

def test_both_backend_modules_in_one_vhost(ca, pki, backend, apache_factory):
    """/a/ goes to its backend through mod_tls, /b/ through mod_ssl, in one virtual host (the
    settings in <Proxy> sections, since SSLProxyEngine has no <Location> context). Each
    request's backend connection shows its module's cipher, and only /a/ leaves mod_tls'
    debug line of a backend handshake; every request is sent twice on one front connection,
    so that reused backend connections are checked as well."""
    port = harness.free_port()
    cert, key = pki['front_tls']
    d = harness.mkdtemp('tls-p23-d-')
    bp = backend.port
    a = apache_factory(f"""
{PROXY_MODULES}
SSLSessionCache "shmcb:{d}/ssl_scache(512000)"
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
ProxyTimeout 10
<VirtualHost 127.0.0.1:{port}>
  ServerName front-tls.test
  TLSCertificate {cert} {key}
  SSLProxyVerify require
  SSLProxyCACertificateFile {ca.cert_path}
  {SSL_SUITES}
  TLSProxyCA {ca.cert_path}
  TLSProxyCiphersPrefer {TLS_PREF}
  <Proxy "https://127.0.0.1:{bp}/a/">
    TLSProxyEngine on
  </Proxy>
  <Proxy "https://127.0.0.1:{bp}/b/">
    SSLProxyEngine on
    TLSProxyEngine off
  </Proxy>
  <Location /a/>
    ProxyPass https://127.0.0.1:{bp}/a/
  </Location>
  <Location /b/>
    ProxyPass https://127.0.0.1:{bp}/b/
  </Location>
</VirtualHost>
""", ssl=True, log_level='warn tls:debug', name='p23-d')
    a.start()
    want = {'a': TLS_PREF, 'b': SSL_ONLY}
    tls_handshakes = 0
    for which in ('a', 'b', 'a', 'b'):
        offset = a.log_size()
        conn = harness.HTTPSConn(ca, port, 'front-tls.test')
        try:
            for _ in range(2):
                conn.request('GET', f'/{which}/back.txt', headers={'Host': 'front-tls.test'})
                r = conn.getresponse()
                body = r.read().decode()
                assert (r.status, body) == (200, f'backend body {which}\n'), (which, body)
                cipher = r.getheader('X-Back-Cipher')
                assert cipher == want[which], (
                    f'/{which}/ was meant for {"mod_tls" if which == "a" else "mod_ssl"}, but '
                    f'the backend saw {cipher} (mod_tls side prefers {TLS_PREF}, mod_ssl side '
                    f'offers only {SSL_ONLY})')
        finally:
            conn.close()
        # mod_tls' handshake line (MTLS00012) for a backend connection names it as [remote]
        ours = harness.lines_matching(a.error_log, rf'\[remote 127\.0\.0\.1:{bp}\].*MTLS00012',
                                      offset)
        if which == 'b':
            assert not ours, f'mod_tls made a backend handshake for /b/: {ours}'
        else:
            tls_handshakes += len(ours)
    # the backend connection of /a/ may be kept and reused, but it was made once at least
    assert tls_handshakes >= 1, 'mod_tls logged no backend handshake for /a/:\n' + a.read_log()


# --------------------------------------------------------------------------
# e. TLSProxyEngine on and SSLProxyEngine on in one scope

def test_both_engines_on_tls_wins(ca, pki, backend, apache_factory):
    """Both TLSProxyEngine on and SSLProxyEngine on in one virtual host: mod_tls makes the
    backend connection (its cipher; mod_ssl's side there trusts another CA and could not have
    verified the backend), and the start logs the MTLS00036 notice once, naming the
    TLSProxyEngine line."""
    port = harness.free_port()
    cert, key = pki['front_tls']
    other = harness.CA('p23 other CA')
    d = harness.mkdtemp('tls-p23-e-')
    a = apache_factory(f"""
{PROXY_MODULES}
SSLSessionCache "shmcb:{d}/ssl_scache(512000)"
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
ProxyTimeout 10
<VirtualHost 127.0.0.1:{port}>
  ServerName front-tls.test
  TLSCertificate {cert} {key}
  SSLProxyEngine on
  SSLProxyVerify require
  SSLProxyCACertificateFile {other.cert_path}
  {SSL_SUITES}
  TLSProxyEngine on
  TLSProxyCA {ca.cert_path}
  TLSProxyCiphersPrefer {TLS_PREF}
  ProxyPass /p/ https://127.0.0.1:{backend.port}/e/
</VirtualHost>
""", ssl=True, name='p23-e')
    a.start()
    for _ in range(2):
        status, headers, body = get(ca, port, '/p/back.txt', 'front-tls.test')
        assert (status, body) == (200, 'backend body e\n'), headers
        assert headers.get('x-back-cipher') == TLS_PREF, headers
    line = a.line_of('TLSProxyEngine on')
    notices = a.wait_log(r'MTLS00036')
    assert len(notices) == 1, notices
    assert harness.conf_location_re(a.conf_path, line).search(notices[0]), (line, notices)
    assert re.search(r'\[tls:notice\]', notices[0]), notices
    assert 'mod_tls takes the backend connections' in notices[0], notices


# --------------------------------------------------------------------------
# f. the front request's variables are the front connection's

FRONT_VARS = """
  Header always set X-Front-CN "%{SSL_SERVER_S_DN_CN}s"
  Header always set X-Front-SNI "%{SSL_TLS_SNI}s"
  Header always set X-Front-Protocol "%{SSL_PROTOCOL}s"
  Header always set X-Front-HTTPS "expr=%{HTTPS}"
  Header always set X-Front-Expr "expr=%{SSL:SSL_SERVER_S_DN_CN}/%{SSL:SSL_TLS_SNI}"
  RequestHeader set X-Front-Req "%{SSL_SERVER_S_DN_CN}s/%{SSL_TLS_SNI}s/%{SSL_PROTOCOL}s"
"""
FRONT_KEYS = ('x-front-cn', 'x-front-sni', 'x-front-protocol', 'x-front-https',
              'x-front-expr')


def test_front_variables_stay_the_fronts(ca, pki, backend, apache_factory):
    """The front (mod_tls, TLS 1.2 to the client, certificate front-tls.test) proxies through
    mod_tls (TLS 1.3 to the backend, SNI back.test, certificate CN 127.0.0.1). Its own
    request's SSL_* variables and HTTPS, read after the backend answered (response headers,
    access log) and before (a request header the backend echoes), are the client
    connection's, the same as on a path that is not proxied. A plain-http front through the
    same backend TLS has HTTPS off and no SSL_* values at all."""
    port, plain = harness.free_port(), harness.free_port()
    cert, key = pki['front_tls']
    d = harness.mkdtemp('tls-p23-f-')
    flog = os.path.join(d, 'front.log')
    a = apache_factory(f"""
{PROXY_MODULES}
Listen 127.0.0.1:{port}
Listen 127.0.0.1:{plain}
TLSEngine 127.0.0.1:{port}
ProxyTimeout 10
LogFormat "%U|%{{SSL_SERVER_S_DN_CN}}x|%{{SSL_TLS_SNI}}x|%{{SSL_PROTOCOL}}x|%{{HTTPS}}x" front
CustomLog "{flog}" front
TLSProxyEngine on
TLSProxyCA {ca.cert_path}
TLSProxyPeerName back.test
<VirtualHost 127.0.0.1:{port}>
  ServerName front-tls.test
  TLSCertificate {cert} {key}
{FRONT_VARS}
  ProxyPass /p/ https://127.0.0.1:{backend.port}/
</VirtualHost>
<VirtualHost 127.0.0.1:{plain}>
  ServerName front-plain.test
{FRONT_VARS}
  ProxyPass /p/ https://127.0.0.1:{backend.port}/
</VirtualHost>
""", name='p23-f')
    a.start()
    conn = harness.HTTPSConn(ca, port, 'front-tls.test', max_version=ssl.TLSVersion.TLSv1_2)
    got = {}
    try:
        for path in ('/hello.txt', '/p/f/back.txt', '/p/cgi-bin/env.py', '/hello.txt'):
            conn.request('GET', path, headers={'Host': 'front-tls.test'})
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200, (path, r.status, body[:300])
            got.setdefault(path, []).append(
                ({k: r.getheader(k) for k in FRONT_KEYS}, r.getheader('X-Back-SNI'), body))
    finally:
        conn.close()
    front = {'x-front-cn': 'front-tls.test', 'x-front-sni': 'front-tls.test',
             'x-front-protocol': 'TLSv1.2', 'x-front-https': 'on',
             'x-front-expr': 'front-tls.test/front-tls.test'}
    for path, answers in got.items():
        for hdrs, back_sni, _ in answers:
            assert hdrs == front, (path, hdrs)
            if path.startswith('/p/'):
                # the backend connection really was another TLS connection
                assert back_sni == 'back.test', (path, back_sni)
    assert got['/p/f/back.txt'][0][2] == b'backend body f\n'
    env = json.loads(got['/p/cgi-bin/env.py'][0][2])
    # what the backend saw of its own connection, and the front's request header
    assert (env.get('SSL_SERVER_S_DN_CN'), env.get('SSL_TLS_SNI'), env.get('SSL_PROTOCOL'),
            env.get('HTTPS')) == (BACK_CN, 'back.test', 'TLSv1.3', 'on'), env
    assert env.get('HTTP_X_FRONT_REQ') == 'front-tls.test/front-tls.test/TLSv1.2', env
    lines = harness.wait_lines(flog, r'^/p/', count=2)
    for ln in lines:
        assert ln.split('|')[1:] == ['front-tls.test', 'front-tls.test', 'TLSv1.2', 'on'], ln

    # the plain front: nothing of TLS on its side, though its backend connection is TLS
    for path in ('/hello.txt', '/p/cgi-bin/env.py'):
        c = harness.http.client.HTTPConnection('127.0.0.1', plain, timeout=15)
        try:
            c.request('GET', path, headers={'Host': 'front-plain.test'})
            r = c.getresponse()
            body = r.read()
            hdrs = {k: r.getheader(k) for k in FRONT_KEYS}
        finally:
            c.close()
        assert r.status == 200, (path, r.status, body[:300])
        assert hdrs['x-front-https'] == 'off', (path, hdrs)
        for k in ('x-front-cn', 'x-front-sni', 'x-front-protocol'):
            assert hdrs[k] in (NO_SNI, ''), (path, hdrs)
        assert hdrs['x-front-expr'] == '/', (path, hdrs)
        if path.startswith('/p/'):
            env = json.loads(body)
            assert env.get('HTTP_X_FRONT_REQ') == '(null)/(null)/(null)', env
            assert env.get('SSL_TLS_SNI') == 'back.test', env

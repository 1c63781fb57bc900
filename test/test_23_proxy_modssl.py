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
import datetime
import ipaddress
import os
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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


def issue(ca, cn, dns=(), ips=(), client=False):
    """A leaf certificate of `ca` (harness.CA) with DNS and IP SANs; (cert_path, key_path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(i))
                                             for i in ips]
    eku = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(ca.cert.subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=90))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([eku]), critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = b.sign(ca.key, hashes.SHA256())
    base = ca.path(f'p23-{cn}')
    harness.write_file(base + '.crt', cert.public_bytes(serialization.Encoding.PEM))
    harness.write_file(base + '.key', key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return base + '.crt', base + '.key'


@pytest.fixture(scope='module')
def pki(ca):
    return {
        'back': issue(ca, '127.0.0.1', dns=['back.test'], ips=['127.0.0.1']),
        'front_tls': issue(ca, 'front-tls.test', dns=['front-tls.test']),
        'front_ssl': issue(ca, 'front-ssl.test', dns=['front-ssl.test']),
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


def access_lines(inst, path):
    return harness.lines_matching(inst.access_log, re.escape(f'"GET {path} '))


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
    with pytest.raises(Exception):
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
    info = harness.tls_info(ca, port, servername='front-tls.test')
    assert info['cn'] == 'front-tls.test', info
    status, headers, body = get(ca, port, '/p/back.txt', 'front-tls.test')
    assert (status, body) == (200, 'backend body b\n'), headers
    assert headers.get('x-back-cipher') == SSL_ONLY, headers
    assert headers.get('x-back-cn') == BACK_CN, headers
    assert headers.get('x-back-sni') == NO_SNI, headers
    assert access_lines(backend, '/b/back.txt'), backend.read_access_log()

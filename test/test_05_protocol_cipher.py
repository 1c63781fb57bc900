"""TLSProtocol, TLSCiphersPrefer/Suppress and TLSHonorClientOrder."""
import re
import ssl

import pytest

import harness

CHACHA12 = 'ECDHE-RSA-CHACHA20-POLY1305'
AES128_12 = 'ECDHE-RSA-AES128-GCM-SHA256'
CLIENT12 = f'{AES128_12}:{CHACHA12}'
CLIENT13 = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256'

# one vhost per port, each with its own settings
VHOSTS = {
    'v13': 'TLSProtocol TLSv1.3+',
    'v13short': 'TLSProtocol v1.3+',
    'v13hex': 'TLSProtocol TLSv0x0304+',
    'v12': 'TLSProtocol TLSv1.2+',
    'default': 'TLSProtocol default',
    'unset': '',
    'suppress13': 'TLSCiphersSuppress TLS_AES_128_GCM_SHA256',
    'suppress12': f'TLSCiphersSuppress {AES128_12}',
    'prefer_off': f'TLSCiphersPrefer {CHACHA12}:TLS_CHACHA20_POLY1305_SHA256\n'
                  '  TLSHonorClientOrder off',
    'prefer_on': f'TLSCiphersPrefer {CHACHA12} TLS_CHACHA20_POLY1305_SHA256\n'
                 '  TLSHonorClientOrder on',
    'prefer_default': f'TLSCiphersPrefer {CHACHA12}',
    'prefer_iana': 'TLSCiphersPrefer TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256\n'
                   '  TLSHonorClientOrder off',
    'prefer_hex': 'TLSCiphersPrefer TLS_CIPHER_0xCCA8\n  TLSHonorClientOrder off',
}


@pytest.fixture(scope='module')
def server(docroot, module_path, certs):
    cert, key = certs['a']
    ports = {name: harness.free_port() for name in VHOSTS}
    body = []
    for name, conf in VHOSTS.items():
        p = ports[name]
        body.append(f"""
Listen 127.0.0.1:{p}
TLSEngine 127.0.0.1:{p}
<VirtualHost 127.0.0.1:{p}>
  ServerName a.test
  TLSCertificate {cert} {key}
  {conf}
</VirtualHost>""")
    a = harness.Apache('\n'.join(body), docroot, name='proto')
    a.ports = ports
    a.start()
    yield a
    a.stop()


@pytest.mark.parametrize('vhost', ['v13', 'v13short', 'v13hex'])
def test_tls13_only_refuses_tls12(ca, server, vhost):
    port = server.ports[vhost]
    r = harness.curl(ca, port, '/hello.txt', args=['--http1.1', '--tlsv1.2', '--tls-max', '1.2'])
    assert r.rc != 0, r
    r = harness.s_client(ca, port, 'a.test', ['-tls1_2'])
    assert not r.handshake_ok, r
    with pytest.raises(ssl.SSLError):
        harness.tls_info(ca, port, max_version=ssl.TLSVersion.TLSv1_2)
    # TLS 1.3 works
    r = harness.curl(ca, port, '/hello.txt', args=['--http1.1', '--tlsv1.3'])
    assert (r.rc, r.status) == (0, 200), r
    assert harness.tls_info(ca, port)['version'] == 'TLSv1.3'


@pytest.mark.parametrize('vhost', ['default', 'unset', 'v12'])
def test_tls12_accepted(ca, server, vhost):
    port = server.ports[vhost]
    r = harness.curl(ca, port, '/hello.txt', args=['--http1.1', '--tlsv1.2', '--tls-max', '1.2'])
    assert (r.rc, r.status) == (0, 200), r
    assert r.body == b'Hello, TLS!\n'
    r = harness.s_client(ca, port, 'a.test', ['-tls1_2'])
    assert r.protocol == 'TLSv1.2', r
    assert harness.tls_info(ca, port)['version'] == 'TLSv1.3'


def test_suppressed_tls13_cipher(ca, server):
    port = server.ports['suppress13']
    r = harness.s_client(ca, port, 'a.test',
                         ['-tls1_3', '-ciphersuites', 'TLS_AES_128_GCM_SHA256'])
    assert not r.handshake_ok, r
    r = harness.s_client(ca, port, 'a.test',
                         ['-tls1_3', '-ciphersuites', 'TLS_AES_256_GCM_SHA384'])
    assert (r.protocol, r.cipher) == ('TLSv1.3', 'TLS_AES_256_GCM_SHA384'), r
    # a client preferring the suppressed one gets another
    r = harness.s_client(ca, port, 'a.test', ['-tls1_3', '-ciphersuites', CLIENT13])
    assert r.cipher == 'TLS_CHACHA20_POLY1305_SHA256', r


def test_suppressed_tls12_cipher(ca, server):
    port = server.ports['suppress12']
    r = harness.s_client(ca, port, 'a.test', ['-tls1_2', '-cipher', AES128_12])
    assert not r.handshake_ok, r
    r = harness.s_client(ca, port, 'a.test', ['-tls1_2', '-cipher', CLIENT12])
    assert (r.protocol, r.cipher) == ('TLSv1.2', CHACHA12), r


@pytest.mark.parametrize('vhost', ['prefer_off', 'prefer_iana', 'prefer_hex'])
def test_server_order_tls12(ca, server, vhost):
    r = harness.s_client(ca, server.ports[vhost], 'a.test', ['-tls1_2', '-cipher', CLIENT12])
    assert (r.protocol, r.cipher) == ('TLSv1.2', CHACHA12), r


def test_server_order_tls13(ca, server):
    r = harness.s_client(ca, server.ports['prefer_off'], 'a.test',
                         ['-tls1_3', '-ciphersuites', CLIENT13])
    assert (r.protocol, r.cipher) == ('TLSv1.3', 'TLS_CHACHA20_POLY1305_SHA256'), r


@pytest.mark.parametrize('vhost', ['prefer_on', 'prefer_default', 'unset'])
def test_client_order_tls12(ca, server, vhost):
    r = harness.s_client(ca, server.ports[vhost], 'a.test', ['-tls1_2', '-cipher', CLIENT12])
    assert (r.protocol, r.cipher) == ('TLSv1.2', AES128_12), r


def test_client_order_tls13(ca, server):
    r = harness.s_client(ca, server.ports['prefer_on'], 'a.test',
                         ['-tls1_3', '-ciphersuites', CLIENT13])
    assert (r.protocol, r.cipher) == ('TLSv1.3', 'TLS_AES_128_GCM_SHA256'), r


@pytest.mark.parametrize('value', ['default', 'TLSv1.2+', 'TLSv1.3+', 'v1.2+', 'v1.3+',
                                   'TLSv0x0303+', 'TLSv0x0304+'])
def test_protocol_values_accepted(apache_factory, certs, value):
    cert, key = certs['a']
    port = harness.free_port()
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
TLSProtocol {value}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
</VirtualHost>
""")
    rc, out = a.configtest()
    assert rc == 0, out


@pytest.mark.parametrize('ciphers', [
    'TLS_AES_128_GCM_SHA256 ECDHE-RSA-AES256-GCM-SHA384',
    'TLS_AES_128_GCM_SHA256:TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
    'TLS_CIPHER_0x1301 TLS_CIPHER_0xc02f',
])
def test_cipher_name_forms_accepted(apache_factory, certs, ciphers):
    cert, key = certs['a']
    port = harness.free_port()
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
TLSCiphersPrefer {ciphers}
TLSCiphersSuppress ECDHE-RSA-AES128-GCM-SHA256
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
</VirtualHost>
""")
    rc, out = a.configtest()
    assert rc == 0, out


@pytest.mark.parametrize('name', ['AES128-SHA', 'TLS_RSA_WITH_AES_128_CBC_SHA'])
def test_unsupported_cipher_warns(apache_factory, ca, certs, allow_log, name):
    cert, key = certs['a']
    port = harness.free_port()
    allow_log(r'AES128-SHA|TLS_RSA_WITH_AES_128_CBC_SHA')
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
  TLSCiphersPrefer ECDHE-RSA-AES128-GCM-SHA256:{name}
</VirtualHost>
""")
    rc, out = a.configtest()
    assert rc == 0, out
    a.start()
    warns = [line for line in a.log_lines() if re.search(r'\[(\w+:)?warn\]', line)
             and re.search(r'AES128-SHA|TLS_RSA_WITH_AES_128_CBC_SHA', line)]
    assert len(warns) == 1, a.read_log()
    r = harness.s_client(ca, port, 'a.test', ['-tls1_2'])
    assert r.protocol == 'TLSv1.2', r

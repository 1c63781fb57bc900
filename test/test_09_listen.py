"""TLSEngine only affects the addresses it names."""
import socket
import ssl

import pytest

import harness


@pytest.fixture(scope='module')
def server(docroot, module_path, certs):
    cert, key = certs['a']
    p, q = harness.free_port(), harness.free_port()
    a = harness.Apache(f"""
Listen 127.0.0.1:{p}
Listen 127.0.0.2:{p}
Listen 127.0.0.1:{q}
TLSEngine 127.0.0.1:{p}
<VirtualHost 127.0.0.1:{p}>
  ServerName a.test
  TLSCertificate {cert} {key}
  Header always set X-VHost tls
</VirtualHost>
<VirtualHost 127.0.0.2:{p}>
  ServerName plain.test
  Header always set X-VHost plain
</VirtualHost>
""", docroot, name='listen')
    a.tls_port, a.plain_port = p, q
    a.start()
    yield a
    a.stop()


def test_tls_address(ca, server):
    status, headers, body = harness.https_get(ca, server.tls_port, '/hello.txt')
    assert (status, body) == (200, b'Hello, TLS!\n')
    assert headers.get('X-VHost') == 'tls'
    r = harness.curl(ca, server.tls_port, '/hello.txt', args=['--http1.1'])
    assert (r.rc, r.status) == (0, 200), r


def test_same_port_other_address_is_plain(server):
    status, body = harness.http_get(server.tls_port, '/hello.txt', host='127.0.0.2',
                                    hostname='plain.test')
    assert (status, body) == (200, b'Hello, TLS!\n')


def test_listen_without_engine_is_plain(server):
    status, body = harness.http_get(server.plain_port, '/index.html')
    assert status == 200
    assert body == harness.INDEX_HTML.encode()


@pytest.mark.parametrize('where', ['other-address', 'other-port'])
def test_tls_refused_on_plain(ca, server, where):
    """Where TLSEngine does not reach, a ClientHello is read as a plain HTTP request: Apache
    answers its plain 400, which the client's TLS takes for a record of a wrong version (not
    a closed, reset or silent connection)."""
    host, port = (('127.0.0.2', server.tls_port) if where == 'other-address'
                  else ('127.0.0.1', server.plain_port))
    with pytest.raises(ssl.SSLError, match='WRONG_VERSION_NUMBER'):
        harness.tls_info(ca, port, 'a.test', host=host, timeout=5)
    got = harness.exchange(port, harness.client_hello(ca), host=host)
    assert got.data.startswith(b'HTTP/1.1 400 Bad Request\r\n'), got


def test_plain_http_on_tls_address_fails(server):
    # a 400 that names the https:// URL to use, never the content
    status, body = harness.http_get(server.tls_port, '/index.html', hostname='a.test',
                                    timeout=5)
    assert status == 400
    assert f'https://a.test:{server.tls_port}/index.html'.encode() in body, body
    assert harness.INDEX_HTML.encode() not in body


def test_engine_port_only(apache_factory, ca, certs):
    cert, key = certs['a']
    port = harness.free_port()
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine {port}
<VirtualHost *:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
</VirtualHost>
""")
    a.start()
    status, _, body = harness.https_get(ca, port, '/hello.txt')
    assert (status, body) == (200, b'Hello, TLS!\n')


def _ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(('::1', 0))
        return True
    except OSError:
        return False


def test_vhost_with_several_addresses(apache_factory, ca, certs):
    """<VirtualHost A B> with TLS on both, as configurations for the earlier mod_tls have
    it: every address serves TLS with that vhost (the second one used to fail startup as
    if the main server had to serve it without a certificate)."""
    cert, key = certs['a']
    p, q = harness.free_port(), harness.free_port()
    addrs = [('127.0.0.1', p), ('127.0.0.1', q)]
    if _ipv6_loopback():
        addrs.append(('::1', p))
    spec = ' '.join(f'[{h}]:{port}' if ':' in h else f'{h}:{port}' for h, port in addrs)
    listens = '\n'.join(f'Listen {a}\nTLSEngine {a}' for a in spec.split())
    a = apache_factory(f"""
{listens}
<VirtualHost {spec}>
  ServerName a.test
  TLSCertificate {cert} {key}
  Header always set X-VHost multi
</VirtualHost>
""")
    a.start()
    for host, port in addrs:
        info = harness.tls_info(ca, port, 'a.test', host=host)
        assert info['cn'] == 'a.test', (host, port, info)
        conn = harness.HTTPSConn(ca, port, 'a.test')
        conn.host = host
        try:
            conn.request('GET', '/hello.txt', headers={'Host': 'a.test'})
            r = conn.getresponse()
            assert (r.status, r.getheader('X-VHost'), r.read()) == \
                (200, 'multi', b'Hello, TLS!\n'), (host, port)
        finally:
            conn.close()

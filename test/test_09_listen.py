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
    host, port = (('127.0.0.2', server.tls_port) if where == 'other-address'
                  else ('127.0.0.1', server.plain_port))
    with pytest.raises((ssl.SSLError, ConnectionError, socket.timeout)):
        harness.tls_info(ca, port, 'a.test', host=host, timeout=5)


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

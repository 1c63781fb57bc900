"""Plain GETs over TLS 1.2 and 1.3 with curl, openssl s_client and Python ssl."""
import ssl

import pytest

import harness
from harness import INDEX_HTML


@pytest.fixture(scope='module')
def server(docroot, module_path, certs):
    port = harness.free_port()
    cert, key = certs['a']
    a = harness.Apache(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
</VirtualHost>
""", docroot, name='basic')
    a.port = port
    a.start()
    yield a
    a.stop()


@pytest.mark.parametrize('tls_args', [
    ['--tlsv1.2', '--tls-max', '1.2'],
    ['--tlsv1.3'],
], ids=['tls12', 'tls13'])
def test_curl_get(ca, server, tls_args):
    r = harness.curl(ca, server.port, '/index.html', args=['--http1.1'] + tls_args)
    assert r.rc == 0, r
    assert r.status == 200
    assert r.http_version == '1.1'
    assert r.info.get('ssl_verify_result') == 0
    assert r.text == INDEX_HTML
    # nothing may hold the response back (KeepAliveTimeout is 5s)
    assert r.info['time_total'] < 2.5, f"response took {r.info['time_total']}s"


def test_curl_not_found(ca, server):
    r = harness.curl(ca, server.port, '/does-not-exist.html', args=['--http1.1'])
    assert r.rc == 0, r
    assert r.status == 404


@pytest.mark.parametrize('flag,proto', [('-tls1_2', 'TLSv1.2'), ('-tls1_3', 'TLSv1.3')])
def test_s_client_get(ca, server, flag, proto):
    r = harness.s_client(ca, server.port, 'a.test', [flag],
                         input='GET /index.html HTTP/1.1\r\nHost: a.test\r\n'
                               'Connection: close\r\n\r\n')
    assert r.protocol == proto, r
    assert r.verify_code == '0'
    assert 'CN = a.test' in r.subject
    assert r.names[1] == ['a.test']
    assert 'HTTP/1.1 200 OK' in r.stdout
    assert INDEX_HTML in r.stdout


@pytest.mark.parametrize('version', [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=['tls12', 'tls13'])
def test_python_ssl_get(ca, server, version):
    info = harness.tls_info(ca, server.port, 'a.test',
                            min_version=version, max_version=version)
    assert info['version'] == version.name.replace('_', '.')
    assert info['names'] == ['a.test']
    status, headers, body = harness.https_get(ca, server.port, '/index.html', 'a.test',
                                              min_version=version, max_version=version)
    assert status == 200
    assert body.decode() == INDEX_HTML
    assert headers.get('Content-Type', '').startswith('text/html')


def test_several_connections(ca, server):
    for i in range(10):
        status, _, body = harness.https_get(ca, server.port, '/hello.txt')
        assert (status, body) == (200, b'Hello, TLS!\n')
    assert server.alive()


@pytest.mark.parametrize('version', [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=['tls12', 'tls13'])
@pytest.mark.parametrize('request_bytes,status', [
    (b'GET /hello.txt HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n', b'200'),
    (b'GET /hello.txt HTTP/1.0\r\nHost: a.test\r\n\r\n', b'200'),
    (b'NOT-HTTP\r\n\r\n', b'400'),
], ids=['close', 'http10', 'bad-request'])
def test_close_notify(ca, server, version, request_bytes, status):
    """The server ends the TLS stream with close_notify, so that a client
    can tell a complete response from a truncated one."""
    data, clean = harness.request_until_close(ca, server.port, request_bytes,
                                              min_version=version, max_version=version)
    assert data.startswith(b'HTTP/1.1 ' + status), data[:200]
    assert clean, 'connection closed without close_notify'

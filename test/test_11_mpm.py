"""The module with the worker and prefork MPMs (event is used everywhere else)."""
import os
import time

import pytest

import harness

SIZE = 10 << 20
# a small response must not wait for anything (e.g. KeepAliveTimeout, 5s)
FAST = 2.5


@pytest.fixture(scope='module', params=['worker', 'prefork'])
def server(request, docroot, module_path, certs):
    mpm = request.param
    cert, key = certs['a']
    port = harness.free_port()
    protocols = 'Protocols h2 http/1.1' if mpm != 'prefork' else ''
    a = harness.Apache(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
  {protocols}
</VirtualHost>
""", docroot, mpm=mpm, name=f'mpm-{mpm}')
    a.port = port
    a.start()
    yield a
    a.stop()


@pytest.fixture(scope='module')
def data_file(docroot):
    return harness.make_data_file(docroot, 'data-10m.bin', SIZE)


def test_get(ca, server):
    for tls in (['--tls-max', '1.2'], ['--tlsv1.3']):
        r = harness.curl(ca, server.port, '/index.html', args=['--http1.1'] + tls)
        assert (r.rc, r.status) == (0, 200), r
        assert r.text == harness.INDEX_HTML
        assert r.info['time_total'] < FAST, f"response took {r.info['time_total']}s"
    start = time.time()
    status, _, body = harness.https_get(ca, server.port, '/hello.txt')
    assert (status, body) == (200, b'Hello, TLS!\n')
    assert time.time() - start < FAST


def test_download_h1(ca, server, data_file):
    out = os.path.join(server.dir, 'download.bin')
    r = harness.curl(ca, server.port, '/data-10m.bin', args=['--http1.1', '-o', out])
    assert (r.rc, r.status) == (0, 200), r
    assert harness.sha256_file(out) == data_file
    os.unlink(out)


def test_parallel_connections(ca, server):
    urls = [f'https://a.test:{server.port}/hello.txt'] * 20
    r = harness.curl(ca, server.port, urls=urls,
                     args=['--http1.1', '--parallel', '--parallel-max', '8'])
    assert r.rc == 0, r
    assert [i['http_code'] for i in r.infos] == [200] * 20
    slow = [i['time_total'] for i in r.infos if i['time_total'] >= FAST]
    assert not slow, f'responses took {slow}s'


def test_h2(ca, server, data_file):
    # HTTP/2 needs a threaded MPM: prefork runs without mod_http2 and must
    # fall back to HTTP/1.1
    expected = '1.1' if server.mpm == 'prefork' else '2'
    r = harness.curl(ca, server.port, '/data-10m.bin', args=['--http2', '-o', '/dev/null'])
    assert (r.rc, r.status, r.http_version) == (0, 200, expected), r


def test_close_notify(ca, server):
    data, clean = harness.request_until_close(
        ca, server.port, b'GET /hello.txt HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n')
    assert data.startswith(b'HTTP/1.1 200'), data[:200]
    assert clean, 'connection closed without close_notify'

"""Plain HTTP sent to a TLS port gets a readable 400 naming the https:// URL to use, not a
TLS alert; bytes that are neither TLS nor HTTP still get the alert."""
import os
import re

import pytest

import harness


def _body(port, cert, key):
    return f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
</VirtualHost>
"""


@pytest.fixture(scope='module')
def server(docroot, module_path, certs):
    cert, key = certs['a']
    port = harness.free_port()
    a = harness.Apache(_body(port, cert, key), docroot, name='plainhttp')
    a.port = port
    a.start()
    yield a
    a.stop()


def exchange(port, data):
    """Sends data (bytes, or a list of byte strings sent one by one) and reads until the
    server closes: (what was read, whether the server reset the connection)."""
    got = harness.exchange(port, data)
    return got.data, got.end == 'reset'


def parse_response(data):
    head, _, body = data.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(':')
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, body


def test_curl_gets_400_naming_https_url(server, ca, tmp_path):
    offset = server.log_size()
    url = f'http://a.test:{server.port}/some/path'
    headers = tmp_path / 'headers'
    r = harness.curl(ca, server.port, urls=[url], args=['-D', str(headers)])
    assert (r.rc, r.status) == (0, 400), r
    assert f'https://a.test:{server.port}/some/path' in r.text, r.text
    assert re.search(r'^Connection: close$', headers.read_text(), re.M | re.I), \
        headers.read_text()
    assert re.search(r'^Content-Type: text/plain', headers.read_text(), re.M | re.I)
    # logged at info with the client's address, not at warn
    server.wait_log(r'\[tls:info\] .*tls: connection from 127\.0\.0\.1 refused: plain HTTP '
                    r'request \(GET\) on a TLS port; answered 400 '
                    rf'naming https://a\.test:{server.port}/some/path', offset)
    # and a TLS client right after is served as always
    status, _, body = harness.https_get(ca, server.port, '/hello.txt')
    assert (status, body) == (200, b'Hello, TLS!\n')
    r = harness.curl(ca, server.port, '/hello.txt')
    assert (r.rc, r.status, r.body) == (0, 200, b'Hello, TLS!\n'), r


def test_response_is_complete_and_closed(server):
    got, reset = exchange(server.port, b'GET /x?a=1 HTTP/1.1\r\nHost: a.test:%d\r\n'
                          b'User-Agent: test\r\n\r\n' % server.port)
    assert not reset
    status, headers, body = parse_response(got)
    assert status == 'HTTP/1.1 400 Bad Request', got
    assert headers['connection'] == 'close'
    assert headers['content-type'].startswith('text/plain')
    assert int(headers['content-length']) == len(body)
    assert f'https://a.test:{server.port}/x?a=1'.encode() in body
    # no TLS at all: not an alert, not a handshake record
    assert got[:1] == b'H'


def test_without_host_names_vhost_and_port(server):
    got, _ = exchange(server.port, b'GET /no/host HTTP/1.0\r\n\r\n')
    status, headers, body = parse_response(got)
    assert status == 'HTTP/1.1 400 Bad Request', got
    assert f'https://a.test:{server.port}/no/host'.encode() in body, body


def test_host_without_port_gets_the_tls_port(server):
    got, _ = exchange(server.port, b'GET / HTTP/1.1\r\nHost: A.test\r\n\r\n')
    assert f'https://A.test:{server.port}/'.encode() in parse_response(got)[2], got


def test_head_request_gets_no_body(server):
    got, _ = exchange(server.port, b'HEAD /h HTTP/1.1\r\nHost: a.test\r\n\r\n')
    status, headers, body = parse_response(got)
    assert status == 'HTTP/1.1 400 Bad Request', got
    assert int(headers['content-length']) > 0 and body == b''


def test_nothing_of_the_client_reflected_unescaped(server):
    offset = server.log_size()
    # control characters, a bare CR, non-ASCII in the target; a Host no host name has
    got, _ = exchange(server.port, b'GET /a\x1b[31m\x01b\rX-Injected:\xc3\xa9 HTTP/1.1\r\n'
                      b'Host: evil\x07.test\r\n\r\n')
    status, headers, body = parse_response(got)
    assert status == 'HTTP/1.1 400 Bad Request', got
    assert 'x-injected' not in headers
    assert not re.search(rb'[\x00-\x09\x0b-\x1f\x7f-\xff]', body), body
    assert b'evil' not in body
    assert f'https://a.test:{server.port}/a%1B[31m%01b%0DX-Injected:%C3%A9\n'.encode() in body, body
    server.wait_log(r'refused: plain HTTP request \(GET\)', offset)
    log = server.read_log(offset)
    assert '\x1b' not in log and '\x07' not in log and 'evil' not in log, log


def test_path_escaped_for_a_url(server):
    got, _ = exchange(server.port, b'GET /a"<b>\\{c}%41 HTTP/1.1\r\nHost: a.test\r\n\r\n')
    assert f'https://a.test:{server.port}/a%22%3Cb%3E%5C%7Bc%7D%41\n'.encode() \
        in parse_response(got)[2], got


def test_bounded_request_line(server):
    # "GET /" and then more than anyone reads without a newline: the answer comes all the
    # same, from what was read; the rest is drained while the connection closes
    got, reset = exchange(server.port, [b'GET /'] + [b'a' * 65536] * 16)
    status, headers, body = parse_response(got)
    assert status == 'HTTP/1.1 400 Bad Request', got[:200]
    assert f'https://a.test:{server.port}/\n'.encode() in body, body
    assert int(headers['content-length']) == len(body) < 1000


def test_body_sent_along_does_not_cut_the_answer(server):
    # a POST body nobody reads: the answer must still arrive, not a reset
    body = os.urandom(256 * 1024)
    got, reset = exchange(server.port, b'POST /up HTTP/1.1\r\nHost: a.test:%d\r\n'
                          b'Content-Length: %d\r\n\r\n' % (server.port, len(body)) + body)
    assert parse_response(got)[0] == 'HTTP/1.1 400 Bad Request', got[:200]
    assert not reset


DECODE_ERROR_ALERT = b'\x15\x03\x03\x00\x02\x02\x32'   # fatal decode_error (50)


@pytest.mark.parametrize('data', [
    pytest.param(bytes(range(256)) * 4, id='binary'),
    pytest.param(b'SSH-2.0-OpenSSH_9.2p1\r\n', id='ssh-banner'),
    pytest.param(b'get / HTTP/1.0\r\n\r\n', id='lowercase-method'),
    pytest.param(b'GET\t/ HTTP/1.0\r\n\r\n', id='tab-not-space'),
    pytest.param(b'ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.0\r\n\r\n', id='overlong-method'),
])
def test_neither_tls_nor_http_gets_an_alert(server, data):
    offset = server.log_size()
    got, _ = exchange(server.port, data)
    # a fatal decode_error alert, as for any record that is not TLS; never an HTTP answer
    assert got == DECODE_ERROR_ALERT, got
    server.wait_log(r'\[tls:info\] .*tls: connection from 127\.0\.0\.1 failed during '
                    r'handshake: peer sent invalid TLS data', offset)
    assert 'plain HTTP' not in server.read_log(offset)


def test_prefork_answers_too(apache_factory, certs):
    cert, key = certs['a']
    port = harness.free_port()
    a = apache_factory(_body(port, cert, key), mpm='prefork', name='plainhttp-prefork')
    a.start()
    got, reset = exchange(port, b'POST /p HTTP/1.1\r\nHost: a.test:%d\r\nContent-Length: '
                          b'200000\r\n\r\n' % port + b'x' * 200000)
    assert parse_response(got)[0] == 'HTTP/1.1 400 Bad Request', got[:200]
    assert f'https://a.test:{port}/p'.encode() in parse_response(got)[2]
    assert not reset

"""Hostile TLS 1.3 input that Python's ssl cannot send, over the hand-made client in
tls13_client.py: oversized records after the handshake. Each bad client gets its alert and one
info line, never a warn or error one, and the server goes on serving."""
import hashlib
import os
import re
import time

import pytest

import harness
from tls13_client import ALERT, APPLICATION_DATA, Tls13Client

RECORD_OVERFLOW, DECODE_ERROR = 22, 50


@pytest.fixture(scope='module')
def server(docroot, module_path, certs):
    cert, key = certs['a']
    port = harness.free_port()
    a = harness.Apache(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
</VirtualHost>
""", docroot, name='hostile')
    a.port = port
    a.start()
    yield a
    a.stop()


def tls_lines(server, offset, needle, timeout=5):
    """The [tls:...] lines logged since offset, once one containing needle is there."""
    deadline = time.time() + timeout
    while True:
        lines = [line for line in server.log_lines(offset) if '[tls:' in line]
        if any(needle in line for line in lines) or time.time() > deadline:
            return lines
        time.sleep(0.05)


def assert_one_info_line(server, offset, needle):
    lines = tls_lines(server, offset, needle)
    assert len(lines) == 1, lines
    assert re.search(r'\[tls:info\] .* tls: connection from 127\.0\.0\.1 failed during \w+: '
                     r'.*' + re.escape(needle), lines[0]), lines[0]


def assert_serves(server):
    assert Tls13Client(server.port).handshake().get('/hello.txt') == (200, b'Hello, TLS!\n')


def test_client_self_test(server):
    """The hand-made client does a normal GET."""
    assert_serves(server)
    status, body = Tls13Client(server.port, alpn=['http/1.1']).handshake().get('/')
    assert (status, body) == (200, harness.INDEX_HTML.encode())


# ---- oversized records ---------------------------------------------------------------------

@pytest.mark.parametrize('content,padding,alert,detail', [
    # TLSInnerPlaintext of 2^14 + 2 bytes: content one byte over the limit
    pytest.param(2**14 + 1, 0, RECORD_OVERFLOW, 'peer sent excess record size',
                 id='plaintext-2^14+1'),
    # a short content padded out to a ciphertext of 2^14 + 256 + 1 bytes (RFC 8446 5.2)
    pytest.param(100, 2**14 + 256 + 1 - 16 - 101, RECORD_OVERFLOW,
                 'peer sent excess record size', id='ciphertext-2^14+256+1'),
    # a record length rustls refuses from the header, before decrypting: decode_error there
    pytest.param(100, 2**14 + 2048 - 16 - 101, DECODE_ERROR, 'MessageTooLarge',
                 id='ciphertext-2^14+2048'),
])
def test_oversized_record(server, content, padding, alert, detail):
    offset = server.log_size()
    c = Tls13Client(server.port).handshake()
    c.send(b'x' * content, padding=padding)
    assert c.records_until_close() == [(ALERT, bytes([2, alert]))]
    assert_one_info_line(server, offset, detail)
    assert_serves(server)


def test_record_of_2_14_is_fine(server):
    """A record of exactly 2^14 bytes is no overflow: a request body in one."""
    body = os.urandom(2**14)
    c = Tls13Client(server.port).handshake()
    c.send(b'POST /cgi-bin/sha256.sh HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n'
           b'Content-Length: 16384\r\n\r\n')
    c.send(body)
    data = b''.join(p for t, p in c.records_until_close() if t == APPLICATION_DATA)
    assert data.startswith(b'HTTP/1.1 200 '), data[:100]
    assert hashlib.sha256(body).hexdigest().encode() in data

"""Hostile TLS 1.3 input that Python's ssl cannot send, over the hand-made client in
tls13_client.py: oversized records after the handshake, a first handshake message that is no
ClientHello, early data the server rejects. Each bad client gets its alert and one info line,
never a warn or error one, and the server goes on serving."""
import hashlib
import os
import re
import socket
import struct
import time

import pytest

import harness
from tls13_client import (ALERT, APPLICATION_DATA, CHANGE_CIPHER_SPEC, HANDSHAKE, Tls13Client,
                          alert_record, client_hello, extension, u8, u16, u24)

UNEXPECTED_MESSAGE, BAD_RECORD_MAC, RECORD_OVERFLOW, DECODE_ERROR = 10, 20, 22, 50
TRIAL_BUDGET = 16384     # what rustls skips of rejected early data, max_early_data_size unset


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


# ---- a first message that is no ClientHello ------------------------------------------------

def record(typ, payload):
    return struct.pack('!BHH', typ, 0x0301, len(payload)) + payload


def server_hello():
    body = (struct.pack('!H', 0x0303) + os.urandom(32) + u8(b'') + struct.pack('!H', 0x1301)
            + b'\0' + u16(extension(43, struct.pack('!H', 0x0304))))
    return record(HANDSHAKE, bytes([2]) + u24(body))


def half_hello_then(typ, payload):
    """The first 40 bytes of a ClientHello, then a record of another type."""
    return record(HANDSHAKE, client_hello()[:40]) + record(typ, payload)


def send_first(port, data):
    """Sends data as a client's first bytes; returns all the server sent before closing."""
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    got = b''
    try:
        s.sendall(data)
        while (chunk := s.recv(4096)):
            got += chunk
    except ConnectionResetError:
        pass
    finally:
        s.close()
    return got


@pytest.mark.parametrize('data,alert,detail', [
    pytest.param(server_hello(), UNEXPECTED_MESSAGE, 'got ServerHello when expecting ClientHello',
                 id='server-hello'),
    pytest.param(record(HANDSHAKE, bytes([11]) + u24(u24(b''))), UNEXPECTED_MESSAGE,
                 'got Certificate when expecting ClientHello', id='certificate'),
    pytest.param(record(HANDSHAKE, bytes([99]) + u24(b'abc')), UNEXPECTED_MESSAGE,
                 'got HandshakeType(0x63) when expecting ClientHello', id='unknown-type'),
    pytest.param(record(HANDSHAKE, b'\xff' * 5), DECODE_ERROR, 'HandshakePayloadTooLarge',
                 id='length-over-64k'),
    pytest.param(record(CHANGE_CIPHER_SPEC, b'\x01'), UNEXPECTED_MESSAGE,
                 'got ChangeCipherSpec when expecting Handshake', id='change-cipher-spec'),
    pytest.param(record(APPLICATION_DATA, b'abcd'), UNEXPECTED_MESSAGE,
                 'got ApplicationData when expecting Handshake', id='application-data'),
    pytest.param(half_hello_then(CHANGE_CIPHER_SPEC, b'\x01'), UNEXPECTED_MESSAGE,
                 'MessageInterleavedWithHandshakeMessage', id='interleaved'),
    # rustls answered these before: a body that does not parse as its type
    pytest.param(record(HANDSHAKE, bytes([2, 0, 0, 0])), DECODE_ERROR, 'MissingData',
                 id='server-hello-empty'),
    pytest.param(record(HANDSHAKE, bytes([1]) + u24(b'\x03')), DECODE_ERROR, 'MissingData',
                 id='client-hello-short'),
])
def test_not_a_client_hello_gets_alert(server, data, alert, detail):
    offset = server.log_size()
    assert send_first(server.port, data) == alert_record(alert)
    assert_one_info_line(server, offset, detail)
    assert_serves(server)


def test_alert_first_gets_none(server):
    """A client that opens with an alert is answered with none (RFC 8446 section 6)."""
    offset = server.log_size()
    assert send_first(server.port, record(ALERT, b'\x02\x28')) == b''
    assert_one_info_line(server, offset, 'got Alert when expecting Handshake')


# ---- rejected early data -------------------------------------------------------------------

def trial_charge(sizes):
    """What rustls counts against TRIAL_BUDGET for rejected early data records of these
    (ciphertext) sizes, read one whole record at a time: each look at new records counts
    again every skipped record it still holds, and the look that finds the client's Finished
    counts them all once more (docs/architecture.md, "Rejected early data")."""
    held = charged = 0
    for size in sizes:
        held += size
        charged += held
    return charged + held


def early_data_client(server, sizes):
    c = Tls13Client(server.port, early_data=True)
    c.send_hello()
    for size in sizes:
        c.send_raw(APPLICATION_DATA, os.urandom(size))
    return c


@pytest.mark.parametrize('sizes', [[8192], [4096, 2048], [1170, 1170, 1170, 1172], [17] * 40],
                         ids=lambda s: f'{len(s)}x{s[0]}')
def test_rejected_early_data_skipped(server, sizes):
    assert trial_charge(sizes) <= TRIAL_BUDGET
    c = early_data_client(server, sizes)
    c.finish_handshake()
    assert c.get('/hello.txt') == (200, b'Hello, TLS!\n')


@pytest.mark.parametrize('sizes', [[8193], [4096, 2049], [1170, 1170, 1170, 1173]],
                         ids=lambda s: f'{len(s)}x{s[0]}')
def test_rejected_early_data_beyond_allowance(server, sizes):
    """One byte more than rustls allows: bad_record_mac, at info."""
    assert trial_charge(sizes) > TRIAL_BUDGET
    offset = server.log_size()
    c = early_data_client(server, sizes)
    c.finish_handshake()
    assert c.records_until_close() == [(ALERT, bytes([2, BAD_RECORD_MAC]))]
    assert_one_info_line(server, offset, "cannot decrypt peer's message")
    assert_serves(server)

"""Misbehaving clients must not harm the server: after each one a good request
still works, the Apache processes are the same and no child crashed, and the
error log notes the failed connection with the client address."""
import os
import random
import re
import socket
import ssl
import struct

import pytest

import harness
import records as rc


@pytest.fixture(scope='module')
def server(docroot, module_path, certs):
    cert, key = certs['a']
    port = harness.free_port()
    a = harness.Apache(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  Protocols h2 http/1.1
  TLSCertificate {cert} {key}
</VirtualHost>
""", docroot, name='badpeers')
    a.port = port
    a.start()
    yield a
    a.stop()


# the fatal decode_error alert (50), in the clear, that rustls answers unreadable records with
DECODE_ERROR_ALERT = b'\x15\x03\x03\x00\x02\x02\x32'


def send_and_close(port, data):
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(data)
    s.close()


def test_garbage(server, check_survives):
    check_survives('peer sent invalid TLS data (received corrupt message of type '
                   'InvalidContentType)')
    got = harness.exchange(server.port, bytes(range(256)) * 8)
    assert (got.data, got.end) == (DECODE_ERROR_ALERT, 'close'), got


def test_plain_http(server, check_survives):
    check_survives('refused: plain HTTP request (GET) on a TLS port')
    got = harness.exchange(server.port, b'GET / HTTP/1.0\r\n\r\n')
    assert got.data.startswith(b'HTTP/1.1 400 Bad Request\r\n'), got
    assert b'This port speaks HTTPS' in got.data, got


def test_truncated_client_hello(server, ca, check_survives):
    check_survives('127.0.0.1 closed the connection during the handshake')
    send_and_close(server.port, harness.client_hello(ca)[:20])


def test_oversized_record(server, check_survives):
    check_survives('peer sent invalid TLS data (received corrupt message of type '
                   'MessageTooLarge)')
    # a handshake record claiming 65535 bytes, more than TLS allows
    header = struct.pack('!BHH', 0x16, 0x0301, 0xffff)
    got = harness.exchange(server.port, header + b'\x01' + os.urandom(200))
    assert (got.data, got.end) == (DECODE_ERROR_ALERT, 'close'), got


def test_garbage_handshake_length(server, check_survives):
    check_survives('peer sent invalid TLS data (received corrupt message of type '
                   'HandshakePayloadTooLarge)')
    # a well-sized record carrying a ClientHello whose inner length is wrong
    body = b'\x01' + struct.pack('!I', 0xfffff0)[1:] + b'\x03\x03' + os.urandom(60)
    header = struct.pack('!BHH', 0x16, 0x0301, len(body))
    got = harness.exchange(server.port, header + body)
    assert (got.data, got.end) == (DECODE_ERROR_ALERT, 'close'), got


def test_client_hello_then_garbage(server, ca, check_survives):
    check_survives("peer sent invalid TLS data (cannot decrypt peer's message)")
    ctx = harness.ssl_context(ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname='a.test')
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    # the server's whole flight comes back, then its alert (encrypted with the handshake
    # keys): the client that sent the hello reads both
    got = harness.exchange(server.port, outgoing.read() + b'\x17\x03\x03\x00\x10' + b'\x00' * 16)
    assert got.end == 'close', got
    incoming.write(got.data)
    with pytest.raises(ssl.SSLError, match='SSLV3_ALERT_BAD_RECORD_MAC'):
        obj.do_handshake()
        obj.read()


def test_old_protocol_only(server, ca, check_survives):
    check_survives('peer has no TLS version or cipher in common')
    r = harness.s_client(ca, server.port, 'a.test',
                         ['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0'])
    assert not r.handshake_ok, r
    assert 'alert handshake failure' in r.stderr and 'SSL alert number 40' in r.stderr, r


def test_reset_mid_upload(server, ca, check_survives, allow_log):
    # mod_cgid itself logs an [error] when the request body breaks off; that
    # is not a mod_tls matter
    allow_log(r'\[cgid:error\].*AH01270')
    # mod_tls logs nothing of a reset in traffic; the request it broke off is cgid's line
    check_survives('AH01270: Error reading request entity data', level='cgid:error')
    size = 50 << 20
    ctx = harness.ssl_context(ca)
    raw = socket.create_connection(('127.0.0.1', server.port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname='a.test')
    s.sendall(b'POST /cgi-bin/sha256.sh HTTP/1.1\r\nHost: a.test\r\n'
              b'Content-Type: application/octet-stream\r\n'
              b'Content-Length: %d\r\n\r\n' % size)
    chunk = b'\x5a' * 65536
    for _ in range(80):   # 5 MiB of 50
        s.sendall(chunk)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.close()


def test_many_bad_clients(server, ca, check_survives):
    # every connection is logged, each of the truncated hellos as a close
    check_survives('127.0.0.1 closed the connection during the handshake', count=30)
    check_survives('', count=40)
    hello = harness.client_hello(ca)
    for i in range(30):
        send_and_close(server.port, hello[:10 + i * 7])
    rnd = random.Random(8)
    for i in range(10):
        send_and_close(server.port, rnd.randbytes(100))


def test_corrupted_record_after_handshake(server, ca, check_survives):
    check_survives('failed during traffic')
    conn = rc.RecordConn(ca, server.port, timeout=15)
    try:
        conn.tls.write(b'GET /hello.txt HTTP/1.1\r\nHost: a.test\r\n\r\n')
        record = bytearray(conn.out.read())
        assert record[0] == 0x17
        record[len(record) // 2] ^= 0x55   # flip bits inside the ciphertext
        conn.sock.sendall(bytes(record))
        # what came back, decrypted: the alert, and no response before it
        recs, text = conn.records_until(lambda text: False)
    finally:
        conn.close()
    assert text == b'', 'a response to the corrupted request'
    assert 'SSLV3_ALERT_BAD_RECORD_MAC' in conn.closed, conn.closed


def _duplicate_first_extension(hello):
    """The ClientHello record with its first extension sent twice (lengths fixed up), which
    RFC 8446 4.2 forbids."""
    body = hello[5:]
    assert body[0] == 0x01
    pos = 4 + 2 + 32                       # handshake header, version, random
    pos += 1 + body[pos]                   # session id
    pos += 2 + struct.unpack('!H', body[pos:pos + 2])[0]   # cipher suites
    pos += 1 + body[pos]                   # compression methods
    ext_len = struct.unpack('!H', body[pos:pos + 2])[0]
    exts = body[pos + 2:pos + 2 + ext_len]
    first = exts[:4 + struct.unpack('!H', exts[2:4])[0]]
    exts = first + exts
    hs = body[4:pos] + struct.pack('!H', len(exts)) + exts
    hs = b'\x01' + struct.pack('!I', len(hs))[1:] + hs
    return struct.pack('!BHH', 0x16, 0x0301, len(hs)) + hs


def _client_sends_alert(server, ca):
    # a client that does not trust the server's CA ends the handshake with a fatal alert
    other = harness.CA('another CA')
    harness.s_client(other, server.port, 'a.test')


@pytest.mark.parametrize('fault,text', [
    ('garbage', 'peer sent invalid TLS data'),
    ('old-protocol', 'peer has no TLS version or cipher in common'),
    ('duplicate-extension', 'peer violated the TLS protocol'),
    ('client-alert', 'peer sent a fatal alert'),
])
def test_peer_faults_log_at_info(server, ca, fault, text):
    """Whatever a client does wrong is logged once at info, which the default LogLevel
    does not show: no client can write warn or error lines at will."""
    offset = server.log_size()
    if fault == 'garbage':
        harness.exchange(server.port, b'\x16\x03\x01\x00\x05' + b'\xff' * 5)
    elif fault == 'old-protocol':
        harness.s_client(ca, server.port, 'a.test', ['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0'])
    elif fault == 'duplicate-extension':
        harness.exchange(server.port, _duplicate_first_extension(harness.client_hello(ca)))
    else:
        _client_sends_alert(server, ca)
    server.wait_log(re.escape(text), offset)
    lines = [line for line in server.log_lines(offset) if '[tls:' in line]
    hits = [line for line in lines if text in line]
    assert len(hits) == 1 and '[tls:info]' in hits[0], lines
    assert not [line for line in lines if re.search(r'\[tls:(warn|error|crit)', line)], lines

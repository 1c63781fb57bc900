"""mod_reqtimeout's handshake stage applies to the TLS handshake."""
import socket
import time

import pytest

import harness


@pytest.fixture(scope='module')
def server(docroot, module_path, certs):
    cert, key = certs['a']
    port = harness.free_port()
    a = harness.Apache(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
Timeout 60
# without this Linux's TCP_DEFER_ACCEPT hides a silent client from Apache
AcceptFilter http none
AcceptFilter https none
RequestReadTimeout handshake=2 header=20-40,MinRate=500 body=20,MinRate=500
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  Protocols http/1.1
  TLSCertificate {cert} {key}
</VirtualHost>
""", docroot, name='reqtimeout', log_level='warn tls:info reqtimeout:info')
    a.port = port
    a.start()
    yield a
    a.stop()


# Which limit closed a connection, not how fast: the handshake stage's 2 s, never at once and
# well before the header stage's 20 s or Timeout's 60 (however loaded the machine).
CLOSED_BY_HANDSHAKE_STAGE = (1.5, 20)


def _closed_after(server, data=b''):
    """Seconds until the server closes a connection that sent `data`, once mod_reqtimeout
    logged that it timed the handshake out."""
    offset = server.log_size()
    start = time.time()
    got = harness.exchange(server.port, data, timeout=15)
    elapsed = time.time() - start
    assert got.data == b'', got
    server.wait_log(r'\[reqtimeout:info\] .*\[client 127\.0\.0\.1:\d+\] AH01382: '
                    r'Request handshake read timeout', offset)
    return elapsed


def test_silent_client_closed(server):
    elapsed = _closed_after(server)
    assert CLOSED_BY_HANDSHAKE_STAGE[0] <= elapsed < CLOSED_BY_HANDSHAKE_STAGE[1], elapsed


def test_stalled_handshake_closed(server, ca):
    hello = harness.client_hello(ca)
    elapsed = _closed_after(server, hello[:30])
    assert CLOSED_BY_HANDSHAKE_STAGE[0] <= elapsed < CLOSED_BY_HANDSHAKE_STAGE[1], elapsed


def test_normal_request_unaffected(ca, server):
    r = harness.curl(ca, server.port, '/hello.txt', args=['--http1.1'])
    assert (r.rc, r.status, r.body) == (0, 200, b'Hello, TLS!\n'), r


def test_stalled_plain_http_closed(server):
    # plain HTTP on the TLS port is read under the handshake stage too: a client that stops
    # halfway through its request head gets its 400 when the stage's time is up
    s = socket.create_connection(('127.0.0.1', server.port), timeout=15)
    start, got = time.time(), b''
    try:
        s.sendall(b'GET /slow HTTP/1.1\r\nHost: a.te')
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    elapsed = time.time() - start
    assert CLOSED_BY_HANDSHAKE_STAGE[0] <= elapsed < CLOSED_BY_HANDSHAKE_STAGE[1], elapsed
    assert got.startswith(b'HTTP/1.1 400 Bad Request\r\n'), got
    assert f'https://a.test:{server.port}/slow\n'.encode() in got, got

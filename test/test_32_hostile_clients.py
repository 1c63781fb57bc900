"""Hostile clients (issue 13), beyond test_08 and test_19: random bytes at every stage,
records cut short, an oversized TLS 1.2 record, slowloris handshakes, 1,000 half-open
connections, renegotiation, KeyUpdate floods, 0-RTT on a real resumed session, HTTP/2 rapid
reset, and downloads cut without close_notify. After each, check_survives (conftest.py) has
the server serve an HTTP/1.1 and an HTTP/2 request, with the same parent, live children and no
crash, and waits for the line the client left in the error log: at info or debug, never warn.

The figures asserted here (32 KeyUpdates, one refused renegotiation, the 18,432-byte record,
nghttp2's 1,000 resets) are rustls' and nghttp2's, measured against mod_ssl while writing
these tests; docs/reliability.md has them with what an admin can do."""
import os
import random
import re
import resource
import socket
import ssl
import struct
import threading
import time

import pytest

import harness
import records as rc
import tls13_client
from tls13_client import ALERT, APPLICATION_DATA, HANDSHAKE, Tls13Client

UNEXPECTED_MESSAGE, BAD_RECORD_MAC, RECORD_OVERFLOW, DECODE_ERROR = 10, 20, 22, 50
NO_RENEGOTIATION = 100
DECODE_ERROR_ALERT = b'\x15\x03\x03\x00\x02\x02\x32'       # in the clear, before any keys
HELLO_GET = b'GET /hello.txt HTTP/1.1\r\nHost: a.test\r\n\r\n'      # kept alive
BIG_FILE = 'hostile-big.bin'
BIG_SIZE = 8 << 20          # more than the socket buffers hold (see cut_download)
# one reqtimeout handshake stage for the module's server: MinRate lets a fast client's
# handshake take longer, never a slow one's
REQUEST_READ_TIMEOUT = 'handshake=3-10,MinRate=500 header=20-40,MinRate=500 body=20,MinRate=500'


def tls_vhost(port, cert, key, extra=''):
    return f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
{extra}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  Protocols h2 http/1.1
  TLSCertificate {cert} {key}
</VirtualHost>
"""


def ssl_vhost(port, cert, key, extra=''):
    scache = os.path.join(harness.mkdtemp('tls-scache-'), 'scache(512000)')
    return f"""
Listen 127.0.0.1:{port}
SSLSessionCache shmcb:{scache}
{extra}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  Protocols h2 http/1.1
  SSLEngine on
  SSLCertificateFile {cert}
  SSLCertificateKeyFile {key}
</VirtualHost>
"""


def started(body, docroot, port, **kw):
    a = harness.Apache(body, docroot, **kw)
    a.port, a.name = port, kw.get('name')
    a.start()
    return a


@pytest.fixture(scope='module')
def server(docroot, module_path, certs):
    cert, key = certs['a']
    port = harness.free_port()
    harness.make_data_file(docroot, BIG_FILE, BIG_SIZE)
    # debug: a client that leaves mid-response or mid-record is worth a debug line only
    a = started(tls_vhost(port, cert, key, f'RequestReadTimeout {REQUEST_READ_TIMEOUT}'),
                docroot, port, name='hostile32', log_level='warn tls:debug reqtimeout:info')
    yield a
    a.stop()


@pytest.fixture(scope='module')
def modssl(docroot, module_path, certs):
    """The same site under mod_ssl, for what is compared."""
    cert, key = certs['a']
    port = harness.free_port()
    a = started(ssl_vhost(port, cert, key, f'RequestReadTimeout {REQUEST_READ_TIMEOUT}'),
                docroot, port, name='hostile32-ssl', tls=False, ssl=True)
    yield a
    a.stop()


def tls12(ca, server, tmp_path):
    """A TLS 1.2 session (ECDHE-RSA-AES128-GCM-SHA256) made by Python's ssl and taken over
    by records.Tls12Records."""
    keylog = str(tmp_path / 'keylog')
    conn = rc.RecordConn(ca, server.port, keylog=keylog, max_version=ssl.TLSVersion.TLSv1_2,
                         ciphers='ECDHE-RSA-AES128-GCM-SHA256')
    assert conn.tls.version() == 'TLSv1.2'
    return rc.Tls12Records(conn, keylog)


# ---- random bytes --------------------------------------------------------------------------

def random_stream(seed, size):
    data = random.Random(seed).randbytes(size)
    # an uppercase first byte would be taken for plain HTTP (test_08 has that case)
    return bytes([data[0] & 0x1f]) + data[1:]


def send_and_end(port, data):
    """Sends data, ends the sending side (a FIN: the server never waits for more) and reads
    until the server closes, as a harness.Closed."""
    s = socket.create_connection(('127.0.0.1', port), timeout=15)
    try:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass                 # the server closed first; what it sent is still there
        return harness.read_until_close(s)
    finally:
        s.close()


# Which fault rustls names first depends on how much of a header it sees at once (the TCP
# segments): for these streams, an unknown content type or an unknown version.
INVALID_HEADER = re.compile(
    r'failed during handshake: peer sent invalid TLS data \(received corrupt message of type '
    r'(InvalidContentType|UnknownProtocolVersion)\)')
CLOSED_IN_HANDSHAKE = '127.0.0.1 closed the connection during the handshake'


@pytest.mark.parametrize('size', [1, 4, 5, 300, 5000, 70000])
def test_random_bytes(server, check_survives, size):
    if size < 5:
        # the stream may end inside the record header before rustls looked at it
        check_survives(re.compile(f'{INVALID_HEADER.pattern}|{re.escape(CLOSED_IN_HANDSHAKE)}'))
    else:
        check_survives(INVALID_HEADER)
    got = send_and_end(server.port, random_stream(size, size))
    assert got.data == DECODE_ERROR_ALERT or (size < 5 and got.data == b''), got
    assert got.end in ('close', 'reset'), got


@pytest.mark.parametrize('size', [1, 6, 300, 70000])
def test_random_bytes_after_client_hello(server, ca, check_survives, size):
    check_survives('failed during handshake: peer sent invalid TLS data')
    hello = harness.client_hello(ca)
    got = send_and_end(server.port, hello + random_stream(size, size))
    assert got.end in ('close', 'reset'), got
    assert got.data[:1] == b'\x16', got           # the server's flight came first


@pytest.mark.parametrize('version', [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=['tls1.2', 'tls1.3'])
@pytest.mark.parametrize('size', [3, 64, 20000])
def test_random_bytes_after_handshake(server, ca, check_survives, version, size):
    check_survives('failed during traffic: peer sent invalid TLS data')
    conn = rc.RecordConn(ca, server.port, min_version=version, max_version=version)
    try:
        conn.sock.sendall(random_stream(size, size))
        conn.sock.shutdown(socket.SHUT_WR)     # a short one is no longer a record to wait for
        _, text = conn.records_until(lambda text: False)
    finally:
        conn.close()
    assert text == b''
    assert 'ALERT_DECODE_ERROR' in conn.closed, conn.closed


# ---- records cut short ---------------------------------------------------------------------

@pytest.mark.parametrize('cut', [3, 20], ids=['mid-header', 'mid-body'])
def test_record_cut_then_closed(server, ca, check_survives, cut):
    """A request record that ends early, then the client's FIN: the server takes it for a
    close without close_notify (a debug line) and answers nothing."""
    check_survives('closed the connection without close_notify', level='tls:debug')
    conn = rc.RecordConn(ca, server.port)
    try:
        conn.tls.write(b'GET /cut-record HTTP/1.1\r\nHost: a.test\r\n\r\n')
        conn.sock.sendall(conn.out.read()[:cut])
        conn.sock.shutdown(socket.SHUT_WR)
        _, text = conn.records_until(lambda text: False)
    finally:
        conn.close()
    assert text == b'', text
    assert '/cut-record' not in server.read_access_log()


def test_client_hello_header_cut(server, ca, check_survives):
    check_survives('127.0.0.1 closed the connection during the handshake')
    got = send_and_end(server.port, harness.client_hello(ca)[:3])
    assert got.data == b'', got


# ---- an 18,432-byte TLS 1.2 record ---------------------------------------------------------

@pytest.mark.parametrize('length,alert,detail', [
    # RFC 5246 allows 2^14 + 2048 bytes of ciphertext; rustls reads up to one byte less,
    # decrypts, and finds the plaintext too long (AES-GCM adds 24 bytes, not 2,048)
    pytest.param(2**14 + 2048 - 1, RECORD_OVERFLOW, 'peer sent excess record size',
                 id='18431'),
    # and refuses 2^14 + 2048 itself from the header, with decode_error
    pytest.param(2**14 + 2048, DECODE_ERROR, 'received corrupt message of type MessageTooLarge',
                 id='18432'),
])
def test_tls12_record_length(server, ca, check_survives, tmp_path, length, alert, detail):
    check_survives(f'failed during traffic: peer sent invalid TLS data ({detail})')
    t = tls12(ca, server, tmp_path)
    try:
        t.send(APPLICATION_DATA, b'x' * (length - 8 - 16))
        records = t.records_until_close()
    finally:
        t.conn.close()
    assert records == [(ALERT, bytes([2, alert]))]


# ---- renegotiation -------------------------------------------------------------------------

def test_renegotiation_refused(server, ca, check_survives, tmp_path):
    """A ClientHello inside a TLS 1.2 session: rustls answers the first with a
    no_renegotiation warning and goes on serving; the second ends the connection, without
    an alert."""
    check_survives('failed during traffic: peer violated the TLS protocol '
                   '(peer misbehaved: TooManyRenegotiationRequests)')
    hello = harness.client_hello(ca, max_version=ssl.TLSVersion.TLSv1_2)[5:]
    t = tls12(ca, server, tmp_path)
    try:
        t.send(HANDSHAKE, hello)
        assert t.recv() == (ALERT, bytes([1, NO_RENEGOTIATION]))
        t.send(APPLICATION_DATA, HELLO_GET)
        typ, response = t.recv()
        assert typ == APPLICATION_DATA and response.startswith(b'HTTP/1.1 200 OK\r\n')
        assert response.endswith(b'\r\n\r\nHello, TLS!\n'), response
        t.send(HANDSHAKE, hello)
        assert t.records_until_close() == []
    finally:
        t.conn.close()


def test_client_hello_in_tls13_session(server, check_survives):
    """TLS 1.3 has no renegotiation: a ClientHello after the handshake is a fatal
    unexpected_message."""
    check_survives('failed during traffic: peer sent invalid TLS data (received unexpected '
                   'handshake message: got ClientHello when expecting KeyUpdate)')
    c = Tls13Client(server.port).handshake()
    try:
        c.send(tls13_client.client_hello(), HANDSHAKE)
        assert c.records_until_close() == [(ALERT, bytes([2, UNEXPECTED_MESSAGE]))]
    finally:
        c.close()


# ---- KeyUpdate floods ----------------------------------------------------------------------

def keep_alive_get(c):
    """A GET on a kept-alive Tls13Client connection: the response's body, None once the
    connection ended instead."""
    c.send(HELLO_GET)
    data = b''
    while not rc.http1_response_done(data):
        rec = c.recv_record()
        if rec is None or rec[0] == ALERT:
            return None
        if rec[0] == APPLICATION_DATA:
            data += rec[1]
    assert data.startswith(b'HTTP/1.1 200 '), data[:100]
    return data.partition(b'\r\n\r\n')[2]


def test_key_updates_between_requests(server, check_survives):
    """32 KeyUpdates, half asking the server to update too, eight between requests that all
    work; the 33rd ends the connection, without an alert: rustls allows 32 per connection,
    requests in between do not reset the count (OpenSSL's limit counts KeyUpdates in a row,
    without data between them: mod_ssl took 100 in a row)."""
    check_survives('failed during traffic: peer violated the TLS protocol '
                   '(peer misbehaved: TooManyKeyUpdateRequests)')
    c = Tls13Client(server.port).handshake()
    try:
        for i in range(32):
            c.key_update(request=i % 2 == 0)
            if i % 8 == 7:
                assert keep_alive_get(c) == b'Hello, TLS!\n', i
        assert c.key_updates_received >= 1     # the server's own, asked for, followed
        c.key_update()
        assert keep_alive_get(c) is None
        assert c.records_until_close() == []
    finally:
        c.close()


@pytest.mark.parametrize('count', [10, 32, 33])
def test_key_update_flood(server, check_survives, count):
    if count > 32:
        check_survives('(peer misbehaved: TooManyKeyUpdateRequests)')
    else:
        check_survives('handshake done with 127.0.0.1', level='tls:debug')
    c = Tls13Client(server.port).handshake()
    try:
        for i in range(count):
            c.key_update(request=i % 2 == 1)
        if count > 32:
            assert c.records_until_close() == []
        else:
            assert c.get('/hello.txt') == (200, b'Hello, TLS!\n')
    finally:
        c.close()


# ---- 0-RTT on a resumed session -----------------------------------------------------------

@pytest.fixture
def session(server):
    """A session ticket from the server, and what it takes to resume it."""
    c = Tls13Client(server.port, tickets=True).handshake()
    assert c.get('/hello.txt') == (200, b'Hello, TLS!\n')
    assert c.tickets, 'no NewSessionTicket'
    return c.session()


def resumed_with_early_data(server, session, early):
    c = Tls13Client(server.port, resume=session, early_data=True)
    c.send_hello()
    for record in early:
        c.send_early_data(record)
    c.finish_handshake()
    assert c.resumed and not c.early_data_accepted
    return c


def test_0rtt_request_not_served(server, session, check_survives):
    """A client with a real ticket sends a GET as 0-RTT data, sealed with the ticket's early
    secret as a client that believes in 0-RTT does: the session resumes, the early data is
    rejected (mod_tls takes none), its GET is never served; the one resent after the
    handshake is."""
    check_survives('handshake done with 127.0.0.1', level='tls:debug')
    c = resumed_with_early_data(server, session, [
        b'GET /hello.txt?sent-as-0rtt HTTP/1.1\r\nHost: a.test\r\n\r\n'])
    assert c.get('/hello.txt?resent') == (200, b'Hello, TLS!\n')
    harness.wait_lines(server.access_log, r'"GET /hello\.txt\?resent HTTP/1\.1" 200')
    assert '0rtt' not in server.read_access_log()


@pytest.mark.parametrize('size', [8192, 8193])
def test_0rtt_skip_allowance_on_resumed_session(server, session, check_survives, size):
    """The allowance for skipped early data (test_19, with a made-up PSK) holds as well when
    the PSK is real: one record of 8,192 bytes of ciphertext is skipped, 8,193 are not."""
    if size > 8192:
        check_survives("failed during handshake: peer sent invalid TLS data "
                       "(cannot decrypt peer's message)")
    else:
        check_survives('handshake done with 127.0.0.1', level='tls:debug')
    # a record of `size` bytes: content, its type byte, the 16-byte tag
    c = resumed_with_early_data(server, session, [b'x' * (size - 1 - 16)])
    if size > 8192:
        assert c.records_until_close() == [(ALERT, bytes([2, BAD_RECORD_MAC]))]
    else:
        assert c.get('/hello.txt') == (200, b'Hello, TLS!\n')


# ---- slowloris handshakes ------------------------------------------------------------------

class Trickler(threading.Thread):
    """Sends a ClientHello a byte every `pause` seconds until the server closes the
    connection (`closed_after`: seconds) or the hello is out (`closed_after` stays None)."""

    def __init__(self, port, hello, pause=0.5):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=30)
        self.hello, self.pause = hello, pause
        self.closed_after = None
        self.sent = 0

    def run(self):
        start = time.monotonic()
        try:
            for i in range(len(self.hello)):
                self.sock.send(self.hello[i:i + 1])
                self.sent += 1
                self.sock.settimeout(self.pause)
                try:
                    if self.sock.recv(4096) == b'':
                        break
                except (socket.timeout, TimeoutError):
                    continue
        except (BrokenPipeError, ConnectionResetError):
            pass
        else:
            if self.sent == len(self.hello):
                return
        self.closed_after = time.monotonic() - start

    def still_open(self):
        return self.is_alive() and self.closed_after is None


def test_slowloris_handshakes(server, ca, check_survives):
    """Clients that trickle their ClientHello, 2 bytes a second, are closed by mod_reqtimeout's
    handshake stage (MinRate gives them nothing); meanwhile others are served."""
    check_survives('AH01382: Request handshake read timeout', count=5, level='reqtimeout:info')
    hello = harness.client_hello(ca)
    slow = [Trickler(server.port, hello) for _ in range(5)]
    for t in slow:
        t.start()
    time.sleep(1)
    assert all(t.still_open() for t in slow)     # the requests below start while they trickle
    status, _, body = harness.https_get(ca, server.port, '/hello.txt')
    assert (status, body) == (200, b'Hello, TLS!\n')
    r = harness.curl(ca, server.port, '/hello.txt', args=['--http2'])
    assert (r.rc, r.status, r.http_version, r.body) == (0, 200, '2', b'Hello, TLS!\n'), r
    for t in slow:
        t.join(60)
    assert all(t.closed_after is not None for t in slow), [t.sent for t in slow]
    assert all(t.sent < len(hello) for t in slow)


# ---- HTTP/2 rapid reset --------------------------------------------------------------------

H2_RST_STREAM, H2_CANCEL, H2_INTERNAL_ERROR = 0x3, 0x8, 0x2


def rapid_reset(ca, port, streams):
    """An h2 connection that opens `streams` GETs and resets each at once (CVE-2023-44487),
    all in one go, then asks for /hello.txt on the next stream. Returns the H2Reader once
    that stream ended or the connection did."""
    conn = rc.RecordConn(ca, port, alpn=['h2'], timeout=30)
    assert conn.tls.selected_alpn_protocol() == 'h2'
    h2 = rc.H2Reader(conn)
    h2.start()
    frames = b''.join(rc.h2_get(2 * i + 1, '/hello.txt')
                      + rc.h2_frame(H2_RST_STREAM, 0, 2 * i + 1, struct.pack('!I', H2_CANCEL))
                      for i in range(streams))
    last = 2 * streams + 1
    try:
        conn.send(frames + rc.h2_get(last, '/hello.txt'))
    except (BrokenPipeError, ConnectionResetError):
        pass                              # the server gave up already; its GOAWAY is there
    ended = rc.h2_stream_ended(last)
    h2.read_until(lambda frames: ended(frames) or any(f[0] == rc.H2_GOAWAY for f in frames))
    conn.close()
    return h2, last


def goaways(h2):
    return [struct.unpack('!II', f[3][:8]) for f in h2.frames if f[0] == rc.H2_GOAWAY]


def test_rapid_reset_below_limit(server, ca, check_survives):
    """500 reset streams: the connection goes on and answers the next request."""
    check_survives('handshake done with 127.0.0.1', level='tls:debug')
    h2, last = rapid_reset(ca, server.port, 500)
    assert goaways(h2) == []
    data = b''.join(f[3] for f in h2.frames if f[0] == rc.H2_DATA and f[2] == last)
    assert data == b'Hello, TLS!\n'


def test_rapid_reset_flood(server, modssl, ca, check_survives):
    """3,000 reset streams: nghttp2 (its reset rate limit, a burst of 1,000) ends the
    connection with GOAWAY(INTERNAL_ERROR), under mod_tls as under mod_ssl; both go on
    serving."""
    check_survives('handshake done with 127.0.0.1', level='tls:debug')
    ssl_pid, ssl_offset = modssl.read_pid(), modssl.log_size()
    for a in (server, modssl):
        h2, last = rapid_reset(ca, a.port, 3000)
        sent = goaways(h2)
        assert sent and sent[0][1] == H2_INTERNAL_ERROR, (a.name, sent)
        assert sent[0][0] < last, a.name
        assert not [f for f in h2.frames if f[2] == last], f'{a.name}: served after the flood'
    harness.assert_unharmed(modssl, ca, ssl_pid, ssl_offset)


# ---- close without close_notify mid-body ---------------------------------------------------

def cut_download(ca, port, protocol):
    """Starts downloading BIG_FILE, reads a little of it, and closes the TCP connection: no
    close_notify, unread data (the kernel answers the server with a reset)."""
    conn = rc.RecordConn(ca, port, alpn=[protocol], timeout=30)
    # a fixed receive buffer (no autotuning up to tcp_rmem's 32 MiB): the server cannot be
    # done writing when the client leaves
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    try:
        if protocol == 'h2':
            assert conn.tls.selected_alpn_protocol() == 'h2'
            h2 = rc.H2Reader(conn)
            h2.start()
            conn.send(rc.h2_get(1, f'/{BIG_FILE}'))
            h2.read_until(lambda frames: sum(len(f[3]) for f in frames
                                             if f[0] == rc.H2_DATA) >= 256 << 10)
        else:
            conn.send(f'GET /{BIG_FILE} HTTP/1.1\r\nHost: a.test\r\n\r\n'.encode())
            _, text = conn.records_until(lambda text: len(text) >= 256 << 10)
            assert text.startswith(b'HTTP/1.1 200 OK\r\n'), text[:100]
    finally:
        conn.close()


@pytest.mark.parametrize('protocol', ['http/1.1', 'h2'])
def test_close_mid_body(server, ca, check_survives, protocol):
    rounds = 10
    check_survives('sending to 127.0.0.1 failed, nothing more goes out', count=rounds,
                   level='tls:debug')
    for _ in range(rounds):
        cut_download(ca, server.port, protocol)


# ---- 1,000 half-open connections, against mod_ssl ------------------------------------------

HALF_OPEN = 1000
# the event MPM says so at error level, in one of two words depending on when it looks
MAX_WORKERS_REACHED = (r'\[mpm_event:error\] .* (AH00484: server reached MaxRequestWorkers|'
                       r'AH10159: server is within MinSpareThreads of MaxRequestWorkers)')


def half_open_round(server, ca):
    """Opens HALF_OPEN TCP connections, every second one sending the first 40 bytes of a
    ClientHello (those connected by then), the others nothing; then asks for /hello.txt
    (HTTP/1.1, then HTTP/2) while they are held, and waits for the server to close every one
    of them. Returns the two bodies."""
    held = []
    hello = harness.client_hello(ca)[:40]
    try:
        for _ in range(HALF_OPEN):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(('127.0.0.1', server.port))      # in progress; the kernel finishes
            held.append(s)
        for s in held[1::2]:
            try:
                s.send(hello)
            except OSError:
                pass                  # not connected yet: one more silent one
        status, _, h1 = harness.https_get(ca, server.port, '/hello.txt', timeout=120)
        assert status == 200
        r = harness.curl(ca, server.port, '/hello.txt', args=['--http2'], timeout=120)
        assert (r.rc, r.status, r.http_version) == (0, 200, '2'), r
        deadline = time.monotonic() + 60
        while held and time.monotonic() < deadline:
            for s in list(held):
                try:
                    if s.recv(1) == b'':
                        held.remove(s)
                except BlockingIOError:
                    pass
                except OSError:
                    held.remove(s)
            time.sleep(0.2)
        assert not held, f'{len(held)} held connections still open after 60 s'
        return h1, r.body
    finally:
        for s in held:
            s.close()


def test_half_open_connections(docroot, module_path, certs, ca, allow_log):
    """1,000 connections that never finish (or start) a ClientHello, the same config under
    mod_tls and under mod_ssl. mod_reqtimeout's handshake stage closes them, as many at a
    time as there are workers; both servers serve the requests that came after them (which
    wait, under either module, for workers that the held connections free), close every one
    of the held connections, log each as a handshake timeout, and lose no child."""
    allow_log(MAX_WORKERS_REACHED)        # the point of the exercise, under either module
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < HALF_OPEN + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    cert, key = certs['a']
    # AcceptFilter none: Linux's TCP_DEFER_ACCEPT would hold silent connections back from
    # Apache for 30 s, and every request behind them in the SYN queue; 200 workers so
    # the five rounds of handshake timeouts fit into the time of a test
    # MaxSpareThreads 200: no child is stopped as idle at the start and missed later (the
    # scoreboard would be full with it: AH00485)
    extra = ('AcceptFilter http none\nRequestReadTimeout handshake=1\n'
             'StartServers 4\nServerLimit 4\nThreadsPerChild 50\nMaxRequestWorkers 200\n'
             'MinSpareThreads 25\nMaxSpareThreads 200\n')
    for which in ('mod_tls', 'mod_ssl'):
        port = harness.free_port()
        if which == 'mod_tls':
            a = started(tls_vhost(port, cert, key, extra), docroot, port, name='halfopen-tls',
                        log_level='warn tls:info reqtimeout:info')
        else:
            a = started(ssl_vhost(port, cert, key, extra), docroot, port, name='halfopen-ssl',
                        tls=False, ssl=True, log_level='warn reqtimeout:info')
        try:
            pid, offset = a.read_pid(), a.log_size()
            assert half_open_round(a, ca) == (b'Hello, TLS!\n', b'Hello, TLS!\n'), which
            a.wait_log(r'\[reqtimeout:info\] .*AH01382: Request handshake read timeout',
                       offset, count=HALF_OPEN, timeout=30)
            harness.assert_unharmed(a, ca, pid, offset, [MAX_WORKERS_REACHED])
        finally:
            a.stop()

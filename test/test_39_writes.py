"""How many writes a connection costs the server: its handshake flights, the TLS 1.3 tickets,
the response and close_notify. A write is a system call and a wake-up of the client, so what
can go together goes together. Counted in the children's /proc/PID/io against a plain HTTP
connection to the same server (which pays the response and the access log), not timed."""
import socket
import ssl
import time

import pytest

import harness

REQUEST = b'GET /hello.txt HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n'
TRIES = 3       # another write (a log line, say) can only add: the fewest of a few tries


@pytest.fixture(scope='module')
def server(docroot, module_path, certs):
    cert, key = certs['a']
    port, plain = harness.free_port(), harness.free_port()
    # one child, so that every connection is counted where the test looks
    a = harness.Apache(harness.ONE_CHILD + f"""
Listen 127.0.0.1:{port}
Listen 127.0.0.1:{plain}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
</VirtualHost>
<VirtualHost 127.0.0.1:{plain}>
  ServerName a.test
</VirtualHost>
""", docroot, name='writes')
    a.port, a.plain_port = port, plain
    a.start()
    yield a
    a.stop()


def _counted(server, connection):
    """The fewest writes the server's children made for one run of connection()."""
    counts = []
    for _ in range(3 * TRIES):
        if len(counts) == TRIES:
            break
        kids = server.children()
        assert kids, 'no child process'
        time.sleep(0.1)
        before = harness.syscalls(kids, 'syscw')
        connection()            # returns once the server closed: its last write is done
        after = harness.syscalls(kids, 'syscw')
        if set(server.children()) == set(kids):
            counts.append(after - before)
    assert counts, 'the child processes changed during every try'
    return min(counts)


class Client:
    """Python's ssl over memory buffers, so that the test decides what goes out in one send:
    the Finished and the request together, as browsers and most clients send them."""

    contexts = {}       # a session resumes only with the context that made it

    def __init__(self, ca, port, version, session=None):
        ctx = self.contexts.get(version)
        if ctx is None:
            ctx = self.contexts[version] = harness.ssl_context(ca, min_version=version,
                                                               max_version=version)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname='a.test', session=session)
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def receive(self):
        data = self.sock.recv(65536)
        assert data, 'the server closed the connection'
        self.inc.write(data)

    def handshake(self):
        """Until the handshake is done; the client's last flight is not sent yet."""
        while True:
            try:
                self.tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                self.send()
                self.receive()

    def response(self):
        """Everything up to the server's close_notify, which must come."""
        body = b''
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                self.receive()
                continue
            except ssl.SSLZeroReturnError:
                return body
            if not chunk:                # Python's way of saying close_notify came
                return body
            body += chunk

    def close(self):
        self.sock.close()


def _tls_connection(ca, server, version, session=None, pause=0.0):
    """One connection with one request; with `pause`, the request follows the Finished
    after that long instead of with it. Returns the client."""
    c = Client(ca, server.port, version, session)
    try:
        c.handshake()
        if pause:
            c.send()
            time.sleep(pause)
        c.tls.write(REQUEST)
        c.send()
        body = c.response()
        assert body.startswith(b'HTTP/1.1 200 OK\r\n'), body[:100]
        assert body.endswith(b'\r\n\r\nHello, TLS!\n'), body[-100:]
        # Until the server closes its side, which it does after its last write, the access
        # log line; harness.exchange does the same for plain HTTP.
        rest = harness.read_until_close(c.sock, timeout=10)
        assert (rest.end, rest.data) == ('close', b''), rest
    finally:
        c.close()
    return c


def _plain_connection(server):
    r = harness.exchange(server.plain_port, REQUEST)
    assert r.data.startswith(b'HTTP/1.1 200 OK\r\n'), r


@pytest.fixture(scope='module')
def plain_writes(server):
    return _counted(server, lambda: _plain_connection(server))


def test_tls13_full(ca, server, plain_writes):
    """TLS 1.3: the server's flight, then the tickets, the response and close_notify in one
    write (they were three)."""
    got = []
    writes = _counted(server, lambda: got.append(_tls_connection(ca, server,
                                                                 ssl.TLSVersion.TLSv1_3)))
    assert got[-1].tls.session is not None and got[-1].tls.session.has_ticket
    assert writes == plain_writes + 1, f'{writes} writes, plain HTTP {plain_writes}'


def test_tls13_resumed(ca, server, plain_writes):
    first = _tls_connection(ca, server, ssl.TLSVersion.TLSv1_3)
    session = first.tls.session
    got = []

    def resumed():
        got.append(_tls_connection(ca, server, ssl.TLSVersion.TLSv1_3, session))

    writes = _counted(server, resumed)
    assert all(c.tls.session_reused for c in got)
    assert writes == plain_writes + 1, f'{writes} writes, plain HTTP {plain_writes}'


def test_tls12_full(ca, server, plain_writes):
    """TLS 1.2: the client waits for the server's Finished before it sends its request, so
    two flights, then the response with close_notify."""
    writes = _counted(server, lambda: _tls_connection(ca, server, ssl.TLSVersion.TLSv1_2))
    assert writes == plain_writes + 2, f'{writes} writes, plain HTTP {plain_writes}'


def test_tickets_do_not_wait_for_a_late_request(ca, server):
    """A client that sends its Finished and waits before its request gets its tickets
    meanwhile: the server sends them before it waits for the client."""
    c = Client(ca, server.port, ssl.TLSVersion.TLSv1_3)
    try:
        c.handshake()
        c.send()
        assert c.tls.session is None or not c.tls.session.has_ticket
        deadline = time.monotonic() + 5
        while not (c.tls.session and c.tls.session.has_ticket) and time.monotonic() < deadline:
            c.sock.settimeout(max(0.01, deadline - time.monotonic()))
            c.receive()
            try:
                c.tls.read(1)
                raise AssertionError('application data before any request')
            except ssl.SSLWantReadError:
                pass
        assert c.tls.session and c.tls.session.has_ticket, 'no ticket while the server waited'
        c.tls.write(REQUEST)
        c.send()
        assert c.response().endswith(b'Hello, TLS!\n')
    finally:
        c.close()


def test_kept_alive_response_keeps_connection(ca, server):
    """close_notify goes with a response only when the connection closes after it: a
    kept-alive connection still answers a second request."""
    s = harness.tls_connect(ca, server.port, 'a.test')
    try:
        f = s.makefile('rb')
        for req in (REQUEST.replace(b'Connection: close', b'Connection: keep-alive'), REQUEST):
            s.sendall(req)
            assert f.readline().startswith(b'HTTP/1.1 200 OK')
            while f.readline() not in (b'\r\n', b''):
                pass
            assert f.read(12) == b'Hello, TLS!\n'
    finally:
        s.close()

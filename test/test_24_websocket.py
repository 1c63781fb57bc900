"""Websockets end to end through a mod_tls front (issue 11): a client speaks wss:// to
Apache with mod_tls, which proxies to a websocket echo server (test/ws_echo.py, Debian's
python3-websockets) over ws:// or, with TLSProxyEngine, over wss://. Both ways Apache
tunnels websockets: mod_proxy_http's `upgrade=websocket` and mod_proxy_wstunnel
(ProxyWebsocketFallbackToProxyHttp Off, else mod_proxy_http takes the ws:// URLs).

Checked: binary messages (one frame each) from 1 byte to 16 MiB, across the frame header's
length steps (125/126, 65535/65536), come back byte for byte; 100 messages one after the
other and 100 in flight at once on one connection; the close handshake goes through. Every
step has a timeout, and a timeout is a failure.
"""
import asyncio
import json
import os
import random
import select
import signal
import subprocess
import time

import pytest

import harness

try:
    import websockets
except ImportError:           # a collection error, not a skip: the tests must run
    raise ImportError('test_24 needs python3-websockets: scripts/deps.sh test') from None

PYTHON = '/usr/bin/python3'
ECHO = os.path.join(harness.TEST_DIR, 'ws_echo.py')
MiB = 1 << 20
SIZES = [1, 125, 126, 127, 65535, 65536, 65537, MiB, 16 * MiB]
MAX_SIZE = 32 * MiB
STEP = 30.0          # seconds any one send, receive, open or close may take
PROXY_MODULES = ''.join(f'LoadModule {m}_module {harness.MODULES_DIR}/mod_{m}.so\n'
                        for m in ('proxy', 'proxy_http', 'proxy_wstunnel'))
# which module tunnels, as its debug lines tell (LogLevel below)
HANDLER_LINE = {
    'http': r'\[proxy_http:debug\].*AH10239',        # mod_proxy_http: upgrade to websocket
    'tunnel': r'\[proxy_wstunnel:debug\].*AH02451',  # mod_proxy_wstunnel: serving URL
}


# --------------------------------------------------------------------------
# The backend: ws_echo.py as a subprocess, stopped by its pid

class EchoBackend:
    def __init__(self, cert=None, key=None):
        self.port = harness.free_port()
        self.tls = cert is not None
        self.dir = harness.mkdtemp('tls-wsecho-')
        self.log = os.path.join(self.dir, 'echo.log')
        args = [PYTHON, ECHO, str(self.port)] + ([cert, key] if cert else [])
        with open(self.log, 'wb') as err:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err)
        line = self._read_line(15.0)
        if line != f'ready {self.port}':
            self.stop()
            raise AssertionError(f'echo server did not start: {line!r}, log:\n{self.read_log()}')

    def _read_line(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().decode().strip() if ready else None

    def read_log(self):
        with open(self.log, errors='replace') as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc.stdout.close()


@pytest.fixture(scope='module')
def backend_ws():
    b = EchoBackend()
    yield b
    b.stop()


@pytest.fixture(scope='module')
def backend_wss(ca):
    b = EchoBackend(*ca.issue(['backend.test'], key_type='ec', ips=['127.0.0.1']))
    yield b
    b.stop()


# --------------------------------------------------------------------------
# The front: one Apache per backend kind, one vhost per tunnelling module

def front(docroot, certs, backend, name, proxy_conf=''):
    cert, key = certs['a']
    scheme = 'wss' if backend.tls else 'ws'
    ports = {'http': harness.free_port(), 'tunnel': harness.free_port()}
    vhosts = ''
    for form, port in ports.items():
        upgrade = ' upgrade=websocket' if form == 'http' else ''
        fallback = 'Off' if form == 'tunnel' else 'On'
        vhosts += f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
  ProxyWebsocketFallbackToProxyHttp {fallback}
{proxy_conf}
  ProxyPass /ws/ {scheme}://127.0.0.1:{backend.port}/{upgrade}
</VirtualHost>
"""
    # debug: mod_tls' handshake lines (MTLS00012) name the backend connections [remote ...]
    tls_level = 'ssl:info' if harness.MODSSL else 'tls:debug'
    a = harness.Apache(PROXY_MODULES + vhosts, docroot, name=name,
                       log_level=f'warn {tls_level} proxy_http:debug proxy_wstunnel:debug')
    a.ports = ports
    a.backend_port = backend.port
    a.start()
    return a


@pytest.fixture(scope='module')
def front_ws(docroot, module_path, certs, backend_ws):
    a = front(docroot, certs, backend_ws, 'ws-front')
    yield a
    a.stop()


@pytest.fixture(scope='module')
def front_wss(docroot, module_path, ca, certs, backend_wss):
    a = front(docroot, certs, backend_wss, 'wss-front',
              f'  TLSProxyEngine on\n  TLSProxyCA {ca.cert_path}')
    yield a
    a.stop()


ROUTES = [('ws', 'http'), ('ws', 'tunnel'), ('wss', 'http'), ('wss', 'tunnel')]


@pytest.fixture(params=ROUTES, ids=[f'{b}-{f}' for b, f in ROUTES])
def route(request):
    """(front Apache, its port, backend kind, tunnelling module) of one route."""
    kind, form = request.param
    a = request.getfixturevalue('front_ws' if kind == 'ws' else 'front_wss')
    return a, a.ports[form], kind, form


# --------------------------------------------------------------------------
# The client

async def step(aw, what):
    """Await `aw` for at most STEP seconds; longer is a failure naming `what`."""
    try:
        return await asyncio.wait_for(aw, STEP)
    except asyncio.TimeoutError:
        raise AssertionError(f'{what}: nothing within {STEP}s') from None


def session(ca, port, body, path='/ws/echo'):
    """Opens a websocket to the front (TLS, the front's certificate verified with the test
    CA, SNI a.test), runs `await body(ws)`, closes it and checks the close handshake came
    back with 1000. Returns what body returned."""
    async def run():
        ws = await step(websockets.connect(
            f'wss://a.test:{port}{path}', host='127.0.0.1', port=port,
            ssl=harness.ssl_context(ca), server_hostname='a.test', max_size=MAX_SIZE,
            max_queue=4, compression=None, ping_interval=None, open_timeout=STEP,
            close_timeout=STEP), 'websocket open')
        try:
            result = await body(ws)
        except BaseException:
            ws.transport.abort()
            raise
        await step(ws.close(), 'websocket close')
        assert ws.close_code == 1000, (ws.close_code, ws.close_reason)
        return result
    return asyncio.run(run())


async def info(ws):
    await step(ws.send('info'), 'send info')
    return json.loads(await step(ws.recv(), 'receive info'))


async def echo(ws, data, what):
    await step(ws.send(data), f'send {what}')
    got = await step(ws.recv(), f'receive {what}')
    assert isinstance(got, bytes), f'{what}: a text message came back'
    assert len(got) == len(data), f'{what}: {len(got)} bytes came back'
    assert got == data, f'{what}: the bytes that came back differ'


def payload(rnd, size):
    return rnd.randbytes(size)


# --------------------------------------------------------------------------
# Tests

def test_route(ca, route):
    """The tunnel reaches the backend, by the module meant, with the request path
    rewritten and over TLS exactly for wss://."""
    a, port, kind, form = route
    off = a.log_size()
    got = session(ca, port, info)
    assert got['path'] == '/echo', got
    assert got['tls'] is (kind == 'wss'), got
    a.wait_log(HANDLER_LINE[form], off)
    other = HANDLER_LINE['tunnel' if form == 'http' else 'http']
    assert not harness.lines_matching(a.error_log, other, off), f'{other} logged'
    # mod_tls made the backend connection's TLS, or there was none
    backend = rf'\[remote 127\.0\.0\.1:{a.backend_port}\].*MTLS00012'
    if kind == 'wss':
        a.wait_log(backend, off)
    else:
        assert not harness.lines_matching(a.error_log, backend, off), f'{backend} logged'


def test_frame_sizes(ca, route):
    """Binary messages of 1 byte to 16 MiB, each in one frame, come back byte for byte."""
    a, port, kind, form = route
    rnd = random.Random(24)

    async def body(ws):
        for size in SIZES:
            await echo(ws, payload(rnd, size), f'{size} bytes')
    t0 = time.monotonic()
    session(ca, port, body)
    assert a.alive()
    assert time.monotonic() - t0 < 4 * STEP


def test_hundred_messages(ca, route):
    """100 messages one after the other, then 100 more all in flight at once, on one
    connection: every one comes back, in order and unchanged."""
    a, port, kind, form = route
    rnd = random.Random(100)
    sizes = [rnd.choice((1, 126, 4096, 65536, 200000)) + rnd.randrange(64) for _ in range(100)]

    async def body(ws):
        for i, size in enumerate(sizes):
            await echo(ws, payload(rnd, size), f'message {i + 1} of 100 ({size} bytes)')
        sent = [payload(rnd, size) for size in sizes]

        async def send_all():
            for i, data in enumerate(sent):
                await step(ws.send(data), f'send pipelined message {i + 1}')
        sender = asyncio.ensure_future(send_all())
        try:
            for i, data in enumerate(sent):
                got = await step(ws.recv(), f'receive pipelined message {i + 1} of 100')
                assert got == data, f'pipelined message {i + 1}: {len(got)} bytes, differ'
            await step(sender, 'sending the pipelined messages')
        finally:
            sender.cancel()
        return await info(ws)
    got = session(ca, port, body)
    assert got['path'] == '/echo', got

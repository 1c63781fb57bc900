"""Helpers for the session resumption tests (test_13_sessions, test_14_fleet):
Apache configs with a resumption log, resuming clients (openssl s_client with
-sess_in/-sess_out, Python ssl with session=) and the access log parser."""
import os
import re
import socket
import ssl
import subprocess
import time

import harness

# name -> (s_client option, Python ssl version, protocol name)
PROTOS = {
    'tls12': ('-tls1_2', ssl.TLSVersion.TLSv1_2, 'TLSv1.2'),
    'tls13': ('-tls1_3', ssl.TLSVersion.TLSv1_3, 'TLSv1.3'),
}

# One line per request: which child served it and whether it resumed;
# the query string carries the client's tag for the attempt.
LOG_FORMAT = 'LogFormat "sess %P %{SSL_SESSION_RESUMED}x %{SSL_PROTOCOL}x %U%q" sessfmt'
_LOG_LINE = re.compile(r'^sess (\d+) (\S+) (\S+) (\S+?)\?(\S+)$', re.M)


def load_module(name):
    """A LoadModule line for mod_<name>, empty when the harness loads it already
    (loading a module twice is a warning)."""
    if name in harness.BASE_MODULES:
        return ''
    return f'LoadModule {name}_module {harness.MODULES_DIR}/mod_{name}.so'


def server_body(port, cert, key, session_conf, log_path, mpm_conf='',
                servername='a.test'):
    """A TLS vhost on port with `session_conf` (global TLSSession* lines) and
    the resumption log at log_path."""
    return f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
{session_conf}
{mpm_conf}
{LOG_FORMAT}
<VirtualHost 127.0.0.1:{port}>
  ServerName {servername}
  TLSCertificate {cert} {key}
  TLSOptions +StdEnvVars
  CustomLog "{log_path}" sessfmt
</VirtualHost>
"""


PREFORK_4 = """
StartServers 4
MinSpareServers 4
MaxSpareServers 6
MaxRequestWorkers 10
"""


def make_server(docroot, cert, key, session_conf, name, mpm='prefork',
                mpm_conf=None, expect=(), port=None, start=True):
    """An Apache serving a.test with the given session config; with prefork
    four children by default. `.port` and `.sess_log` are set."""
    port = port or harness.free_port()
    if mpm_conf is None:
        mpm_conf = PREFORK_4 if mpm == 'prefork' else ''
    logdir = harness.mkdtemp(f'tls-{name}-log-')
    log_path = os.path.join(logdir, 'sess.log')
    a = harness.Apache(server_body(port, cert, key, session_conf, log_path, mpm_conf),
                       docroot, mpm=mpm, name=name, expect=expect)
    a.port, a.sess_log = port, log_path
    if start:
        a.start()
    return a


def request_bytes(tag, host='a.test', path='/hello.txt'):
    # HTTP/1.0: the server closes after the answer, so a client reads to EOF
    # (and gets the TLS 1.3 tickets sent before the answer)
    return f'GET {path}?{tag} HTTP/1.0\r\nHost: {host}\r\n\r\n'.encode()


class Hit:
    """One connection of a resumption test."""

    def __init__(self, client, port, tag, status, reused, protocol, body=b'',
                 session=None, detail=''):
        self.client = client
        self.port = port
        self.tag = tag
        self.status = status
        self.reused = reused
        self.protocol = protocol
        self.body = body
        self.session = session
        self.detail = detail

    def __repr__(self):
        return (f'Hit({self.client} :{self.port} {self.tag} status={self.status} '
                f'reused={self.reused} protocol={self.protocol}'
                + (f' detail={self.detail!r}' if self.detail else '') + ')')


_SCLIENT_STATE = re.compile(r'^(New|Reused), (\S+), Cipher is (\S+)', re.M)
_HTTP_STATUS = re.compile(rb'^HTTP/1\.[01] (\d{3})', re.M)


def sclient(ca, port, proto, tag, sess_in=None, sess_out=None,
            servername='a.test', path='/hello.txt'):
    """One request over openssl s_client, optionally resuming the session in
    file sess_in and saving the (newest) session to sess_out."""
    args = [PROTOS[proto][0]]
    if sess_in:
        args += ['-sess_in', sess_in]
    if sess_out:
        args += ['-sess_out', sess_out]
    r = harness.s_client(ca, port, servername, args=args,
                         input=request_bytes(tag, servername, path))
    m = _SCLIENT_STATE.search(r.stdout)
    st = _HTTP_STATUS.search(r.stdout.encode())
    reused = None
    protocol = None
    if m and m.group(3) != '(NONE)':
        reused = m.group(1) == 'Reused'
        protocol = m.group(2)
    return Hit('s_client', port, tag, int(st.group(1)) if st else None, reused,
               protocol, detail='' if m and st else
               f'rc={r.rc} stderr={r.stderr.strip()[-400:]}')


def sclient_chain(ca, ports, proto, workdir, label, require_session=True):
    """Connect to ports[0] fresh, then to each further port in turn resuming
    the newest session the previous connection left (-sess_in/-sess_out).
    With require_session=False a server that gives no session (no ticket,
    no session id) is fine: the next connection then offers none either."""
    hits = []
    cur = None
    for i, port in enumerate(ports):
        out = os.path.join(workdir, f'{label}-{i}.sess')
        hit = sclient(ca, port, proto, f'{label}-{i}', sess_in=cur, sess_out=out)
        hits.append(hit)
        if os.path.exists(out) and os.path.getsize(out) > 0:
            cur = out
        elif cur is None and require_session:
            raise AssertionError(f'no session saved by {hit}')
        # else: a resumed TLS 1.2 session is not saved again; keep using it
    return hits


def client_context(ca, proto):
    v = PROTOS[proto][1]
    return harness.ssl_context(ca, min_version=v, max_version=v)


def py_request(ctx, port, tag, session=None, servername='a.test',
               path='/hello.txt', timeout=10):
    """One request with Python ssl, offering `session` (from the same ctx)."""
    raw = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    try:
        s = ctx.wrap_socket(raw, server_hostname=servername, session=session)
    except Exception:
        raw.close()
        raise
    with s:
        s.sendall(request_bytes(tag, servername, path))
        got = harness.read_until_close(s, timeout)
        if got.end == 'alert':
            raise got.error
        data = got.data
        m = _HTTP_STATUS.match(data)
        head, _, body = data.partition(b'\r\n\r\n')
        return Hit('python', port, tag, int(m.group(1)) if m else None,
                   s.session_reused, s.version(), body=body, session=s.session,
                   detail='' if m else repr(data[:200]))


def py_chain(ca, ports, proto, label):
    """Like sclient_chain, with Python ssl: each connection offers the session
    the previous one ended with."""
    ctx = client_context(ca, proto)
    hits = []
    session = None
    for i, port in enumerate(ports):
        hit = py_request(ctx, port, f'{label}-{i}', session=session)
        hits.append(hit)
        session = hit.session
    return hits


def read_sess_log(path, tags=(), timeout=5):
    """{tag: (pid, 'Initial'|'Resumed', protocol)} from a resumption log,
    waiting up to timeout for all `tags` to be logged."""
    deadline = time.time() + timeout
    while True:
        try:
            with open(path, errors='replace') as f:
                text = f.read()
        except OSError:
            text = ''
        entries = {m.group(5): (int(m.group(1)), m.group(2), m.group(3))
                   for m in _LOG_LINE.finditer(text)}
        if all(t in entries for t in tags) or time.time() > deadline:
            return entries
        time.sleep(0.1)


def assert_all_ok(hits):
    bad = [h for h in hits if h.status != 200 or h.reused is None]
    assert not bad, f'failed requests: {bad}'


def assert_resumed(hits, proto):
    """The first connection is a full handshake, every later one resumed."""
    assert_all_ok(hits)
    want = PROTOS[proto][2]
    assert [h.protocol for h in hits] == [want] * len(hits), hits
    assert hits[0].reused is False, hits[0]
    not_resumed = [h for h in hits[1:] if not h.reused]
    assert not not_resumed, \
        f'{len(not_resumed)} of {len(hits) - 1} reconnects not resumed: {not_resumed}'


def assert_not_resumed(hits):
    assert_all_ok(hits)
    resumed = [h for h in hits if h.reused]
    assert not resumed, f'resumed unexpectedly: {resumed}'


def session_ticket(sess_file):
    """The session ticket (bytes, b'' for none) in an s_client -sess_out
    file, from `openssl sess_id -text`."""
    p = subprocess.run(['openssl', 'sess_id', '-in', sess_file, '-noout', '-text'],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    m = re.search(r'TLS session ticket:\n((?:\s*[0-9a-f]{4} - .*\n)+)', p.stdout)
    if not m:
        return b''
    out = b''
    for line in m.group(1).splitlines():
        # "0010 - 3a 5c ... 9f-01 ...   ascii": 16 bytes after the offset
        hexpart = line.split(' - ', 1)[1][:47].replace('-', ' ')
        out += bytes.fromhex(hexpart)
    return out

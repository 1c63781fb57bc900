"""SSLKEYLOGFILE (issue 14, part 3): with the variable set in Apache's environment, the TLS
secrets of every connection, from clients and to backends, are appended to that file in the
NSS key log format, as mod_ssl does.

Nothing is decrypted here. What the server logs is compared, line by line, with what the
other end of the same connection logs: `openssl s_client -keylogfile` for clients, and for a
backend connection mod_tls' own client side (the server proxies to a vhost of its own, so
both ends log into the same file). A connection is known by its client random (the second
field of each line).
"""
import collections
import os
import re
import stat
import time

import pytest

import harness
import sessionlib as sl

TLS13_LABELS = {'CLIENT_HANDSHAKE_TRAFFIC_SECRET', 'SERVER_HANDSHAKE_TRAFFIC_SECRET',
                'CLIENT_TRAFFIC_SECRET_0', 'SERVER_TRAFFIC_SECRET_0', 'EXPORTER_SECRET'}
LINE_RE = re.compile(r'^([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]{64,96})$')
WARNED = r'\[tls:warn\].*MTLS00046: tls: SSLKEYLOGFILE is set'
REFUSED = r'\[tls:error\].*MTLS00047: tls: SSLKEYLOGFILE='
GET_HELLO = 'GET /hello.txt HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n'
PROXY_MODULES = '\n'.join(f'LoadModule {m}_module {harness.MODULES_DIR}/mod_{m}.so'
                          for m in ('proxy', 'proxy_http'))


def body(ca, certs, backend_cert, ports):
    """a.test over TLS; a plain port that proxies /be/ to a TLS vhost (localhost) of the same
    server, so that one request makes a backend connection whose both ends are mod_tls'."""
    cert, key = certs['a']
    be_cert, be_key = backend_cert
    return f"""
{PROXY_MODULES}
Listen 127.0.0.1:{ports['tls']}
Listen 127.0.0.1:{ports['backend']}
Listen 127.0.0.1:{ports['front']}
TLSEngine 127.0.0.1:{ports['tls']} 127.0.0.1:{ports['backend']}
<VirtualHost 127.0.0.1:{ports['tls']}>
  ServerName a.test
  TLSCertificate {cert} {key}
</VirtualHost>
<VirtualHost 127.0.0.1:{ports['backend']}>
  ServerName localhost
  TLSCertificate {be_cert} {be_key}
</VirtualHost>
<VirtualHost 127.0.0.1:{ports['front']}>
  ServerName localhost
  TLSProxyEngine on
  TLSProxyCA {ca.cert_path}
  ProxyPass /be/ https://localhost:{ports['backend']}/ retry=0
</VirtualHost>
"""


def secrets(path):
    """The key log's lines as (label, client random, secret), after checking each line's
    form; comment lines (openssl writes one) are left out."""
    with open(path) as f:
        lines = [line.rstrip('\n') for line in f if not line.startswith('#') and line.strip()]
    parsed = []
    for line in lines:
        m = LINE_RE.match(line)
        assert m, f'not a key log line: {line!r}'
        parsed.append(m.groups())
    return parsed


def by_random(entries):
    """client random -> Counter of (label, secret)."""
    out = collections.defaultdict(collections.Counter)
    for label, random, secret in entries:
        out[random][(label, secret)] += 1
    return out


def new_connections(path, before):
    """The connections whose secrets appeared in the log since `before` (a by_random())."""
    now = by_random(secrets(path))
    return {r: c for r, c in now.items() if r not in before}


def open_regular_files(inst):
    """The regular files the instance's processes hold open, with its own dir written as
    '<dir>' (so that two instances compare). Files of the docroot are left out: a child may
    still hold the file it just served (seen once in CI, hello.txt), which says nothing of a
    key log."""
    found = set()
    for pid in inst.own_pids():
        fd_dir = f'/proc/{pid}/fd'
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith('/') and os.path.isfile(target.split(' (deleted)')[0]) \
                    and not target.startswith(inst.docroot + '/'):
                found.add(target.replace(inst.dir, '<dir>'))
    return found


@pytest.fixture(scope='module')
def backend_cert(ca):
    return ca.issue(['localhost'])


@pytest.fixture(scope='module')
def server(ca, certs, backend_cert, docroot, module_path):
    ports = {k: harness.free_port() for k in ('tls', 'backend', 'front')}
    keylog = os.path.join(harness.mkdtemp('tls-keylog-'), 'tls-keys.log')
    a = harness.Apache(body(ca, certs, backend_cert, ports), docroot, name='keylog',
                       env={'SSLKEYLOGFILE': keylog}, expect=[WARNED])
    a.ports, a.keylog = ports, keylog
    a.start()
    yield a
    a.stop()


def test_file_is_made_0600_and_the_start_warns(server):
    st = os.stat(server.keylog)
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid(), 'made by the parent, as the user Apache starts as'
    lines = server.wait_log(WARNED)
    assert len(lines) == 1, lines
    assert server.keylog in lines[0]


@pytest.mark.parametrize('flag,proto', [('-tls1_3', 'TLSv1.3'), ('-tls1_2', 'TLSv1.2')])
def test_secrets_are_those_openssl_logs(ca, server, tmp_path, flag, proto):
    client_log = str(tmp_path / 'client-keys.log')
    r = harness.s_client(ca, server.ports['tls'], 'a.test', [flag, '-keylogfile', client_log],
                         input=GET_HELLO)
    assert r.protocol == proto, r.stdout + r.stderr
    assert 'Hello, TLS!' in r.stdout
    client = by_random(secrets(client_log))
    assert len(client) == 1, client
    (random, theirs), = client.items()
    ours = by_random(secrets(server.keylog)).get(random)
    assert ours == theirs, 'the server logs what the client logs for the same connection'
    labels = {label for label, _ in ours}
    if proto == 'TLSv1.3':
        assert labels == TLS13_LABELS
    else:
        assert labels == {'CLIENT_RANDOM'}
    assert set(ours.values()) == {1}, 'each secret once'


def test_one_set_of_secrets_per_connection(ca, server):
    before = by_random(secrets(server.keylog))
    for _ in range(3):
        status, _, got = harness.https_get(ca, server.ports['tls'], '/hello.txt')
        assert (status, got) == (200, b'Hello, TLS!\n')
    new = new_connections(server.keylog, before)
    assert len(new) == 3, new
    for c in new.values():
        assert {label for label, _ in c} == TLS13_LABELS
        assert set(c.values()) == {1}


@pytest.mark.parametrize('proto', ['tls12', 'tls13'])
def test_a_resumed_connection_gets_its_own_set(ca, server, tmp_path, proto):
    """A resumption is a connection of its own, with its own client random: TLS 1.2 logs its
    master secret again (the session's), TLS 1.3 new secrets, plus, on the server's side, the
    early data secret of the session (which this client, sending no early data, leaves
    out)."""
    client_log = str(tmp_path / 'client-keys.log')
    ctx = sl.client_context(ca, proto)
    ctx.keylog_filename = client_log
    first = sl.py_request(ctx, server.ports['tls'], 'keylog-1')
    second = sl.py_request(ctx, server.ports['tls'], 'keylog-2', session=first.session)
    assert (first.status, second.status, second.reused) == (200, 200, True), (first, second)
    client = by_random(secrets(client_log))
    assert len(client) == 2, client
    ours = by_random(secrets(server.keylog))
    for random, theirs in client.items():
        mine = ours.get(random)
        assert mine, f'the server logged the connection with client random {random}'
        mine = collections.Counter({k: n for k, n in mine.items()
                                    if k[0] != 'CLIENT_EARLY_TRAFFIC_SECRET'})
        assert mine == theirs
        assert set(mine.values()) == {1}
        assert {label for label, _ in mine} == (
            TLS13_LABELS if proto == 'tls13' else {'CLIENT_RANDOM'})
    if proto == 'tls12':
        # the same master secret, the session's
        assert len({secret for c in client.values() for _, secret in c}) == 1


def test_backend_connections_are_logged_by_both_ends(server):
    before = by_random(secrets(server.keylog))
    status, got = harness.http_get(server.ports['front'], '/be/hello.txt')
    assert (status, got) == (200, b'Hello, TLS!\n')
    new = new_connections(server.keylog, before)
    assert len(new) == 1, f'one connection to the backend: {new}'
    (c,) = new.values()
    assert {label for label, _ in c} == TLS13_LABELS
    # mod_tls' client side (the proxy) and its server side (the backend vhost) each logged
    # the same five secrets
    assert set(c.values()) == {2}, c


def test_cgi_programs_do_not_get_the_descriptor(ca, server, docroot):
    harness.write_file(os.path.join(docroot, 'cgi-bin', 'keylog-fds.cgi'),
                       '#!/bin/sh\necho "Content-Type: text/plain"\necho\n'
                       'ls -l /proc/$$/fd\n', mode=0o755)
    status, _, got = harness.https_get(ca, server.ports['tls'], '/cgi-bin/keylog-fds.cgi')
    assert status == 200 and b' 0 -> ' in got, got
    assert server.keylog.encode() not in got, got


def test_configtest_makes_no_file(ca, certs, backend_cert, apache_factory):
    ports = {k: harness.free_port() for k in ('tls', 'backend', 'front')}
    keylog = os.path.join(harness.mkdtemp('tls-keylog-t-'), 'keys.log')
    a = apache_factory(body(ca, certs, backend_cert, ports), name='keylog-t',
                       env={'SSLKEYLOGFILE': keylog})
    rc, out = a.configtest()
    assert rc == 0, out
    assert 'MTLS0004' not in out
    assert not os.path.exists(keylog)


@pytest.mark.parametrize('kind', ['readable-by-all', 'symlink', 'hard-link', 'fifo'])
def test_a_file_open_to_others_is_refused(ca, certs, backend_cert, apache_factory, kind):
    """An existing key log that every user may read, a symbolic link (which could point
    anywhere), a second name of a file (which could be anybody's) or a FIFO (which would hold
    the start until somebody reads it) gets no secrets: the start says why, at error level,
    and serves as usual; the file is left as it was."""
    ports = {k: harness.free_port() for k in ('tls', 'backend', 'front')}
    d = harness.mkdtemp('tls-keylog-refused-')
    keylog = os.path.join(d, 'keys.log')
    if kind in ('symlink', 'hard-link'):
        target = harness.write_file(os.path.join(d, 'target.log'), '', mode=0o600)
        (os.symlink if kind == 'symlink' else os.link)(target, keylog)
        why = 'symbolic link' if kind == 'symlink' else 'hard links'
    elif kind == 'fifo':
        os.mkfifo(keylog, 0o600)
        target, why = None, 'not a regular file'
    else:
        target = harness.write_file(keylog, '', mode=0o644)
        why = 'mode 0644'
    a = apache_factory(body(ca, certs, backend_cert, ports), name='keylog-refused',
                       env={'SSLKEYLOGFILE': keylog}, expect=[REFUSED])
    a.start()
    line = a.wait_log(REFUSED)[0]
    assert keylog in line and why in line, line
    assert not re.search(WARNED, a.read_log())
    status, _, got = harness.https_get(ca, ports['tls'], '/hello.txt')
    assert (status, got) == (200, b'Hello, TLS!\n')
    if target:
        assert os.path.getsize(target) == 0
        assert stat.S_IMODE(os.stat(target).st_mode) == (0o644 if kind == 'readable-by-all'
                                                         else 0o600)


def test_off_without_sslkeylogfile(ca, certs, backend_cert, server, apache_factory):
    """Without the variable: no line about it, and no file open for it (compared with what
    the keylog server's processes hold open: the same files, less the key log)."""
    ports = {k: harness.free_port() for k in ('tls', 'backend', 'front')}
    a = apache_factory(body(ca, certs, backend_cert, ports), name='keylog-off',
                       env={'SSLKEYLOGFILE': None})
    a.start()
    status, _, got = harness.https_get(ca, ports['tls'], '/hello.txt')
    assert (status, got) == (200, b'Hello, TLS!\n')
    status, got = harness.http_get(ports['front'], '/be/hello.txt')
    assert (status, got) == (200, b'Hello, TLS!\n')
    assert 'MTLS0004' not in a.read_log()
    on = open_regular_files(server)
    assert server.keylog in on, f'the check sees the key log where there is one: {on}'
    off = open_regular_files(a)
    assert off <= on - {server.keylog}, off - on


def test_graceful_restart_warns_again_and_logs_on(ca, server):
    """Last in this file: it restarts the module's server."""
    old = set(server.children())
    server.signal('graceful')
    lines = server.wait_log(WARNED, count=2, timeout=15)
    assert len(lines) == 2, lines
    # the new generation serves once a child of it runs
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not set(server.children()) - old:
        time.sleep(0.1)
    assert set(server.children()) - old, 'no new child after the graceful restart'
    before = by_random(secrets(server.keylog))
    status, _, got = harness.https_get(ca, server.ports['tls'], '/hello.txt')
    assert (status, got) == (200, b'Hello, TLS!\n')
    new = new_connections(server.keylog, before)
    assert len(new) == 1 and {label for label, _ in next(iter(new.values()))} == TLS13_LABELS
    assert stat.S_IMODE(os.stat(server.keylog).st_mode) == 0o600

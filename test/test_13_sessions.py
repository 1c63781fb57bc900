"""TLS session resumption on one server: across child processes with a shared
session cache (TLSSessionCache) or with stateless tickets (TLSSessionTickets),
ticket key rotation, SSL_SESSION_RESUMED, and the configuration errors."""
import json
import os
import re
import socket
import time

import pytest

import harness
import sessionlib as sl
from sessionlib import PROTOS

RECONNECTS = 20
PROTO_IDS = list(PROTOS)


@pytest.fixture(scope='module')
def workdir():
    return harness.mkdtemp('tls-sess-')


def _server(docroot, certs, session_conf, name, **kw):
    cert, key = certs['a']
    return sl.make_server(docroot, cert, key, session_conf, name, **kw)


# server-side state in a shared cache, or stateless tickets: both must work
# whichever child process a connection lands on
KINDS = {
    'cache': f"""
{sl.load_module('socache_shmcb')}
TLSSessionCache shmcb
TLSSessionTickets off
""",
    'tickets': """
TLSSessionCache none
TLSSessionTickets on
""",
}


EVENT_3 = """
StartServers 3
ServerLimit 3
ThreadsPerChild 4
MinSpareThreads 4
MaxSpareThreads 12
MaxRequestWorkers 12
"""


@pytest.fixture(scope='module',
                params=['cache-prefork', 'tickets-prefork', 'cache-event', 'tickets-event'])
def multi(request, docroot, module_path, certs):
    """prefork with four children, or event with three of four threads."""
    kind, mpm = request.param.split('-')
    a = _server(docroot, certs, KINDS[kind], f'sess-{request.param}', mpm=mpm,
                mpm_conf=EVENT_3 if mpm == 'event' else None)
    a.kind = kind
    yield a
    a.stop()


@pytest.fixture(scope='module')
def no_resume(docroot, module_path, certs):
    a = _server(docroot, certs, 'TLSSessionCache none\nTLSSessionTickets off\n',
                'sess-none')
    yield a
    a.stop()


@pytest.fixture(scope='module')
def rotating(docroot, module_path, certs):
    # (tls:debug for MTLS00028, logged at each new key)
    a = _server(docroot, certs, 'TLSSessionCache none\nTLSSessionTickets on\n'
                'TLSSessionTicketKeyRotation 2\nLogLevel warn tls:debug\n', 'sess-rotate')
    yield a
    a.stop()


def _check_children(server, hits, min_children=2):
    """Every request is in the log with the resumption the client saw, and
    several children served them."""
    entries = sl.read_sess_log(server.sess_log, [h.tag for h in hits])
    missing = [h.tag for h in hits if h.tag not in entries]
    assert not missing, f'not in {server.sess_log}: {missing}'
    for h in hits:
        pid, resumed, proto = entries[h.tag]
        assert resumed == ('Resumed' if h.reused else 'Initial'), (h, entries[h.tag])
        assert proto == h.protocol, (h, entries[h.tag])
    pids = {entries[h.tag][0] for h in hits}
    assert len(pids) >= min_children, \
        f'all {len(hits)} connections went to child(ren) {pids}: not a cross-process test'
    return pids


# --------------------------------------------------------------------------
# Resumption across child processes

@pytest.mark.parametrize('proto', PROTO_IDS)
def test_resume_across_children_sclient(ca, multi, workdir, proto):
    label = f'sc-{multi.kind}-{proto}'
    hits = sl.sclient_chain(ca, [multi.port] * (RECONNECTS + 1), proto, workdir, label)
    sl.assert_resumed(hits, proto)
    _check_children(multi, hits)


@pytest.mark.parametrize('proto', PROTO_IDS)
def test_resume_across_children_python(ca, multi, proto):
    label = f'py-{multi.kind}-{proto}'
    hits = sl.py_chain(ca, [multi.port] * (RECONNECTS + 1), proto, label)
    sl.assert_resumed(hits, proto)
    _check_children(multi, hits)


@pytest.mark.parametrize('proto', PROTO_IDS)
def test_same_session_offered_repeatedly(ca, multi, proto):
    """TLS 1.2 sessions (id or ticket) and TLS 1.3 tickets from the stateless
    ticketer may be offered more than once."""
    if multi.kind == 'cache' and proto == 'tls13':
        pytest.skip('a stateful TLS 1.3 ticket is single use (rustls takes it from the cache)')
    ctx = sl.client_context(ca, proto)
    first = sl.py_request(ctx, multi.port, f'rep-{multi.kind}-{proto}-0')
    hits = [first] + [sl.py_request(ctx, multi.port, f'rep-{multi.kind}-{proto}-{i}',
                                    session=first.session) for i in range(1, 6)]
    sl.assert_resumed(hits, proto)


@pytest.fixture(scope='module')
def two_vhosts(docroot, module_path, certs):
    """a.test and b.test with their own certificates, cache and tickets."""
    port = harness.free_port()
    (a_cert, a_key), (b_cert, b_key) = certs['a'], certs['b']
    a = harness.Apache(f"""
{sl.load_module('socache_shmcb')}
TLSSessionCache shmcb
TLSSessionTickets on
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {a_cert} {a_key}
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName b.test
  TLSCertificate {b_cert} {b_key}
</VirtualHost>
""", docroot, name='sess-vhosts')
    a.port = port
    a.start()
    yield a
    a.stop()


@pytest.mark.parametrize('proto', PROTO_IDS)
def test_session_not_resumed_for_other_vhost(ca, two_vhosts, workdir, proto):
    """A session made for a.test, offered with SNI b.test: a full handshake
    with b.test's certificate, not a resumption of a.test's session."""
    port = two_vhosts.port
    f = os.path.join(workdir, f'vh-{proto}.sess')
    first = sl.sclient(ca, port, proto, 'vh-0', sess_out=f)
    same = sl.sclient(ca, port, proto, 'vh-1', sess_in=f)
    sl.assert_resumed([first, same], proto)
    r = harness.s_client(ca, port, 'b.test', args=[PROTOS[proto][0], '-sess_in', f],
                         input=sl.request_bytes('vh-2', 'b.test'))
    assert re.search(r'^HTTP/1\.[01] 200', r.stdout, re.M), r
    assert re.search(r'^New, ', r.stdout, re.M), 'a.test session resumed for SNI b.test'
    assert r.names[1] == ['b.test'], r.names
    ctx = sl.client_context(ca, proto)
    first = sl.py_request(ctx, port, 'vh-py-0')
    other = sl.py_request(ctx, port, 'vh-py-1', session=first.session, servername='b.test')
    assert other.status == 200 and not other.reused, other


# --------------------------------------------------------------------------
# Tickets on/off without a cache

@pytest.mark.parametrize('proto', PROTO_IDS)
def test_no_tickets_no_cache_no_resumption(ca, no_resume, multi, workdir, proto):
    """TLSSessionTickets off and TLSSessionCache none: a full handshake every
    time, whatever the client offers."""
    hits = sl.sclient_chain(ca, [no_resume.port] * 6, proto, workdir, f'none-sc-{proto}',
                            require_session=False)
    sl.assert_not_resumed(hits)
    hits = sl.py_chain(ca, [no_resume.port] * 6, proto, f'none-py-{proto}')
    sl.assert_not_resumed(hits)
    if proto == 'tls12':
        assert not hits[0].session.has_ticket, 'a ticket with TLSSessionTickets off'
    entries = sl.read_sess_log(no_resume.sess_log, [h.tag for h in hits])
    assert {entries[h.tag][1] for h in hits} == {'Initial'}, entries
    # a session another server made is not accepted either
    ctx = sl.client_context(ca, proto)
    other = sl.py_request(ctx, multi.port, f'none-other-{proto}')
    hit = sl.py_request(ctx, no_resume.port, f'none-other-{proto}-1', session=other.session)
    sl.assert_not_resumed([hit])


def test_tickets_on_off(ca, no_resume, multi):
    """Without a cache, TLS 1.2 resumption is by ticket: on gives one, off none."""
    if multi.kind != 'tickets':
        pytest.skip('the ticket server only')
    ctx = sl.client_context(ca, 'tls12')
    on = sl.py_request(ctx, multi.port, 'onoff-0')
    off = sl.py_request(ctx, no_resume.port, 'onoff-1')
    assert on.session.has_ticket and not off.session.has_ticket
    assert sl.py_request(ctx, multi.port, 'onoff-2', session=on.session).reused
    assert not sl.py_request(ctx, no_resume.port, 'onoff-3', session=off.session).reused


# --------------------------------------------------------------------------
# SSL_SESSION_RESUMED

@pytest.mark.parametrize('proto', PROTO_IDS)
def test_session_resumed_var_in_cgi(ca, multi, proto):
    ctx = sl.client_context(ca, proto)
    envs = []
    session = None
    for i in range(3):
        hit = sl.py_request(ctx, multi.port, f'cgi-{multi.kind}-{proto}-{i}',
                            session=session, path='/cgi-bin/env.py')
        assert hit.status == 200, hit
        envs.append(json.loads(hit.body))
        assert hit.reused is (i > 0), hit
        session = hit.session
    assert [e.get('SSL_SESSION_RESUMED') for e in envs] == ['Initial', 'Resumed', 'Resumed']
    assert {e.get('SSL_PROTOCOL') for e in envs} == {PROTOS[proto][2]}


def test_session_resumed_var_in_log(ca, no_resume, multi):
    ctx = sl.client_context(ca, 'tls13')
    first = sl.py_request(ctx, multi.port, 'logvar-0')
    second = sl.py_request(ctx, multi.port, 'logvar-1', session=first.session)
    third = sl.py_request(ctx, no_resume.port, 'logvar-2', session=first.session)
    assert (first.reused, second.reused, third.reused) == (False, True, False)
    entries = sl.read_sess_log(multi.sess_log, ['logvar-0', 'logvar-1'])
    assert entries['logvar-0'][1:] == ('Initial', 'TLSv1.3'), entries.get('logvar-0')
    assert entries['logvar-1'][1:] == ('Resumed', 'TLSv1.3'), entries.get('logvar-1')
    entries = sl.read_sess_log(no_resume.sess_log, ['logvar-2'])
    assert entries['logvar-2'][1] == 'Initial', entries.get('logvar-2')


# --------------------------------------------------------------------------
# Ticket key rotation

def test_rotation_keeps_previous_keys(ca, rotating, workdir):
    """Rotation every 2s, resumption for 6s, the newest session each client has
    offered on the next connection: a ticket made less than 3s ago always
    resumes, whether the key that made it is still current or already a previous
    one. Python ssl and s_client, TLS 1.2 and 1.3; the tickets show the keys
    changed (a ticket starts with the 16-byte name of its key). s_client does not
    save the ticket a resumed TLS 1.2 handshake brings, so it keeps offering its
    first one: once that is 3s old, it starts over with a full handshake."""
    ctxs = {p: sl.client_context(ca, p) for p in PROTO_IDS}
    py = {p: [] for p in PROTO_IDS}
    sc = {p: [] for p in PROTO_IDS}
    cur = {p: (None, 0) for p in PROTO_IDS}     # session file, when it was saved
    names = set()
    start = time.time()
    i = 0
    while True:
        for p in PROTO_IDS:
            prev = py[p][-1].session if py[p] else None
            py[p].append(sl.py_request(ctxs[p], rotating.port, f'rot-py-{p}-{i}',
                                       session=prev))
            out = os.path.join(workdir, f'rot-sc-{p}-{i}.sess')
            offer = cur[p][0] if time.time() - cur[p][1] < 3.0 else None
            started = time.time()     # before the ticket was made: its age is not understated
            sc[p].append((sl.sclient(ca, rotating.port, p, f'rot-sc-{p}-{i}',
                                     sess_in=offer, sess_out=out), offer))
            if os.path.exists(out) and os.path.getsize(out):
                cur[p] = (out, started)
                names.add(sl.session_ticket(out)[:16])
        if time.time() - start > 6:
            break
        i += 1
        time.sleep(1.3)
    for p in PROTO_IDS:
        sl.assert_resumed(py[p], p)
        sl.assert_all_ok([h for h, _ in sc[p]])
        wrong = [(h, offer) for h, offer in sc[p] if h.reused != bool(offer)]
        assert not wrong, f'resumed is not "a session was offered": {wrong}'
    assert len(names) >= 3, f'tickets over 6s were made with {len(names)} key(s)'


def _retire(ca, rotating, label, busy):
    """A ticket offered again once three new keys came after it was made (a key is accepted
    while current and as one of the two previous ones): the late handshake's result. The
    keys are counted in the log, as a watchdog slowed down by a loaded machine rotates
    later than every 2 s."""
    ctx = sl.client_context(ca, 'tls12')
    first = sl.py_request(ctx, rotating.port, f'{label}-0')
    offset = rotating.log_size()
    again = sl.py_request(ctx, rotating.port, f'{label}-1', session=first.session)
    assert again.reused, again
    deadline = time.time() + 30
    while len(harness.lines_matching(rotating.error_log, r'MTLS00028', offset)) < 3:
        assert time.time() < deadline, 'fewer than three new ticket keys in 30 s'
        time.sleep(0.5)
        if busy:
            hit = sl.py_request(ctx, rotating.port, f'{label}-busy')
            assert hit.status == 200, hit
    late = sl.py_request(ctx, rotating.port, f'{label}-2', session=first.session)
    assert late.status == 200, late
    return late


def test_rotation_retires_old_keys(ca, rotating):
    """Keys do not live forever: with other clients coming and going, a ticket
    made three key rotations ago no longer resumes."""
    late = _retire(ca, rotating, 'old', busy=True)
    assert not late.reused, 'a ticket resumed three key rotations after it was made'


def test_rotation_retires_old_keys_when_idle(ca, rotating):
    """The same when nobody connected in between: the rotation period is
    time, not a number of connections."""
    late = _retire(ca, rotating, 'idle', busy=False)
    assert not late.reused, \
        'a ticket resumed three key rotations after it was made, after an idle time'


# --------------------------------------------------------------------------
# Cache variants

@pytest.mark.parametrize('spec', ['shmcb:{dir}/scache(512000)', 'dbm:{dir}/scache', 'default'],
                         ids=['shmcb-file', 'dbm', 'default'])
def test_cache_providers(ca, apache_factory, certs, workdir, spec):
    d = harness.mkdtemp('tls-scache-')
    os.chmod(d, 0o777)
    spec = spec.format(dir=d)
    mods = sl.load_module('socache_shmcb')
    if spec.startswith('dbm'):
        mods += '\n' + sl.load_module('socache_dbm')
    cert, key = certs['a']
    port = harness.free_port()
    log = os.path.join(d, 'sess.log')
    a = apache_factory(sl.server_body(port, cert, key, f"""
{mods}
TLSSessionCache {spec}
TLSSessionTickets off
""", log, sl.PREFORK_4), mpm='prefork', name='sess-provider')
    a.port, a.sess_log = port, log
    a.start()
    for proto in PROTO_IDS:
        label = f'prov-{proto}'
        hits = sl.sclient_chain(ca, [port] * 9, proto, workdir, label)
        sl.assert_resumed(hits, proto)
        _check_children(a, hits)


def test_default_cache_without_shmcb_warns(ca, apache_factory, certs, workdir, allow_log):
    """TLSSessionCache default without mod_socache_shmcb: a warning naming the
    missing module, and resumption still works within one child."""
    cert, key = certs['a']
    port = harness.free_port()
    d = harness.mkdtemp('tls-sess-noshm-')
    log = os.path.join(d, 'sess.log')
    a = apache_factory(sl.server_body(port, cert, key, """
TLSSessionCache default
TLSSessionTickets off
""", log, harness.ONE_CHILD), name='sess-noshmcb')
    shm_load = f'LoadModule socache_shmcb_module {harness.MODULES_DIR}/mod_socache_shmcb.so'
    if shm_load in a.config:
        a.config = a.config.replace(shm_load + '\n', '')
        harness.write_file(a.conf_path, a.config)
    assert 'socache_shmcb' not in a.config
    a.port, a.sess_log = port, log
    warn = r'\[(?:tls:)?warn\].*socache_shmcb'
    allow_log(warn)
    a.start()
    warnings = [line for line in a.log_lines() if re.search(warn, line, re.I)]
    assert len(warnings) == 1, f'not one warning naming socache_shmcb in:\n{a.read_log()}'
    hits = sl.sclient_chain(ca, [port] * 4, 'tls12', workdir, 'noshm')
    sl.assert_resumed(hits, 'tls12')


def test_cache_timeout(ca, apache_factory, certs):
    cert, key = certs['a']
    port = harness.free_port()
    d = harness.mkdtemp('tls-sess-to-')
    a = apache_factory(sl.server_body(port, cert, key, f"""
{sl.load_module('socache_shmcb')}
TLSSessionCache shmcb
TLSSessionCacheTimeout 2
TLSSessionTickets off
""", os.path.join(d, 'sess.log')), name='sess-timeout')
    a.start()
    ctx = sl.client_context(ca, 'tls12')
    first = sl.py_request(ctx, port, 'to-0')
    soon = sl.py_request(ctx, port, 'to-1', session=first.session)
    assert soon.reused, soon
    time.sleep(3.5)
    late = sl.py_request(ctx, port, 'to-2', session=first.session)
    assert late.status == 200, late
    assert not late.reused, 'a session resumed 3.5s after it was made, TLSSessionCacheTimeout 2'


def test_mutex_directive(ca, apache_factory, certs, workdir):
    """`Mutex file:DIR tls-session-cache` is accepted and the lock lives in DIR."""
    cert, key = certs['a']
    port = harness.free_port()
    d = harness.mkdtemp('tls-sess-mutex-')
    lockdir = os.path.join(d, 'locks')
    os.makedirs(lockdir)
    log = os.path.join(d, 'sess.log')
    a = apache_factory(sl.server_body(port, cert, key, f"""
{sl.load_module('socache_shmcb')}
Mutex file:{lockdir} tls-session-cache
TLSSessionCache shmcb
TLSSessionTickets off
""", log, sl.PREFORK_4), mpm='prefork', name='sess-mutex')
    a.port, a.sess_log = port, log
    rc, out = a.configtest()
    assert rc == 0, out
    a.start()
    hits = sl.sclient_chain(ca, [port] * 6, 'tls12', workdir, 'mutex')
    sl.assert_resumed(hits, 'tls12')
    # a file lock is opened in lockdir (fcntl locks unlink the file at once,
    # so look at the processes' open files too)
    seen = os.listdir(lockdir)
    for pid in [a.pid] + a.children():
        try:
            for fd in os.listdir(f'/proc/{pid}/fd'):
                try:
                    target = os.readlink(f'/proc/{pid}/fd/{fd}')
                except OSError:
                    continue
                if target.startswith(lockdir + '/'):
                    seen.append(target)
        except OSError:
            pass
    assert any('tls-session-cache' in f for f in seen), f'no lock file in {lockdir}: {seen}'


# --------------------------------------------------------------------------
# Configuration errors

def _cfg_body(port, certs, session_conf, in_vhost=''):
    cert, key = certs['a']
    return f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
{session_conf}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
  {in_vhost}
</VirtualHost>
"""


def _assert_fails(a, patterns, configtest=True):
    """Start (and `apache2 -t`) fail with output matching all patterns."""
    outputs = []
    if configtest:
        rc, out = a.configtest()
        assert rc != 0, f'apache2 -t passed:\n{out}'
        outputs.append(('apache2 -t', out))
    rc, out = a.start(check=False)
    assert rc != 0, f'start succeeded:\n{out}'
    assert not a.alive()
    outputs.append(('start', out))
    for what, out in outputs:
        for rx in patterns:
            assert re.search(rx, out, re.I), f'{what}: no {rx!r} in:\n{out}'
    a.consume_log()


@pytest.mark.parametrize('spec,name', [('nosuch:foo', 'nosuch'),
                                       ('redis:127.0.0.1:6379', 'redis')],
                         ids=['unknown', 'provider-not-loaded'])
def test_unknown_cache_provider(apache_factory, certs, spec, name):
    port = harness.free_port()
    a = apache_factory(_cfg_body(port, certs, f'TLSSessionCache {spec}'), name='sess-badprov')
    _assert_fails(a, [rf'\b{name}\b'])


@pytest.mark.parametrize('size', [47, 49, 0, 4 * 48])
def test_ticket_key_file_bad_size(apache_factory, certs, size):
    port = harness.free_port()
    d = harness.mkdtemp('tls-keyfile-')
    path = harness.write_file(os.path.join(d, f'ticket-{size}.key'), os.urandom(size), 0o600)
    a = apache_factory(_cfg_body(port, certs, f'TLSSessionTicketKeyFile {path}'),
                       name='sess-badkey')
    _assert_fails(a, [re.escape(path)])


@pytest.mark.parametrize('keys', [[bytes(48)], [os.urandom(48), os.urandom(16) + bytes(32)]],
                         ids=['zeros', 'second-key-zeros'])
def test_ticket_key_file_zeros(apache_factory, certs, keys):
    """A key whose AES part is all zeros (a file of zeros, a truncated copy padded) would
    let anyone seal tickets this server accepts: the start stops, naming the file."""
    port = harness.free_port()
    d = harness.mkdtemp('tls-keyfile-')
    path = harness.write_file(os.path.join(d, 'ticket.key'), b''.join(keys), 0o600)
    a = apache_factory(_cfg_body(port, certs, f'TLSSessionTicketKeyFile {path}'),
                       name='sess-zerokey')
    _assert_fails(a, [re.escape(path), r'zeros'])


@pytest.mark.parametrize('kind', ['missing', 'directory'])
def test_ticket_key_file_unreadable(apache_factory, certs, kind):
    port = harness.free_port()
    d = harness.mkdtemp('tls-keyfile-')
    path = os.path.join(d, 'ticket.key')
    if kind == 'directory':
        # we run as root: permissions do not stop reading, a directory does
        os.makedirs(path)
    a = apache_factory(_cfg_body(port, certs, f'TLSSessionTicketKeyFile {path}'),
                       name='sess-nokey')
    _assert_fails(a, [re.escape(path)])


def test_ticket_key_file_good(ca, apache_factory, certs, workdir):
    """Three keys (144 bytes) are fine; tickets made with them resume."""
    port = harness.free_port()
    d = harness.mkdtemp('tls-keyfile-')
    path = harness.write_file(os.path.join(d, 'ticket.key'), os.urandom(144), 0o600)
    log = os.path.join(d, 'sess.log')
    cert, key = certs['a']
    a = apache_factory(sl.server_body(port, cert, key, f"""
TLSSessionCache none
TLSSessionTicketKeyFile {path}
""", log, sl.PREFORK_4), mpm='prefork', name='sess-keyfile')
    a.port, a.sess_log = port, log
    rc, out = a.configtest()
    assert rc == 0, out
    a.start()
    for proto in PROTO_IDS:
        hits = sl.sclient_chain(ca, [port] * 9, proto, workdir, f'kf-{proto}')
        sl.assert_resumed(hits, proto)
        _check_children(a, hits)


def test_shared_tickets_need_a_cache(apache_factory, certs):
    port = harness.free_port()
    a = apache_factory(_cfg_body(port, certs, 'TLSSessionCache none\nTLSSessionTickets shared'),
                       name='sess-sharednocache')
    _assert_fails(a, [r'TLSSessionTickets shared', r'\.conf:\d+: '])


@pytest.mark.parametrize('line', [
    'TLSSessionTickets maybe',
    'TLSSessionCacheTimeout soon',
    'TLSSessionTicketKeyRotation 0',
])
def test_bad_values(apache_factory, certs, line):
    port = harness.free_port()
    a = apache_factory(_cfg_body(port, certs, line), name='sess-badval')
    _assert_fails(a, [re.escape(line.split()[0])])


@pytest.mark.parametrize('line', [
    'TLSSessionCache none',
    'TLSSessionCacheTimeout 60',
    'TLSSessionTickets off',
    'TLSSessionTicketKeyRotation 60',
    'TLSSessionTicketKeyFile /dev/null',
])
def test_directives_are_server_config_only(apache_factory, certs, line):
    port = harness.free_port()
    a = apache_factory(_cfg_body(port, certs, '', in_vhost=line), name='sess-invhost')
    _assert_fails(a, [re.escape(line.split()[0])])


# --------------------------------------------------------------------------
# Graceful restarts

def _graceful(a):
    """`apache2 -k graceful`, and wait until a child of the new generation serves."""
    old = set(a.children())
    p = harness.run_httpd('-f', a.conf_path, '-k', 'graceful', timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    deadline = time.time() + 10
    while time.time() < deadline and not set(a.children()) - old:
        time.sleep(0.1)
    assert set(a.children()) - old, 'no new child after a graceful restart'
    return old


def test_graceful_restart_old_child_keeps_its_keys(ca, docroot, module_path, certs):
    """A graceful restart wipes the old generation's shared ticket keys while its
    children may still make a handshake on a connection they accepted before: such a
    child must keep the keys it has, not take the wiped memory (zeros where the keys
    were, or a fresh key in front of them) as its new keys. A ticket from before the
    restart, offered on such a connection after a rotation period, still resumes."""
    # AcceptFilter none: the child accepts the connection before the client sends anything
    a = _server(docroot, certs, 'TLSSessionCache none\nTLSSessionTickets on\n'
                'TLSSessionTicketKeyRotation 2\nAcceptFilter http none\n', 'sess-graceful-old')
    try:
        ctx = sl.client_context(ca, 'tls12')
        first = sl.py_request(ctx, a.port, 'gold-0')
        assert first.session.has_ticket, first
        raw = socket.create_connection(('127.0.0.1', a.port), timeout=20)
        # accepted by the (old) child, which waits for a hello
        harness.wait_accepted(a.port, raw.getsockname()[1])
        old = _graceful(a)
        time.sleep(2.5)             # a rotation period later
        with ctx.wrap_socket(raw, server_hostname='a.test', session=first.session) as s:
            s.sendall(sl.request_bytes('gold-1'))
            data = b''
            while chunk := s.recv(65536):
                data += chunk
            reused = s.session_reused
        assert data.startswith(b'HTTP/1.1 200') or data.startswith(b'HTTP/1.0 200'), data[:100]
        pid = sl.read_sess_log(a.sess_log, ['gold-1'])['gold-1'][0]
        assert pid in old, f'the held connection was served by {pid}, not an old child {old}'
        assert reused, 'an old child lost its ticket keys to the graceful restart'
    finally:
        a.stop()


@pytest.mark.parametrize('mpm', ['prefork', 'event'])
def test_graceful_restart_under_resumption(ca, docroot, module_path, certs, mpm):
    """Clients resume without pause while the server restarts gracefully twice and
    rotates its ticket keys every second: every request succeeds, resumed or with a
    full handshake, and sessions resume again after the restarts."""
    a = _server(docroot, certs, 'TLSSessionCache none\nTLSSessionTickets on\n'
                'TLSSessionTicketKeyRotation 1\n', f'sess-graceful-{mpm}', mpm=mpm)
    try:
        hits = {p: [] for p in PROTO_IDS}
        ctxs = {p: sl.client_context(ca, p) for p in PROTO_IDS}
        for i in range(30):
            if i in (8, 18):
                assert harness.run_httpd('-f', a.conf_path, '-k', 'graceful',
                                         timeout=30).returncode == 0
            for p in PROTO_IDS:
                prev = hits[p][-1].session if hits[p] else None
                hits[p].append(sl.py_request(ctxs[p], a.port, f'grun-{mpm}-{p}-{i}',
                                             session=prev))
            time.sleep(0.15)
        for p in PROTO_IDS:
            sl.assert_all_ok(hits[p])
            assert all(h.reused for h in hits[p][-5:]), hits[p][-5:]
    finally:
        a.stop()

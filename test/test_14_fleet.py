"""TLS session resumption across a fleet: two Apache instances sharing a real
redis-server or memcached (TLSSessionCache redis:/memcache:, TLSSessionTickets
off or shared), or the same TLSSessionTicketKeyFile; a cache that dies costs
resumption, never a request."""
import os
import re
import signal
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization

import clientcerts as cc
import harness
import sessionlib as sl
from sessionlib import PROTOS

PROTO_IDS = list(PROTOS)

# mod_tls' own warning about a failing cache (at most once a minute)
CACHE_WARN = r'\[(?:tls:)?warn\].*TLSSessionCache'
# what Apache's socache providers themselves log when their server is gone
PROVIDER_ERRORS = r'\[socache_(?:redis|memcache):(?:crit|error|warn)\]'


class Peer:
    """A redis-server or memcached of our own on a 127.0.0.1 high port."""

    def __init__(self, kind, port=None):
        self.kind = kind
        self.port = port or harness.free_port()
        self.dir = harness.mkdtemp(f'tls-{kind}-')
        self.log = os.path.join(self.dir, f'{kind}.log')
        self.proc = None

    def cmd(self):
        if self.kind == 'redis':
            return ['redis-server', '--port', str(self.port), '--bind', '127.0.0.1',
                    '--save', '', '--appendonly', 'no', '--daemonize', 'no',
                    '--dir', self.dir]
        return ['memcached', '-l', '127.0.0.1', '-p', str(self.port), '-U', '0',
                '-u', 'root', '-m', '64']

    @property
    def spec(self):
        """The TLSSessionCache argument for this peer."""
        return f'{self.kind}:127.0.0.1:{self.port}'

    def start(self):
        with open(self.log, 'ab') as log:
            self.proc = subprocess.Popen(self.cmd(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.dir)
        if not harness.wait_port('127.0.0.1', self.port, 10):
            self.stop()
            with open(self.log, errors='replace') as f:
                raise RuntimeError(f'{self.kind} did not start:\n{f.read()}')
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope='module')
def redis():
    p = Peer('redis').start()
    yield p
    p.stop()


@pytest.fixture(scope='module')
def memcached():
    p = Peer('memcache').start()
    yield p
    p.stop()


@pytest.fixture(scope='module')
def workdir():
    return harness.mkdtemp('tls-fleet-')


def _member(docroot, cert, key, session_conf, name, **kw):
    return sl.make_server(docroot, cert, key, session_conf, name, mpm='event', **kw)


def _assert_warned_once_per_process(lines):
    """Of the log `lines`, the cache warnings come at most once per process (the outages
    here are shorter than the warning's interval, a minute)."""
    warns = [line for line in lines if re.search(CACHE_WARN, line)]
    pids = [m.group(1) if (m := re.search(r'\[pid (\d+)', line)) else '?' for line in warns]
    assert len(pids) == len(set(pids)), \
        'cache warning more than once a minute:\n' + '\n'.join(warns)
    return warns


def _cache_conf(peer, tickets, extra=''):
    return f"""
{sl.load_module('socache_' + peer.kind)}
TLSSessionCache {peer.spec}
TLSSessionTickets {tickets}
{extra}
"""


@pytest.fixture(scope='module', params=[('redis', 'off'), ('redis', 'shared'),
                                        ('memcache', 'off'), ('memcache', 'shared')],
                ids=lambda p: f'{p[0]}-tickets-{p[1]}')
def fleet(request, docroot, module_path, ca):
    """Two servers, one cache; the same certificate for a.test."""
    kind, tickets = request.param
    peer = request.getfixturevalue('redis' if kind == 'redis' else 'memcached')
    cert, key = ca.issue(['a.test', 'www.a.test'], tag='fleet')
    a = _member(docroot, cert, key, _cache_conf(peer, tickets), f'fleet-{kind}-a')
    b = _member(docroot, cert, key, _cache_conf(peer, tickets), f'fleet-{kind}-b')
    a.label = f'{kind}-{tickets}'
    a.tickets = tickets
    yield a, b
    a.stop()
    b.stop()


@pytest.mark.parametrize('proto', PROTO_IDS)
def test_resume_on_other_server_sclient(ca, fleet, workdir, proto):
    a, b = fleet
    label = f'fl-sc-{a.label}-{proto}'
    hits = sl.sclient_chain(ca, [a.port, b.port, a.port, b.port, b.port, a.port],
                            proto, workdir, label)
    sl.assert_resumed(hits, proto)
    # both servers say so too
    ea = sl.read_sess_log(a.sess_log, [h.tag for h in hits if h.port == a.port])
    eb = sl.read_sess_log(b.sess_log, [h.tag for h in hits if h.port == b.port])
    assert ea[f'{label}-0'][1] == 'Initial', ea
    assert {eb[h.tag][1] for h in hits if h.port == b.port} == {'Resumed'}, eb
    ticket = sl.session_ticket(os.path.join(workdir, f'{label}-0.sess'))
    if a.tickets == 'shared':
        # a stateless ticket carries the sealed session: more than an id
        assert len(ticket) > 64, f'TLSSessionTickets shared, but a {len(ticket)}-byte ticket'
    elif proto == 'tls12':
        assert ticket == b'', 'a TLS 1.2 ticket with TLSSessionTickets off'


@pytest.mark.parametrize('proto', PROTO_IDS)
def test_resume_on_other_server_python(ca, fleet, proto):
    a, b = fleet
    hits = sl.py_chain(ca, [a.port, b.port, b.port, a.port, b.port],
                       proto, f'fl-py-{a.label}-{proto}')
    sl.assert_resumed(hits, proto)


@pytest.mark.parametrize('proto', PROTO_IDS)
def test_b_to_a(ca, fleet, proto):
    """The first server a client meets does not matter."""
    a, b = fleet
    ctx = sl.client_context(ca, proto)
    first = sl.py_request(ctx, b.port, f'fl-ba-{a.label}-{proto}-0')
    hit = sl.py_request(ctx, a.port, f'fl-ba-{a.label}-{proto}-1', session=first.session)
    sl.assert_resumed([first, hit], proto)


def test_shared_tickets_across_rotation(ca, docroot, module_path, redis, workdir):
    """TLSSessionTickets shared with TLSSessionTicketKeyRotation 3: the keys
    rotate (the ticket key names change) and a ticket one server just made
    resumes on the other at every moment, right after a rotation too. The
    servers start 1s apart, as fleet members do."""
    cert, key = ca.issue(['a.test', 'www.a.test'], tag='fleet')
    conf = _cache_conf(redis, 'shared', 'TLSSessionTicketKeyRotation 3')
    a = _member(docroot, cert, key, conf, 'rot-a', mpm_conf=harness.ONE_CHILD)
    b = _member(docroot, cert, key, conf, 'rot-b', mpm_conf=harness.ONE_CHILD)
    try:
        sl.sclient(ca, a.port, 'tls13', 'rot-first-a')
        time.sleep(1)
        names = set()
        results = []
        start = time.time()
        i = 0
        while time.time() - start < 10:
            for src, dst in ((a, b), (b, a)):
                f = os.path.join(workdir, f'rot-{i}.sess')
                made = sl.sclient(ca, src.port, 'tls13', f'rot-{i}-made', sess_out=f)
                used = sl.sclient(ca, dst.port, 'tls13', f'rot-{i}-used', sess_in=f)
                sl.assert_all_ok([made, used])
                names.add(sl.session_ticket(f)[:16])
                results.append((round(time.time() - start, 1),
                                'A->B' if src is a else 'B->A', used.reused))
                i += 1
            time.sleep(0.3)
        assert len(names) >= 3, f'the keys did not rotate: {len(names)} key name(s) in 10s'
        failed = [r for r in results if not r[2]]
        assert not failed, (f'{len(failed)} of {len(results)} tickets did not resume on '
                            f'the other server (seconds, direction): {failed}')
    finally:
        a.stop()
        b.stop()


# --------------------------------------------------------------------------
# Tickets without a cache: each server's own keys, or a shared key file

def _keyfile(name, keys):
    d = harness.mkdtemp('tls-ticketkeys-')
    return harness.write_file(os.path.join(d, name), b''.join(keys), 0o600)


def _ticket_server(docroot, cert, key, name, key_file=None):
    conf = 'TLSSessionCache none\nTLSSessionTickets on\n'
    if key_file:
        conf += f'TLSSessionTicketKeyFile {key_file}\n'
    return _member(docroot, cert, key, conf, name)


def _offer(ca, src, dst, proto, tag):
    """Whether a session src made resumes on dst (both requests must work)."""
    ctx = sl.client_context(ca, proto)
    first = sl.py_request(ctx, src.port, f'{tag}-0')
    hit = sl.py_request(ctx, dst.port, f'{tag}-1', session=first.session)
    sl.assert_all_ok([first, hit])
    assert first.session.has_ticket, first
    return hit.reused


def test_own_keys_do_not_resume_elsewhere(ca, docroot, module_path):
    """The control: without a key file or shared tickets, a ticket from one
    server is of no use on another."""
    cert, key = ca.issue(['a.test', 'www.a.test'], tag='fleet')
    a = _ticket_server(docroot, cert, key, 'own-a')
    b = _ticket_server(docroot, cert, key, 'own-b')
    try:
        for proto in PROTO_IDS:
            assert _offer(ca, a, a, proto, f'own-aa-{proto}'), 'no resumption on the same server'
            assert not _offer(ca, a, b, proto, f'own-ab-{proto}'), \
                'a ticket resumed on a server with its own keys'
    finally:
        a.stop()
        b.stop()


def test_key_file_shared_by_two_servers(ca, docroot, module_path, workdir):
    cert, key = ca.issue(['a.test', 'www.a.test'], tag='fleet')
    path = _keyfile('ticket.key', [os.urandom(48)])
    a = _ticket_server(docroot, cert, key, 'kf-a', path)
    b = _ticket_server(docroot, cert, key, 'kf-b', path)
    try:
        for proto in PROTO_IDS:
            hits = sl.sclient_chain(ca, [a.port, b.port, a.port, b.port], proto, workdir,
                                    f'kf-{proto}')
            sl.assert_resumed(hits, proto)
            hits = sl.py_chain(ca, [b.port, a.port, b.port], proto, f'kf-py-{proto}')
            sl.assert_resumed(hits, proto)
    finally:
        a.stop()
        b.stop()


def test_key_file_first_key_current(ca, docroot, module_path):
    """1 to 3 keys, the first one makes tickets, all open them: a server with
    K1,K2 and one with K2,K1 resume each other's tickets; one with K2 alone
    resumes only those made with K2."""
    cert, key = ca.issue(['a.test', 'www.a.test'], tag='fleet')
    k1, k2 = os.urandom(48), os.urandom(48)
    a = _ticket_server(docroot, cert, key, 'kf12', _keyfile('k12.key', [k1, k2]))
    b = _ticket_server(docroot, cert, key, 'kf21', _keyfile('k21.key', [k2, k1]))
    c = _ticket_server(docroot, cert, key, 'kf2', _keyfile('k2.key', [k2]))
    try:
        for proto in PROTO_IDS:
            assert _offer(ca, a, b, proto, f'kfo-ab-{proto}'), 'K1 ticket not opened with K2,K1'
            assert _offer(ca, b, a, proto, f'kfo-ba-{proto}'), 'K2 ticket not opened with K1,K2'
            assert _offer(ca, b, c, proto, f'kfo-bc-{proto}'), 'K2 ticket not opened with K2'
            assert not _offer(ca, a, c, proto, f'kfo-ac-{proto}'), \
                'a K1 ticket resumed on a server without K1'
    finally:
        for s in (a, b, c):
            s.stop()


# --------------------------------------------------------------------------
# The cache goes away

@pytest.mark.parametrize('kind,tickets', [('redis', 'off'), ('memcache', 'off'),
                                          ('redis', 'shared')],
                         ids=['redis', 'memcache', 'redis-shared-tickets'])
def test_cache_down(ca, docroot, module_path, workdir, allow_log, kind, tickets):
    """The cache is killed mid-run: every request still succeeds, promptly,
    with a full handshake; mod_tls warns, at most once a minute per process;
    when the cache is back, sessions resume again."""
    allow_log(CACHE_WARN, PROVIDER_ERRORS)
    peer = Peer(kind).start()
    try:
        cert, key = ca.issue(['a.test', 'www.a.test'], tag='fleet')
        a = _member(docroot, cert, key, _cache_conf(peer, tickets), f'down-{kind}')
        label = f'down-{kind}-{tickets}'
        before = sl.sclient_chain(ca, [a.port] * 3, 'tls12', workdir, f'{label}-before')
        sl.assert_resumed(before, 'tls12')
        ctx = sl.client_context(ca, 'tls12')
        old = sl.py_request(ctx, a.port, f'{label}-old')

        peer.stop(signal.SIGKILL)
        t0 = time.time()
        hits = []
        for i in range(8):
            r = harness.curl(ca, a.port, '/hello.txt', args=['--http1.1'], timeout=20)
            assert (r.rc, r.status) == (0, 200), r
            assert r.info['time_total'] < 3, f"a request took {r.info['time_total']}s"
            hits.append(sl.sclient(ca, a.port, 'tls12', f'{label}-after-{i}',
                                   sess_in=os.path.join(workdir, f'{label}-before-0.sess')))
            hits.append(sl.py_request(ctx, a.port, f'{label}-py-{i}', session=old.session))
            for p in PROTO_IDS:
                hits.append(sl.py_request(sl.client_context(ca, p), a.port,
                                          f'{label}-{p}-{i}'))
        sl.assert_all_ok(hits)
        assert time.time() - t0 < 20
        if tickets == 'off':
            # the sessions were in the cache only
            sl.assert_not_resumed(hits)
            assert _assert_warned_once_per_process(a.log_lines()), \
                f'no warning about the cache in:\n{a.read_log()}'

            # back again: after the providers' retry interval, sessions resume
            peer = Peer(kind, peer.port).start()
            deadline = time.time() + 20
            while True:
                again = sl.sclient_chain(ca, [a.port] * 2, 'tls12', workdir, f'{label}-again')
                sl.assert_all_ok(again)
                if again[1].reused or time.time() > deadline:
                    break
                time.sleep(1)
            assert again[1].reused, 'no resumption 20s after the cache came back'
        a.stop()
    finally:
        peer.stop()


@pytest.mark.parametrize('kind', ['redis', 'memcache'])
def test_large_client_chain_sessions(ca, docroot, module_path, redis, memcached, kind):
    """A session carries the client's certificate chain, which can pass 8 KiB. It is
    stored and resumes like any other, and no cache call is judged as failing (which would
    leave the cache alone for everybody for 10 seconds, with a warning)."""
    peer = redis if kind == 'redis' else memcached
    pki = cc.Authority(cc.dn(CN='big chain CA'), label='bigca')
    names = [f'host-{i:04d}.a-rather-long-subdomain.example.org' for i in range(220)]
    client = pki.issue(cc.dn(CN='alice'), san_dns=names)
    assert len(client.cert.public_bytes(serialization.Encoding.DER)) > 9000
    cert, key = ca.issue(['a.test'])
    a = sl.make_server(docroot, cert, key, _cache_conf(peer, 'off'), f'big-{kind}',
                       mpm='event', start=False)
    a.config = a.config.replace('  TLSOptions +StdEnvVars',
                                f'  TLSOptions +StdEnvVars\n  TLSClientCA {pki.cert_path}\n'
                                '  TLSClientCertificate required')
    harness.write_file(a.conf_path, a.config)
    a.start()
    try:
        for proto in PROTO_IDS:
            ctx = sl.client_context(ca, proto)
            ctx.load_cert_chain(client.chain_path, client.key_path)
            hits, session = [], None
            for i in range(3):
                hit = sl.py_request(ctx, a.port, f'big-{kind}-{proto}-{i}', session=session)
                hits.append(hit)
                session = hit.session
            sl.assert_resumed(hits, proto)
        assert not [line for line in a.log_lines() if re.search(CACHE_WARN, line)
                    or re.search(PROVIDER_ERRORS, line)], a.read_log()
    finally:
        a.stop()


def _made_and_used(ca, src, dst, workdir, tag):
    """A ticket made on src (TLS 1.3, s_client) offered to dst: (made, used, key name)."""
    f = os.path.join(workdir, f'{tag}.sess')
    made = sl.sclient(ca, src.port, 'tls13', f'{tag}-made', sess_out=f)
    used = sl.sclient(ca, dst.port, 'tls13', f'{tag}-used', sess_in=f)
    sl.assert_all_ok([made, used])
    return made, used, sl.session_ticket(f)[:16]


def test_shared_tickets_rotate_while_cache_down(ca, docroot, module_path, workdir, allow_log):
    """TLSSessionTickets shared, TLSSessionTicketKeyRotation 3, and the redis-server
    dies: each server goes on rotating its ticket keys by itself (the key names of
    new tickets keep changing, and a ticket from before the outage stops resuming once
    its key has had its three periods), tickets still resume on the server that made
    them, and the log is not flooded (mod_tls warns once per process, the redis
    provider a few times). When redis is back, the two servers converge on the
    fleet's keys again: a ticket made on one resumes on the other."""
    allow_log(CACHE_WARN, PROVIDER_ERRORS)
    peer = Peer('redis').start()
    cert, key = ca.issue(['a.test', 'www.a.test'], tag='fleet')
    conf = _cache_conf(peer, 'shared', 'TLSSessionTicketKeyRotation 3')
    a = _member(docroot, cert, key, conf, 'out-a')
    b = _member(docroot, cert, key, conf, 'out-b')
    try:
        first = os.path.join(workdir, 'out-first.sess')
        made = sl.sclient(ca, a.port, 'tls13', 'out-first', sess_out=first)
        used = sl.sclient(ca, b.port, 'tls13', 'out-first-b', sess_in=first)
        sl.assert_resumed([made, used], 'tls13')
        before = sl.session_ticket(first)[:16]
        log_a, log_b = a.log_size(), b.log_size()

        peer.stop(signal.SIGKILL)
        t0 = time.time()
        names = {}      # key name -> seconds into the outage it was first seen
        local = []      # (seconds, resumed on the server that made it)
        i = 0
        new = {}
        # 14 s, and longer while fewer than four new keys came (a watchdog slowed down by a
        # loaded machine rotates later): the key from before is then surely retired
        while time.time() - t0 < 14 or (len(new) < 4 and time.time() - t0 < 40):
            _, again, name = _made_and_used(ca, a, a, workdir, f'out-{i}')
            names.setdefault(name, round(time.time() - t0, 1))
            local.append((round(time.time() - t0, 1), again.reused))
            new = {n: t for n, t in names.items() if n != before}
            i += 1
            time.sleep(0.4)
        outage = time.time() - t0
        late = sl.sclient(ca, a.port, 'tls13', 'out-late', sess_in=first)
        sl.assert_all_ok([late])
        assert len(new) >= 3, \
            f'the ticket key stopped rotating while the cache was down: {len(new)} new ' \
            f'key name(s) in {outage:.0f}s at TLSSessionTicketKeyRotation 3 ' \
            f'({sorted(names.values())})'
        # the keys rotate every 3 s or so, a slow watchdog allowed for
        assert sorted(new.values())[2] < 20, \
            f'new keys came at {sorted(new.values())}s into the outage, rotation 3 s'
        not_resumed = [r for r in local if not r[1]]
        assert not not_resumed, f'tickets that did not resume on their own server: {not_resumed}'
        assert not late.reused, \
            f'a ticket from before the outage still resumed after {len(new)} new keys'

        for inst, offset in ((a, log_a), (b, log_b)):
            lines = inst.log_lines(offset)
            _assert_warned_once_per_process(lines)
            theirs = [line for line in lines if re.search(PROVIDER_ERRORS, line)]
            assert len(theirs) <= 20 * max(outage, 14) / 14, \
                f'{len(theirs)} provider errors in a {outage:.0f}s outage:\n' + '\n'.join(theirs)

        peer = Peer('redis', peer.port).start()
        deadline = time.time() + 45
        while True:
            ab = _made_and_used(ca, a, b, workdir, 'out-back-ab')[1].reused
            ba = _made_and_used(ca, b, a, workdir, 'out-back-ba')[1].reused
            if (ab and ba) or time.time() > deadline:
                break
            time.sleep(1)
        assert ab and ba, f'45s after redis came back: A->B resumed {ab}, B->A resumed {ba}'
    finally:
        a.stop()
        b.stop()
        peer.stop()

"""TLS statistics in mod_status: exactly the handshakes, resumptions and failures clients
made show up in server-status?auto, added up over several child processes, kept across a
graceful restart; the HTML page has the section (docs/status.md)."""
import datetime
import re
import socket
import subprocess
import ssl
import time

import pytest

import clientcerts as cc
import harness
import sessionlib as sl


def status_config(tls_port, plain_port, body):
    """A config with mod_status: TLS on tls_port, `body` (server lines, the TLS vhosts), and
    the status page on plain HTTP at plain_port, so that reading it makes no handshake."""
    return f"""
LoadModule status_module {harness.MODULES_DIR}/mod_status.so
Listen 127.0.0.1:{tls_port}
Listen 127.0.0.1:{plain_port}
TLSEngine 127.0.0.1:{tls_port}
{body.strip()}
<VirtualHost 127.0.0.1:{plain_port}>
  ServerName localhost
  <Location /server-status>
    SetHandler server-status
  </Location>
</VirtualHost>
"""


def _body(tls_port, plain_port, certs, log_path):
    a_cert, a_key = certs['a']
    b_cert, b_key = certs['b']
    return status_config(tls_port, plain_port, f"""
{sl.PREFORK_4}
{sl.LOG_FORMAT}
<VirtualHost 127.0.0.1:{tls_port}>
  ServerName a.test
  TLSCertificate {a_cert} {a_key}
  CustomLog "{log_path}" sessfmt
</VirtualHost>
<VirtualHost 127.0.0.1:{tls_port}>
  ServerName b.test
  TLSCertificate {b_cert} {b_key}
  TLSProtocol TLSv1.3+
</VirtualHost>
""")


@pytest.fixture(scope='module')
def server(docroot, module_path, certs):
    tls_port, plain_port = harness.free_port(), harness.free_port()
    log_path = harness.mkdtemp('tls-status-log-') + '/sess.log'
    a = harness.Apache(_body(tls_port, plain_port, certs, log_path), docroot,
                       mpm='prefork', name='status')
    a.port, a.plain_port, a.sess_log = tls_port, plain_port, log_path
    a.start()
    # the harness' check that the port is open, a connection that never sends a byte, is
    # counted (as unused) once a child reads its end: let that settle first
    deadline = time.time() + 30
    while auto(a).get('TLSConnectionsUnused', 0) < 1:
        assert time.time() < deadline, "the harness' port check was never counted as unused"
        time.sleep(0.1)
    yield a
    a.stop()


def auto(server):
    """server-status?auto as {key: value}, the values that are numbers as ints."""
    status, body = harness.http_get(server.plain_port, '/server-status?auto')
    assert status == 200, body[:300]
    values = {}
    for line in body.decode().splitlines():
        key, sep, value = line.partition(': ')
        if key.startswith('TLS'):
            assert sep and key not in values, f'bad or repeated line {line!r}'
        if sep:
            values[key] = int(value) if re.fullmatch(r'\d+', value) else value
    assert 'TLSHandshakesFullTLS13' in values, body.decode()
    return values


def tls_keys(values):
    return {k: v for k, v in values.items() if k.startswith('TLS') and isinstance(v, int)
            and k != 'TLSStatisticsSince' and not k.startswith('TLSTicketKey')
            and not k.startswith('TLSCertificate')}


def delta(before, after):
    """What changed between two readings, only the counters that did."""
    return {k: after[k] - before.get(k, 0) for k in tls_keys(after)
            if after[k] != before.get(k, 0)}


def wait_delta(server, before, want, timeout=5.0):
    """The counters' change since `before` once it is `want` (the server counts a client's
    close when it reads it, a moment after the client is gone), or when time is up."""
    deadline = time.time() + timeout
    while True:
        got = delta(before, auto(server))
        if got == want or time.time() > deadline:
            return got
        time.sleep(0.1)


def py_get(ca, port, tag, proto, session=None, servername='a.test', alpn=None):
    v = sl.PROTOS[proto][1]
    ctx = harness.ssl_context(ca, min_version=v, max_version=v, alpn=alpn)
    hit = sl.py_request(ctx, port, tag, session=session, servername=servername)
    assert hit.status == 200, hit
    return hit


def test_handshakes_and_failures_counted_exactly(server, ca):
    before = auto(server)
    # TLS 1.3: 2 full (one with ALPN http/1.1), 3 resumed
    v = sl.PROTOS['tls13'][1]
    ctx13 = harness.ssl_context(ca, min_version=v, max_version=v)
    hits = [sl.py_request(ctx13, server.port, 'f13-0')]
    for i in range(3):
        hits.append(sl.py_request(ctx13, server.port, f'r13-{i}', session=hits[-1].session))
    hits.append(py_get(ca, server.port, 'f13-1', 'tls13', alpn=['http/1.1']))
    assert [h.reused for h in hits] == [False, True, True, True, False], hits
    # TLS 1.2: 1 full, 1 resumed (s_client, -sess_out/-sess_in)
    workdir = harness.mkdtemp('tls-status-sess-')
    chain = sl.sclient_chain(ca, [server.port] * 2, 'tls12', workdir, 's12')
    sl.assert_resumed(chain, 'tls12')
    want = {
        'TLSHandshakesFullTLS13': 2, 'TLSHandshakesResumedTLS13': 3,
        'TLSHandshakesFullTLS12': 1, 'TLSHandshakesResumedTLS12': 1,
        'TLSALPNNone': 6, 'TLSALPNHTTP11': 1,
        # TLS 1.3 resumptions exchange a key too, TLS 1.2 ones do not
        'TLSGroupX25519': 6, 'TLSGroupNone': 1,
    }
    got = wait_delta(server, before, want, timeout=1.0)
    suites = {k: v for k, v in got.items() if k.startswith('TLSCipher_')}
    assert sum(suites.values()) == 7, got
    assert all(k.startswith('TLSCipher_TLS_') for k in suites), suites
    # the session cache and tickets moved too; what they show is checked elsewhere
    got = {k: v for k, v in got.items()
           if not k.startswith('TLSCipher_') and not k.startswith('TLSSessionCache')}
    assert got == want

    # failures of known kinds
    before = auto(server)
    # a TLS 1.2-only client to the TLS 1.3-only vhost
    with pytest.raises(ssl.SSLError):
        harness.tls_connect(ca, server.port, 'b.test', max_version=ssl.TLSVersion.TLSv1_2)
    # an unknown name, strict SNI (the default)
    with pytest.raises(ssl.SSLError) as e:
        harness.tls_connect(ca, server.port, 'nowhere.test', check_hostname=False)
    assert 'UNRECOGNIZED_NAME' in str(e.value).upper(), e.value
    # a client that sends its hello, reads the server's first flight and closes
    with socket.create_connection(('127.0.0.1', server.port), timeout=10) as s:
        s.sendall(harness.client_hello(ca))
        assert s.recv(5)[:1] == b'\x16', 'no handshake record from the server'
    # a connection that sends nothing (a probe, a browser's unused preconnection): no failure
    socket.create_connection(('127.0.0.1', server.port), timeout=10).close()
    # plain HTTP to the TLS port: answered with a 400, no handshake failure
    with socket.create_connection(('127.0.0.1', server.port), timeout=10) as s:
        s.sendall(b'GET / HTTP/1.1\r\nHost: a.test\r\n\r\n')
        assert s.recv(12).startswith(b'HTTP/1.1 400'), 'no 400 for plain HTTP'
    want = {'TLSHandshakeFailuresIncompatible': 1, 'TLSHandshakeFailuresUnknownSNI': 1,
            'TLSHandshakeFailuresClosed': 1, 'TLSConnectionsUnused': 1,
            'TLSPlainHTTPRefused': 1}
    assert wait_delta(server, before, want) == want


def test_counts_add_up_over_children_and_survive_restarts(server, ca):
    before = auto(server)
    n = 12
    hits = [py_get(ca, server.port, f'kids-{i}', 'tls13') for i in range(n)]
    entries = sl.read_sess_log(server.sess_log, [h.tag for h in hits])
    pids = {entries[h.tag][0] for h in hits}
    assert len(pids) >= 2, f'all {n} connections went to child(ren) {pids}'
    want = {'TLSHandshakesFullTLS13': n}
    got = wait_delta(server, before, want, timeout=1.0)
    assert {k: v for k, v in got.items() if k.startswith('TLSHandshakes')} == want, pids

    counted = auto(server)
    old_children = set(server.children())
    server.signal('graceful')
    deadline = time.time() + 15
    while time.time() < deadline and not (set(server.children()) - old_children):
        time.sleep(0.1)
    assert set(server.children()) - old_children, 'no new generation of children'
    after = auto(server)
    assert after['TLSStatisticsSince'] == counted['TLSStatisticsSince']
    assert delta(counted, after) == {}, 'counters changed over a graceful restart'
    py_get(ca, server.port, 'after-graceful', 'tls13')
    got = wait_delta(server, after, {}, timeout=0)
    assert {k: v for k, v in got.items() if k.startswith('TLSHandshakes')} \
        == {'TLSHandshakesFullTLS13': 1}, got

    # a full restart (SIGHUP) keeps the parent, and the counters with it
    counted = auto(server)
    old_children = set(server.children())
    server.signal('restart')
    deadline = time.time() + 15
    while time.time() < deadline and (not server.children()
                                      or set(server.children()) & old_children):
        time.sleep(0.1)
    assert server.children() and not set(server.children()) & old_children
    status = None
    while time.time() < deadline and status != 200:
        try:
            status, _ = harness.http_get(server.plain_port, '/server-status?auto')
        except OSError:
            time.sleep(0.1)
    after = auto(server)
    assert after['TLSStatisticsSince'] == counted['TLSStatisticsSince']
    assert delta(counted, after) == {}, 'counters changed over a restart'


def test_html_section(server):
    status, body = harness.http_get(server.plain_port, '/server-status')
    assert status == 200
    html = body.decode()
    assert '<h2>TLS (mod_tls)</h2>' in html, html[-2000:]
    assert re.search(r'<td>full, TLS 1\.3</td><td>\d+</td>', html), html[-3000:]
    assert re.search(r'<td>TLS_AES_\w+</td><td>\d+</td>', html), html[-3000:]


# --------------------------------------------------------------------------
# Session cache, ticket keys, client certificates, certificate expiry

@pytest.fixture(scope='module')
def pki():
    root = cc.Authority(cc.dn(O='Example Org', CN='Status Client Root'), 'ec', label='sroot')
    return {'root': root, 'alice': root.issue(cc.dn(CN='alice'), label='salice')}


@pytest.fixture(scope='module')
def cache_server(docroot, module_path, ca, pki):
    """Sessions in the shared cache only (no tickets); a vhost asking for client
    certificates, one requiring them; a certificate that expires in 20 days; a second for
    the handshake."""
    tls_port, plain_port = harness.free_port(), harness.free_port()
    cert, key = ca.issue(['opt.test', 'req.test'])
    soon, soon_key = ca.issue(['soon.test'], days=20)
    a = harness.Apache(status_config(tls_port, plain_port, f"""
TLSSessionCache shmcb
TLSSessionTickets off
RequestReadTimeout handshake=1
# without this Linux's TCP_DEFER_ACCEPT hides a silent client from Apache
AcceptFilter http none
AcceptFilter https none
<VirtualHost 127.0.0.1:{tls_port}>
  ServerName opt.test
  TLSCertificate {cert} {key}
  TLSClientCertificate optional
  TLSClientCA {pki['root'].cert_path}
</VirtualHost>
<VirtualHost 127.0.0.1:{tls_port}>
  ServerName req.test
  TLSCertificate {cert} {key}
  TLSClientCertificate required
  TLSClientCA {pki['root'].cert_path}
</VirtualHost>
<VirtualHost 127.0.0.1:{tls_port}>
  ServerName soon.test
  TLSCertificate {soon} {soon_key}
</VirtualHost>
"""), docroot, name='status-cache',
                       # the certificate that expires within 30 days is warned about
                       expect=[r'MTLS\d+: .*soon\.test.*expires'])
    a.port, a.plain_port, a.soon = tls_port, plain_port, soon
    a.start()
    yield a
    a.stop()


def test_session_cache_counted(cache_server, ca):
    before = auto(cache_server)
    ctx = sl.client_context(ca, 'tls12')
    hits = [sl.py_request(ctx, cache_server.port, 'c0', servername='soon.test')]
    hits.append(sl.py_request(ctx, cache_server.port, 'c1', session=hits[0].session,
                              servername='soon.test'))
    assert [(h.status, h.reused) for h in hits] == [(200, False), (200, True)], hits
    got = wait_delta(cache_server, before, {'TLSSessionCacheStores': 1,
                                            'TLSSessionCacheHits': 1}, timeout=1.0)
    assert {k: v for k, v in got.items() if k.startswith('TLSSessionCache')} \
        == {'TLSSessionCacheStores': 1, 'TLSSessionCacheHits': 1}, got
    assert got['TLSHandshakesFullTLS12'] == 1 and got['TLSHandshakesResumedTLS12'] == 1, got
    assert auto(cache_server)['TLSTicketKeyMode'] == 'off'


def test_client_certificates_counted(cache_server, ca, pki):
    before = auto(cache_server)
    outcomes = [
        cc.py_get(ca, cache_server.port, sni='opt.test', client=pki['alice'], tls='tls13'),
        cc.py_get(ca, cache_server.port, sni='opt.test', tls='tls13'),
        cc.py_get(ca, cache_server.port, sni='req.test', client=pki['alice'], tls='tls12'),
    ]
    assert [(o.ok, o.status) for o in outcomes] == [(True, 200)] * 3, outcomes
    # required, and none sent: TLS 1.2 refuses it in the handshake
    refused = cc.py_get(ca, cache_server.port, sni='req.test', tls='tls12')
    assert not refused.ok, refused
    want = {'TLSClientCertsVerified': 2, 'TLSClientCertsNone': 1,
            'TLSHandshakeFailuresClientCert': 1}
    got = wait_delta(cache_server, before, want)
    assert {k: v for k, v in got.items() if k.startswith('TLSClientCerts')
            or k.startswith('TLSHandshakeFailures')} == want, got


def test_timeouts_counted(cache_server, ca):
    """A client that stalls in its hello is a timeout; one that never sends a byte is no
    failure, whoever closes."""
    before = auto(cache_server)
    for data in (harness.client_hello(ca, 'opt.test')[:30], b''):
        with socket.create_connection(('127.0.0.1', cache_server.port), timeout=15) as s:
            if data:
                s.sendall(data)
            got = harness.read_until_close(s, 15)
            assert got.data == b'', got
    want = {'TLSHandshakeFailuresTimeout': 1, 'TLSConnectionsUnused': 1}
    assert wait_delta(cache_server, before, want) == want


def not_after(cert_path):
    p = subprocess.run(['openssl', 'x509', '-noout', '-enddate', '-dateopt', 'iso_8601',
                        '-in', cert_path], capture_output=True, text=True, check=True)
    when = p.stdout.strip().split('=', 1)[1]
    return int(datetime.datetime.strptime(when, '%Y-%m-%d %H:%M:%SZ')
               .replace(tzinfo=datetime.timezone.utc).timestamp())


def test_certificates_with_expiry(cache_server):
    values = auto(cache_server)
    port = cache_server.port
    certs = {k: v for k, v in values.items() if k.startswith('TLSCertificateNotAfter_')}
    assert set(certs) == {f'TLSCertificateNotAfter_{n}.test_{port}_0'
                          for n in ('opt', 'req', 'soon')}, certs
    assert certs[f'TLSCertificateNotAfter_soon.test_{port}_0'] == not_after(cache_server.soon)
    status, body = harness.http_get(cache_server.plain_port, '/server-status')
    assert status == 200
    row = re.search(r'<tr><td>soon\.test:%d</td><td>([^<]+)</td><td>[^<]+</td>'
                    r'<td>(\d+)</td></tr>' % port, body.decode())
    assert row, body.decode()[-2000:]
    assert row.group(1) == cache_server.soon
    assert int(row.group(2)) in (19, 20), row.group(0)


def test_ticket_key_rotations_counted(apache_factory, certs):
    tls_port, plain_port = harness.free_port(), harness.free_port()
    cert, key = certs['a']
    a = apache_factory(status_config(tls_port, plain_port, f"""
TLSSessionTicketKeyRotation 1
<VirtualHost 127.0.0.1:{tls_port}>
  ServerName a.test
  TLSCertificate {cert} {key}
</VirtualHost>
"""), name='status-tickets')
    a.plain_port = plain_port
    a.start()
    first = auto(a)
    assert first['TLSTicketKeyMode'] == 'on', first
    # rotated by the watchdog task every second; wait for two (not a timing check: only
    # that they are counted, however long they take)
    deadline = time.time() + 30
    while True:
        now = auto(a)
        if now['TLSTicketKeyRotations'] - first['TLSTicketKeyRotations'] >= 2 \
                or time.time() > deadline:
            break
        time.sleep(0.2)
    rotated = now['TLSTicketKeyRotations'] - first['TLSTicketKeyRotations']
    assert rotated >= 2, (first, now)
    assert now['TLSTicketKeyGeneration'] - first['TLSTicketKeyGeneration'] == rotated, now


def test_fleet_keys_without_their_cache(apache_factory, certs, allow_log):
    """TLSSessionTickets shared with the shared cache out of reach (nothing listens where it
    should be): the failed polls are counted, and the server says it rotates alone."""
    # mod_tls warns about the cache once a minute; the redis provider logs its own errors
    allow_log(r'\[(?:tls:)?warn\].*TLSSessionCache', r'\[socache_redis:(?:crit|error|warn)\]')
    tls_port, plain_port, nobody = (harness.free_port() for _ in range(3))
    cert, key = certs['a']
    a = apache_factory(status_config(tls_port, plain_port, f"""
{sl.load_module('socache_redis')}
TLSSessionCache redis:127.0.0.1:{nobody}
TLSSessionTickets shared
TLSSessionTicketKeyRotation 1
<VirtualHost 127.0.0.1:{tls_port}>
  ServerName a.test
  TLSCertificate {cert} {key}
</VirtualHost>
"""), name='status-fleet')
    a.plain_port = plain_port
    a.start()
    deadline = time.time() + 30
    while True:
        now = auto(a)
        if (now['TLSTicketKeysAlone'] == 1 and now['TLSTicketKeyFleetErrors'] >= 2
                and now['TLSTicketKeyRotations'] >= 1) or time.time() > deadline:
            break
        time.sleep(0.2)
    assert now['TLSTicketKeyMode'] == 'shared', now
    assert now['TLSTicketKeysAlone'] == 1, now
    assert now['TLSTicketKeyFleetErrors'] >= 2, now
    assert now['TLSTicketKeyRotations'] >= 1, now
    assert now['TLSTicketKeyFleetUpdates'] == 0, now


def test_event_mpm_h2_counted(apache_factory, ca, certs):
    """The event MPM with two processes: HTTP/2 through ALPN and plain HTTP/1.1 both land
    in the counters, wherever they were served."""
    tls_port, plain_port = harness.free_port(), harness.free_port()
    cert, key = certs['a']
    a = apache_factory(status_config(tls_port, plain_port, f"""
StartServers 2
ServerLimit 2
ThreadsPerChild 4
MinSpareThreads 4
MaxSpareThreads 8
MaxRequestWorkers 8
<VirtualHost 127.0.0.1:{tls_port}>
  ServerName a.test
  Protocols h2 http/1.1
  TLSCertificate {cert} {key}
</VirtualHost>
"""), name='status-event', mpm='event')
    a.plain_port = plain_port
    a.start()
    wait_delta(a, {}, {'TLSConnectionsUnused': 1})   # the harness' port check
    before = auto(a)
    for args in (['--http2'], ['--http2'], ['--http1.1']):
        r = harness.curl(ca, tls_port, '/hello.txt', args=args)
        assert (r.rc, r.status) == (0, 200), r
    assert harness.curl(ca, tls_port, '/hello.txt', args=['--http2']).http_version == '2'
    want = {'TLSALPNH2': 3, 'TLSALPNHTTP11': 1}
    got = wait_delta(a, before, want, timeout=1.0)
    assert {k: v for k, v in got.items() if k.startswith('TLSALPN')} == want, got
    assert got['TLSHandshakesFullTLS13'] == 4, got

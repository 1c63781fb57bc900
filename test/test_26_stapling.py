"""OCSP stapling through mod_md (issue 12): mod_tls offers every certificate it serves to
`ap_ssl_ocsp_prime` and staples what `ap_ssl_ocsp_get_resp` gives; mod_md fetches and renews
the responses (`MDStapling on`, and `MDStapleOthers on` for static TLSCertificate ones).

Everything is real and on 127.0.0.1: a throw-away CA made here, certificates with an AIA OCSP
URL to a responder of ours (ocsp_responder.py, `openssl ocsp` behind a loopback-only HTTP
server), mod_md fetching over HTTP as in production, clients `openssl s_client -status` and
pyOpenSSL (whose callback hands over the stapled bytes; they are parsed and their signature
checked with python3-cryptography).

Each test runs against mod_tls and, for comparison, against mod_ssl with the same mod_md
configuration (no SSLUseStapling: mod_md staples through the same hooks). `-k mod_ssl` runs
the mod_ssl side alone, to check this harness without mod_tls' stapling.

One Apache per engine, one vhost per case, each with its own certificate:
- good.test:   responder answers good, responses valid a day.
- revoke.test: responses valid one minute, MDStaplingRenewWindow 90% makes mod_md fetch anew
  every few seconds; the test revokes it in the responder's index and waits for the staple.
- down.test:   the AIA URL names a port where nothing listens, from the start.
- broken.test: a responder that answers HTTP 500.
- expired.test: a responder whose (signed, good) responses expired an hour ago; mod_md takes
  them as they are and offers them; mod_tls must not staple them (mod_ssl does: that shows
  the expired response does reach the hooks).
"""
import datetime
import os
import re
import select
import socket
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

import harness
from ocsp_responder import Responder

ENGINES = ['mod_tls', 'mod_ssl']
MD_MODULE = f'LoadModule md_module {harness.MODULES_DIR}/mod_md.so'
STAPLE_TIMEOUT = 30     # first staple after start; mod_md fetches at its first watchdog run
REVOKE_TIMEOUT = 45     # revoked staple after the index says so


# --------------------------------------------------------------------------
# PKI: a CA of its own, leaves with an AIA OCSP URL

@pytest.fixture(scope='module')
def pki():
    """The CA (harness.CA, made now) and its key in a file for the responder."""
    ca = harness.CA('mod_tls stapling test CA')
    key_path = harness.write_file(ca.path('ca.key'), ca.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), mode=0o600)
    return ca, key_path


def issue_aia(ca, name, ocsp_url, tag):
    """A server certificate for `name` whose AIA names `ocsp_url` as its OCSP responder.
    Returns (certificate, chain file: leaf then CA, key file)."""
    chain, key_path = ca.issue([name], key_type='ec', days=90, tag=tag, ocsp_url=ocsp_url,
                               with_ca=True)
    with open(chain, 'rb') as f:
        return x509.load_pem_x509_certificate(f.read()), chain, key_path

# --------------------------------------------------------------------------
# Responders

@pytest.fixture(scope='module')
def responders(pki):
    ca, ca_key = pki
    made = {
        'day': Responder(harness.mkdtemp('tls-ocsp-day-'), harness.free_port(),
                         ca.cert_path, ca_key, ndays=1),
        'minute': Responder(harness.mkdtemp('tls-ocsp-min-'), harness.free_port(),
                            ca.cert_path, ca_key, nmin=1),
        'broken': Responder(harness.mkdtemp('tls-ocsp-broken-'), harness.free_port(),
                            ca.cert_path, ca_key),
        'stale': Responder(harness.mkdtemp('tls-ocsp-stale-'), harness.free_port(),
                           ca.cert_path, ca_key),
    }
    made['broken'].set_mode('error500')
    made['stale'].set_mode('expired')
    try:
        for r in made.values():
            r.start()
        yield made
    finally:
        for r in made.values():
            r.stop()


def test_responder_answers(pki, responders):
    """The responder itself: openssl's OCSP client gets 'good', then 'revoked' once the index
    says so, and the broken one no OCSP response at all."""
    ca, _ = pki
    r = responders['day']
    cert, chain, _ = issue_aia(ca, 'self.test', r.url, 'self')
    r.add(cert)
    leaf = harness.write_file(chain + '.leaf', cert.public_bytes(serialization.Encoding.PEM))

    def ask(resp):
        p = subprocess.run(
            ['openssl', 'ocsp', '-issuer', ca.cert_path, '-cert', leaf, '-url', resp.url,
             '-CAfile', ca.cert_path, '-timeout', '10'],
            capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout + p.stderr
    rc, out = ask(r)
    assert rc == 0 and re.search(r': good\b', out) and 'Response verify OK' in out, out
    # a second certificate with the same subject does not break the index
    twin, _, _ = issue_aia(ca, 'self.test', r.url, 'twin')
    r.add(twin)
    rc, out = ask(r)
    assert rc == 0 and re.search(r': good\b', out), out
    r.revoke(cert)
    rc, out = ask(r)
    assert rc == 0 and re.search(r': revoked\b', out), out
    rc, out = ask(responders['broken'])
    assert rc != 0 and ': good' not in out and ': revoked' not in out, out
    assert [m for _, _, m, _ in responders['broken'].requests()] == ['error500']
    responders['stale'].add(cert)
    rc, out = ask(responders['stale'])
    assert re.search(r'^\s*good$', out, re.M) and 'Status times invalid' in out, out


# --------------------------------------------------------------------------
# The servers: one per engine, one vhost per case

class Site:
    """One Apache with mod_md, its port, and per vhost name the served certificate."""

    def __init__(self, engine, apache, port, certs, urls):
        self.engine = engine
        self.apache = apache
        self.port = port
        self.certs = certs      # name -> cryptography certificate
        self.urls = urls        # name -> its certificate's OCSP URL


def vhost(engine, port, name, chain, key):
    if engine == 'mod_ssl':
        tls = f"""  SSLEngine on
  SSLCertificateFile {chain}
  SSLCertificateKeyFile {key}"""
    else:
        tls = f'  TLSCertificate {chain} {key}'
    return f"""
<VirtualHost 127.0.0.1:{port}>
  ServerName {name}
{tls}
</VirtualHost>
"""


@pytest.fixture(scope='module', params=ENGINES)
def site(request, pki, responders, docroot):
    engine = request.param
    if engine == 'mod_tls' and not harness.MODSSL \
            and not os.path.isfile(harness.MODULE_PATH):
        pytest.fail(f'{harness.MODULE_PATH} does not exist: run make first', pytrace=False)
    ca, _ = pki
    tag = engine.replace('mod_', '')
    dead_port = harness.free_port()     # reserved, never listened on
    urls = {'good.test': responders['day'].url, 'revoke.test': responders['minute'].url,
            'down.test': f'http://127.0.0.1:{dead_port}/',
            'broken.test': responders['broken'].url,
            'expired.test': responders['stale'].url}
    certs, hosts = {}, []
    port = harness.free_port()
    for name, url in urls.items():
        cert, chain, key = issue_aia(ca, name, url, tag)
        certs[name] = cert
        hosts.append(vhost(engine, port, name, chain, key))
    responders['day'].add(certs['good.test'])
    responders['minute'].add(certs['revoke.test'])
    responders['broken'].add(certs['broken.test'])
    responders['stale'].add(certs['expired.test'])
    md_dir = os.path.join(harness.mkdtemp(f'tls-p26-md-{tag}-'), 'md')
    if engine == 'mod_ssl':
        engine_line = f'SSLSessionCache "shmcb:{md_dir}-scache(512000)"'
    else:
        engine_line = f'TLSEngine 127.0.0.1:{port}'
    body = f"""
{MD_MODULE}
MDStoreDir "{md_dir}"
MDStapling on
MDStapleOthers on
MDStaplingRenewWindow 90%
Listen 127.0.0.1:{port}
{engine_line}
""" + ''.join(hosts)
    # TLS_TEST_MODSSL=1 turns the mod_tls side into mod_ssl as well (modssl_shim)
    uses_ssl = engine == 'mod_ssl' or harness.MODSSL
    level = 'warn md:debug ' + ('ssl:info' if uses_ssl else 'tls:info')
    a = harness.Apache(body, docroot, tls=engine == 'mod_tls', ssl=engine == 'mod_ssl',
                       log_level=level, name=f'p26-{tag}')
    a.start()
    try:
        yield Site(engine, a, port, certs, urls)
    finally:
        a.stop()


# --------------------------------------------------------------------------
# Clients: what the server stapled

GET = 'GET /index.html HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n'


class Staple:
    """One handshake and request: the stapled response (None when none was sent), parsed,
    and the HTTP status line the request got."""

    def __init__(self, der, status_line, peer_serial):
        self.der = der or None
        self.status_line = status_line
        self.peer_serial = peer_serial
        self.resp = ocsp.load_der_ocsp_response(der) if der else None

    @property
    def cert_status(self):
        if self.resp is None or self.resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            return None
        return self.resp.certificate_status

    def __repr__(self):
        return (f'Staple(status={self.cert_status}, bytes={len(self.der or b"")}, '
                f'request={self.status_line!r})')


def py_staple(ca, port, name, timeout=10):
    """Handshake with pyOpenSSL asking for a staple (status_request), verify the chain, send
    a GET, read the answer until the server closes. A silent server fails the test."""
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.load_verify_locations(ca.cert_path)
    ctx.set_verify(SSL.VERIFY_PEER, lambda conn, cert, errno, depth, ok: bool(ok))
    got = []

    def on_ocsp(conn, data, userdata):
        got.append(bytes(data))
        return True
    ctx.set_ocsp_client_callback(on_ocsp)
    deadline = time.monotonic() + timeout
    sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    sock.setblocking(False)
    conn = SSL.Connection(ctx, sock)

    def run(step, *args):
        """One pyOpenSSL call on the non-blocking socket, waited for until the deadline."""
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f'{name}: no answer within {timeout}s ({step.__name__})'
            try:
                return step(*args)
            except SSL.WantReadError:
                select.select([sock], [], [], left)
            except SSL.WantWriteError:
                select.select([], [sock], [], left)
    try:
        conn.set_tlsext_host_name(name.encode())
        conn.request_ocsp()
        conn.set_connect_state()
        run(conn.do_handshake)
        peer = conn.get_peer_certificate().to_cryptography()
        assert peer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        run(conn.sendall, GET.format(name).encode())
        data = b''
        while True:
            try:
                chunk = run(conn.recv, 65536)
            except (SSL.ZeroReturnError, SSL.SysCallError):
                break
            if not chunk:
                break
            data += chunk
    finally:
        conn.close()
        sock.close()
    assert len(got) == 1, f'OCSP callback ran {len(got)} times'
    status_line = data.split(b'\r\n', 1)[0].decode(errors='replace')
    return Staple(got[0], status_line, peer.serial_number)


def check_response(ca, staple, cert):
    """The staple is an OCSP response for `cert`, signed by the CA, current."""
    resp = staple.resp
    assert resp is not None, 'no staple'
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert resp.serial_number == cert.serial_number == staple.peer_serial
    ca.key.public_key().verify(resp.signature, resp.tbs_response_bytes,
                               ec.ECDSA(resp.signature_hash_algorithm))
    now = datetime.datetime.utcnow()     # cryptography 38: naive UTC times
    assert resp.this_update <= now + datetime.timedelta(minutes=1)
    assert resp.next_update is None or resp.next_update > now, \
        f'stapled response expired at {resp.next_update}'


def wait_staple(ca, port, name, want, timeout):
    """Poll until the staple's certificate status is `want` (an ocsp.OCSPCertStatus); a
    timeout fails with the last one seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = py_staple(ca, port, name)
        if last.cert_status == want:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f'{name}: staple {last} after {timeout}s, wanted {want}')
        time.sleep(0.5)


def s_client_status(ca, port, name, *args):
    """openssl s_client -status with a GET; its output."""
    r = harness.s_client(ca, port, name, args=['-status', *args], input=GET.format(name))
    assert r.handshake_ok, r
    assert r.verify_code == '0', r
    return r.stdout


# --------------------------------------------------------------------------
# Tests

def test_staple_good(pki, site):
    """a. The staple appears: successful, good, for the served certificate, signed by the CA;
    s_client says so too, and the request is answered."""
    ca, _ = pki
    cert = site.certs['good.test']
    staple = wait_staple(ca, site.port, 'good.test', ocsp.OCSPCertStatus.GOOD, STAPLE_TIMEOUT)
    check_response(ca, staple, cert)
    assert staple.status_line == 'HTTP/1.1 200 OK', staple
    out = s_client_status(ca, site.port, 'good.test')
    assert 'OCSP Response Status: successful' in out, out
    assert re.search(r'^\s*Cert Status: good\s*$', out, re.M), out
    assert re.search(rf'^\s*Serial Number: 0*{cert.serial_number:X}\s*$', out, re.M), out
    assert 'HTTP/1.1 200 OK' in out and harness.INDEX_HTML.strip() in out, out
    # TLS 1.2 carries it in a CertificateStatus message of its own
    out = s_client_status(ca, site.port, 'good.test', '-tls1_2')
    assert 'Protocol  : TLSv1.2' in out, out
    assert 'OCSP Response Status: successful' in out, out
    assert re.search(r'^\s*Cert Status: good\s*$', out, re.M), out


def test_staple_turns_revoked(pki, site, responders):
    """b. The responder says revoked; mod_md fetches anew (responses valid a minute, renewed
    within seconds) and the staple says revoked, without a restart."""
    ca, _ = pki
    cert = site.certs['revoke.test']
    pid = site.apache.pid
    good = wait_staple(ca, site.port, 'revoke.test', ocsp.OCSPCertStatus.GOOD,
                       STAPLE_TIMEOUT)
    check_response(ca, good, cert)
    asked = len(responders['minute'].requests())
    responders['minute'].revoke(cert)
    revoked = wait_staple(ca, site.port, 'revoke.test', ocsp.OCSPCertStatus.REVOKED,
                          REVOKE_TIMEOUT)
    check_response(ca, revoked, cert)
    assert revoked.resp.revocation_time is not None
    assert len(responders['minute'].requests()) > asked
    assert revoked.status_line == 'HTTP/1.1 200 OK', revoked
    out = s_client_status(ca, site.port, 'revoke.test')
    assert 'OCSP Response Status: successful' in out, out
    assert re.search(r'^\s*Cert Status: revoked\s*$', out, re.M), out
    # the same server generation all along: no restart did it
    assert site.apache.read_pid() == pid and site.apache.alive()
    assert not harness.lines_matching(site.apache.error_log, r'AH00493|AH00171')
    # the other vhost's staple is untouched
    assert py_staple(ca, site.port, 'good.test').cert_status == ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize('name', ['down.test', 'broken.test'])
def test_no_responder_no_staple(pki, site, responders, name):
    """c. A responder unreachable from the start (nothing listens) or broken (HTTP 500):
    mod_md has tried, the handshake and the request succeed, with no staple."""
    ca, _ = pki
    if name == 'broken.test':
        harness.wait_lines(responders['broken'].log, r' error500 ', timeout=STAPLE_TIMEOUT)
    else:
        # mod_md logs its failed fetch at debug, with the URL
        site.apache.wait_log(rf'contacting {re.escape(site.urls[name])}\].*'
                             r'OCSP status update failed', timeout=STAPLE_TIMEOUT)
    for _ in range(2):
        t0 = time.monotonic()
        staple = py_staple(ca, site.port, name)
        took = time.monotonic() - t0
        assert staple.der is None, staple
        assert staple.status_line == 'HTTP/1.1 200 OK', staple
        assert took < 3, f'handshake and request took {took:.1f}s'
    out = s_client_status(ca, site.port, name)
    assert 'OCSP response: no response sent' in out, out
    assert 'HTTP/1.1 200 OK' in out and harness.INDEX_HTML.strip() in out, out


def test_expired_response(pki, site, responders):
    """e. mod_md holds a response that expired an hour ago (signed, 'good'): mod_tls does not
    staple it, and the request succeeds; mod_ssl staples what mod_md gives, which shows that
    the expired response does reach the hooks."""
    ca, _ = pki
    cert = site.certs['expired.test']
    # mod_md has fetched and stored it (logged at debug, by the certificate's SHA-1)
    certid = cert.fingerprint(hashes.SHA1()).hex()
    site.apache.wait_log(rf'certid {certid}, reading response\] '
                         r'detail\[certificate status is GOOD', timeout=STAPLE_TIMEOUT)
    # nobody asked for expired.test before: this handshake is mod_tls' first look
    staple = py_staple(ca, site.port, 'expired.test')
    assert staple.status_line == 'HTTP/1.1 200 OK', staple
    if site.engine == 'mod_ssl' or harness.MODSSL:
        assert staple.cert_status == ocsp.OCSPCertStatus.GOOD, staple
        assert staple.resp.next_update < datetime.datetime.utcnow(), staple.resp.next_update
        return
    assert staple.der is None, f'expired response stapled: {staple}'
    out = s_client_status(ca, site.port, 'expired.test')
    assert 'OCSP response: no response sent' in out, out
    assert 'HTTP/1.1 200 OK' in out, out


@pytest.mark.parametrize('engine', ENGINES)
def test_certificate_without_issuer(pki, apache_factory, engine):
    """f. A certificate file without its issuer (mod_md needs it to ask the responder): no
    staple, the request succeeds, and nothing is logged at warn or worse. mod_ssl looks for
    the issuer (chain, CA store) and offers nothing to mod_md when it finds none."""
    ca, _ = pki
    tag = engine.replace('mod_', '')
    cert, chain, key = issue_aia(ca, 'leaf.test', 'http://127.0.0.1:1/', f'leaf-{tag}')
    leaf = harness.write_file(chain + '.leaf', cert.public_bytes(serialization.Encoding.PEM))
    md_dir = os.path.join(harness.mkdtemp(f'tls-p26-leaf-{tag}-'), 'md')
    port = harness.free_port()
    if engine == 'mod_ssl':
        engine_line = f'SSLSessionCache "shmcb:{md_dir}-scache(512000)"'
    else:
        engine_line = f'TLSEngine 127.0.0.1:{port}'
    a = apache_factory(f"""
{MD_MODULE}
MDStoreDir "{md_dir}"
MDStapling on
MDStapleOthers on
Listen 127.0.0.1:{port}
{engine_line}
""" + vhost(engine, port, 'leaf.test', leaf, key), tls=engine == 'mod_tls',
        ssl=engine == 'mod_ssl', name=f'p26-leaf-{tag}')
    a.start()
    staple = py_staple(ca, port, 'leaf.test')
    assert staple.der is None and staple.status_line == 'HTTP/1.1 200 OK', staple
    # before mod_tls offered only files with the issuer, mod_md logged [md:error] AH10269
    bad = a.bad_log_lines()
    a.consume_log()
    assert not bad, '\n'.join(bad)

"""Certificates from mod_md (issue 12): ACME with a real CA on loopback (Debian's pebble,
see acme.py), http-01 and tls-alpn-01, the fallback certificate's 503, md-status and
server-status.

One Apache (mod_md, mod_tls) and one pebble for the module, and the tests run in order:

  a. at first no domain has a certificate: mod_md's fallback certificate is served and every
     request gets 503, never content (a static TLSCertificate vhost beside them serves);
  b. mod_md obtains md-http.test's certificate by http-01 (pebble fetches the token from the
     plain http port); after a graceful restart the vhost serves a certificate that chains to
     pebble's root, and requests get 200;
  c. the same for md-alpn.test and md-alpncc.test by tls-alpn-01, which mod_md answers through
     the TLS module (ALPN acme-tls/1), with TLSStrictSNI on in the server and, on
     md-alpncc.test, TLSClientCertificate required;
  d. md-status lists the domains as valid once the certificates are in use, and mod_md's
     part of server-status counts them.
  A client offering acme-tls/1 when no challenge is pending gets nothing.

Names resolve through pebble-challtestsrv (every A query: 127.0.0.1); MDPortMap maps the
public ports 80 and 443 to the test's ports, which pebble validates on.

Harness self-check: with TLS_TEST_MD_MODSSL=1 the vhosts are served by mod_ssl (SSLEngine on,
no SSLCertificateFile in the MDomain vhosts), to see that pebble, mod_md and the checks are
right; all passes there but the acme-tls/1 test without a challenge (mod_ssl serves http
over acme-tls/1).
"""
import json
import os
import re
import signal
import socket
import ssl
import time
import types

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

import acme
import clientcerts as cc
import harness

MODSSL = bool(os.environ.get('TLS_TEST_MD_MODSSL'))

HTTP01 = 'md-http.test'
ALPN = 'md-alpn.test'
ALPN_CC = 'md-alpncc.test'       # tls-alpn-01 with TLSClientCertificate required
STATIC = 'md-static.test'        # a TLSCertificate of its own, beside the managed ones
MANAGED = (HTTP01, ALPN, ALPN_CC)

SECRET = 'md test content: must never be served with the fallback certificate\n'

# How long mod_md may take to get a certificate from pebble (both on loopback, no VA sleeps:
# a few seconds; more means it failed and is retrying)
OBTAIN_TIMEOUT = 30

# The warning at startup for a vhost that has only the fallback certificate so far, per
# vhost, in the parent and again in the children: mod_ssl's AH10085 "... will respond with
# '503 Service Unavailable' for now"; mod_tls' MTLS00023 "... has no certificate yet, only
# another module's stand-in ...".
FALLBACK_WARN = (r'\[ssl:warn\].*AH10085: Init: md-' if MODSSL else
                 r'\[tls:warn\].*MTLS00023: .* has no certificate yet, only another module')

MD_MODULE = f'LoadModule md_module {harness.MODULES_DIR}/mod_md.so'


def tls_lines(extra_tls='', extra_ssl=''):
    """The lines a vhost needs for the TLS module in use, beyond its (absent) certificate."""
    return ('  SSLEngine on\n' + extra_ssl) if MODSSL else extra_tls


def config(pebble, http_port, https_port, docroot, static, client_ca):
    md_store = os.path.join(harness.mkdtemp('tls-mdstore-'), 'md')
    server_tls = (f'SSLStrictSNIVHostCheck on\n'
                  f'SSLSessionCache "shmcb:{docroot}/../scache(512000)"') if MODSSL else \
        f'TLSEngine 127.0.0.1:{https_port}\nTLSStrictSNI on'
    static_tls = (f'  SSLEngine on\n  SSLCertificateFile {static[0]}\n'
                  f'  SSLCertificateKeyFile {static[1]}') if MODSSL else \
        f'  TLSCertificate {static[0]} {static[1]}'
    cc_lines = tls_lines(f'  TLSClientCA {client_ca}\n  TLSClientCertificate required\n',
                         f'  SSLCACertificateFile {client_ca}\n  SSLVerifyClient require\n')
    return f"""
{MD_MODULE}
LoadModule status_module {harness.MODULES_DIR}/mod_status.so
Listen 127.0.0.1:{http_port}
Listen 127.0.0.1:{https_port}
{server_tls}

MDStoreDir "{md_store}"
MDCertificateAuthority {pebble.directory}
MDCACertificateFile "{pebble.trust}"
MDCertificateAgreement accepted
MDContactEmail admin@{HTTP01}
MDPortMap 80:{http_port} 443:{https_port}
MDRenewWindow 10%
MDRetryDelay 1s
MDPrivateKeys secp256r1
MDServerStatus on

<MDomain {HTTP01}>
  MDCAChallenges http-01
</MDomain>
<MDomain {ALPN}>
  MDCAChallenges tls-alpn-01
</MDomain>
<MDomain {ALPN_CC}>
  MDCAChallenges tls-alpn-01
</MDomain>

<Location /md-status>
  SetHandler md-status
</Location>
<Location /server-status>
  SetHandler server-status
</Location>

<VirtualHost 127.0.0.1:{http_port}>
  ServerName {HTTP01}
  ServerAlias {ALPN} {ALPN_CC} localhost
</VirtualHost>

<VirtualHost 127.0.0.1:{https_port}>
  ServerName {STATIC}
{static_tls}
</VirtualHost>
<VirtualHost 127.0.0.1:{https_port}>
  ServerName {HTTP01}
{tls_lines()}
</VirtualHost>
<VirtualHost 127.0.0.1:{https_port}>
  ServerName {ALPN}
  Protocols http/1.1 acme-tls/1
{tls_lines()}
</VirtualHost>
<VirtualHost 127.0.0.1:{https_port}>
  ServerName {ALPN_CC}
  Protocols http/1.1 acme-tls/1
{cc_lines}
</VirtualHost>
"""


@pytest.fixture(scope='module')
def client_pki():
    root = cc.Authority(cc.dn(O='MD Tests', CN='MD Client Root'), 'ec', label='md-clients')
    return {'root': root, 'alice': root.issue(cc.dn(O='MD Tests', CN='alice'))}


@pytest.fixture(scope='module')
def md_docroot():
    d = harness.make_docroot(os.path.join(harness.mkdtemp('tls-md-docroot-'), 'htdocs'))
    harness.write_file(os.path.join(d, 'secret.txt'), SECRET)
    return d


@pytest.fixture(scope='module')
def server(ca, md_docroot, client_pki, module_path):
    http_port, https_port = harness.free_port(), harness.free_port()
    pebble = acme.Pebble(ca, http_port, https_port)
    pebble.start()
    static = ca.issue([STATIC])
    body = config(pebble, http_port, https_port, md_docroot, static,
                  client_pki['root'].cert_path)
    a = harness.Apache(body, md_docroot, name='md', tls=not MODSSL, ssl=MODSSL, cgi=False,
                       log_level=('warn ssl:info md:debug' if MODSSL
                                  else 'warn tls:info md:debug'),
                       )
    a.http_port, a.https_port, a.pebble = http_port, https_port, pebble
    try:
        a.start()
        # the fallback warnings at startup are checked here, not by whichever test comes first
        bad = a.bad_log_lines([FALLBACK_WARN])
        assert not bad, 'unexpected error log lines at startup:\n' + '\n'.join(bad)
        a.consume_log()
        yield a
    finally:
        a.stop()
        pebble.stop()


# --------------------------------------------------------------------------
# helpers

def trust_of(path):
    """An object harness.ssl_context() and clientcerts take as `ca`."""
    return types.SimpleNamespace(cert_path=path)


def served_chain(port, name, alpn=None):
    """The certificate (DER) the server sends for SNI `name`, unverified."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    with socket.create_connection(('127.0.0.1', port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            return x509.load_der_x509_certificate(s.getpeercert(binary_form=True))


def issuer_cn(cert):
    cns = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return cns[0].value if cns else ''


def raw_get(port, name, path, client=None, timeout=10):
    """A GET over TLS without verifying the certificate (the fallback one is self-signed),
    presenting `client` (a clientcerts.Issued) if given: (status, body)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if client:
        ctx.load_cert_chain(client.chain_path, client.key_path)
    raw = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    with ctx.wrap_socket(raw, server_hostname=name) as s:
        s.sendall(f'GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n'.encode())
        got = harness.read_until_close(s, timeout)
    head, _, body = got.data.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 '), got
    return int(head.split()[1]), body


def md_status(server):
    """md-status' JSON, asked over plain http."""
    status, body = harness.http_get(server.http_port, '/md-status', hostname=HTTP01)
    assert status == 200, (status, body[:500])
    return json.loads(body)


def md_entry(status, name):
    for md in status.get('managed-domains', []):
        if name in md.get('domains', []):
            return md
    raise AssertionError(f'{name} not in md-status: {json.dumps(status)[:2000]}')


def obtained(server, names):
    """Those of `names` for which mod_md said (AH10059, at notice) that it has a new
    certificate, which a restart activates."""
    log = server.read_log()
    return {n for n in names if re.search(rf'AH10059:.*\b{re.escape(n)}\b', log)}


def wait_obtained(server, names, timeout=OBTAIN_TIMEOUT):
    """Waits until mod_md has a certificate for each of `names`, or `timeout` passed;
    returns those it has. (The tests of each domain fail for the ones missing, with the
    log lines that tell why: see require_obtained.)"""
    deadline = time.monotonic() + timeout
    got = obtained(server, names)
    while len(got) < len(names) and time.monotonic() < deadline:
        time.sleep(0.2)
        got = obtained(server, names)
    return got


def require_obtained(server, name):
    """Fails the test, with what mod_md, the TLS module and pebble logged about `name`, when
    mod_md got no certificate for it."""
    if name in server.obtained:
        return
    rx = re.compile(rf'\b{re.escape(name)}\b')
    lines = [line[:600] for line in server.log_lines()
             if rx.search(line) and re.search(r'\[(md|tls|ssl):(error|warn|info)\]', line)]
    pebble = [line for line in acme._tail(server.pebble.log, 10 ** 7).splitlines()
              if name in line or 'INVALID' in line]
    pytest.fail(f'mod_md got no certificate for {name} within {OBTAIN_TIMEOUT}s; its lines:\n  '
                + '\n  '.join(lines[:12] + (['...'] if len(lines) > 24 else []) + lines[-12:])
                + '\npebble:\n  ' + '\n  '.join(pebble[-10:]), pytrace=False)


def uncertified_errors(names):
    """Error log patterns of managed domains `names` that have no certificate: mod_md's
    failures, and the fallback warning again at a restart."""
    alt = '|'.join(re.escape(n) for n in names)
    return [rf'\[md:(error|warn)\].*\b({alt})\b',
            rf'\[tls:warn\].*MTLS00023: <VirtualHost> ({alt}) ' if not MODSSL else
            rf'\[ssl:warn\].*AH10085: Init: ({alt}):']


def others_errors(name):
    """uncertified_errors() of the managed domains other than `name`: the tests of those
    domains report them (require_obtained)."""
    return uncertified_errors([n for n in MANAGED if n != name])


def graceful(server, timeout=20):
    offset = server.log_size()
    os.kill(server.pid, signal.SIGUSR1)
    # AH00489: "... configured -- resuming normal operations"
    server.wait_log('AH00489', offset, timeout=timeout)
    return offset


def wait_issuer(server, name, want_pebble, timeout=10):
    """The certificate served for `name`, once its issuer is (want_pebble) or is not pebble's:
    the old generation's children may still take a connection or two after the restart."""
    deadline = time.monotonic() + timeout
    while True:
        cert = served_chain(server.https_port, name)
        if issuer_cn(cert).startswith('Pebble') == want_pebble or time.monotonic() > deadline:
            return cert
        time.sleep(0.2)


def get_verified(server, name, path, client=None):
    """A GET to `name` verifying the server against pebble's root (and the name)."""
    return cc.py_get(trust_of(server.pebble.root_path()), server.https_port, path, sni=name,
                     client=client)


# --------------------------------------------------------------------------
# a. before any certificate: the fallback, and 503 for everything

@pytest.mark.parametrize('name', MANAGED)
def test_a_fallback_certificate_503(server, name, ca, client_pki):
    cert = served_chain(server.https_port, name)
    # mod_md's own stand-in, for the name, issued neither by pebble nor by the harness CA
    assert not issuer_cn(cert).startswith('Pebble'), cert.issuer
    assert cert.issuer != ca.cert.subject, cert.issuer
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert name in san.value.get_values_for_type(x509.DNSName)
    client = client_pki['alice'] if name == ALPN_CC else None
    for path in ('/', '/secret.txt', '/index.html', '/nonexistent'):
        status, body = raw_get(server.https_port, name, path, client)
        assert status == 503, (name, path, status, body[:300])
        assert SECRET.encode() not in body and b'mod_tls test index' not in body, body[:300]


def test_a_static_vhost_serves(server, ca):
    o = cc.py_get(ca, server.https_port, '/secret.txt', sni=STATIC)
    assert (o.ok, o.status, o.body) == (True, 200, SECRET.encode()), o


# --------------------------------------------------------------------------
# b, c. certificates obtained, served after a graceful restart

@pytest.fixture(scope='module')
def renewed(server):
    """The managed domains obtained (waited for: see wait_obtained), then one graceful
    restart."""
    server.obtained = wait_obtained(server, MANAGED)
    graceful(server)
    # checked here, not by the first test: at the restart, the fallback warning again for the
    # domains still without a certificate, and mod_md's lines about those
    missing = [n for n in MANAGED if n not in server.obtained]
    bad = server.bad_log_lines(uncertified_errors(missing) if missing else [])
    assert not bad, 'unexpected error log lines until the restart:\n' + '\n'.join(bad)
    server.consume_log()
    return server


def check_served(server, name, client=None):
    cert = wait_issuer(server, name, True)
    assert issuer_cn(cert).startswith('Pebble Intermediate'), cert.issuer
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == [name]
    o = get_verified(server, name, '/secret.txt', client=client)
    assert (o.ok, o.status, o.body) == (True, 200, SECRET.encode()), o


def challenge_used(server, name):
    """The challenge type mod_md set up for `name` (its debug line), checked to be the only
    one, and that pebble found it valid."""
    log = server.read_log()
    types_ = set(re.findall(rf"set up challenge '([\w-]+)' for {re.escape(name)}$", log, re.M))
    assert len(types_) == 1, (name, types_)
    assert re.search(rf"challenge 'valid' for {re.escape(name)} at ", log), name
    return types_.pop()


def test_b_http01_served(renewed, allow_log):
    allow_log(*others_errors(HTTP01))
    require_obtained(renewed, HTTP01)
    assert challenge_used(renewed, HTTP01) == 'http-01'
    # pebble fetched the token from the plain http port, and got it
    pebble_log = acme._tail(renewed.pebble.log, 10 ** 7)
    assert re.search(rf'validate w/ HTTP: http://{re.escape(HTTP01)}:{renewed.http_port}'
                     r'/\.well-known/acme-challenge/', pebble_log)
    assert re.search(r'"GET /\.well-known/acme-challenge/\S+ HTTP/1\.1" 200 ',
                     renewed.read_access_log())
    check_served(renewed, HTTP01)


def test_c_tls_alpn01_served(renewed, allow_log):
    allow_log(*others_errors(ALPN))
    require_obtained(renewed, ALPN)
    assert challenge_used(renewed, ALPN) == 'tls-alpn-01'
    check_served(renewed, ALPN)


def test_c_tls_alpn01_client_certificate_required(renewed, client_pki, allow_log):
    allow_log(*others_errors(ALPN_CC))
    require_obtained(renewed, ALPN_CC)
    assert challenge_used(renewed, ALPN_CC) == 'tls-alpn-01'
    check_served(renewed, ALPN_CC, client=client_pki['alice'])
    o = get_verified(renewed, ALPN_CC, '/secret.txt')
    assert not o.ok, o


def test_b_static_still_served(renewed, ca, allow_log):
    allow_log(*others_errors(STATIC))
    o = cc.py_get(ca, renewed.https_port, '/secret.txt', sni=STATIC)
    assert (o.ok, o.status, o.body) == (True, 200, SECRET.encode()), o


# --------------------------------------------------------------------------
# d. md-status

@pytest.mark.parametrize('name', [HTTP01, ALPN, ALPN_CC])
def test_d_md_status(renewed, name, allow_log):
    """md-status (mod_md's handler) lists the domain as complete, with the certificate that
    the TLS module serves for it now."""
    allow_log(*others_errors(name))
    require_obtained(renewed, name)
    st = md_status(renewed)
    md = md_entry(st, name)
    assert md.get('state') == 2, md      # MD_S_COMPLETE
    certs = md.get('cert', {})
    served = wait_issuer(renewed, name, True).fingerprint(hashes.SHA256()).hex()
    listed = [c for c in certs.values() if isinstance(c, dict) and 'sha256-fingerprint' in c]
    assert [c['sha256-fingerprint'] for c in listed] == [served], md
    assert listed[0]['issuer-name'].startswith('/CN=Pebble Intermediate'), md
    assert md.get('renewal') is None, md   # no renewal under way, none pending
    # mod_md knows which vhosts offer acme-tls/1 (from Protocols)
    assert md['proto']['acme-tls/1'] == ([] if name == HTTP01 else [name]), md


def test_d_server_status(renewed, allow_log):
    """server-status (mod_status, with mod_md's part in it) lists every managed domain, in
    the machine-readable form (?auto) as mod_md writes it for mod_ssl."""
    allow_log(*others_errors(HTTP01), *others_errors(ALPN), *others_errors(ALPN_CC))
    for name in (HTTP01, ALPN, ALPN_CC):
        require_obtained(renewed, name)
    status, body = harness.http_get(renewed.http_port, '/server-status?auto', hostname=HTTP01)
    assert status == 200, body
    text = body.decode(errors='replace') if isinstance(body, bytes) else body
    assert 'ManagedCertificatesTotal: 3' in text, text[-2000:]
    assert 'ManagedCertificatesOK: 3' in text, text[-2000:]


# --------------------------------------------------------------------------
# acme-tls/1 without a challenge pending: no content on such a connection

@pytest.mark.xfail(MODSSL, strict=True,
                   reason='mod_ssl selects acme-tls/1 without a challenge and serves http on it')
def test_c_acme_tls_unanswered_serves_nothing(renewed, allow_log):
    """A client that offers only ALPN acme-tls/1 for a managed name when mod_md has no
    challenge for it (none pending once the certificates are there) gets nothing: mod_tls
    refuses the handshake (MTLS00039). (mod_ssl completes it with acme-tls/1 and then serves
    the request.)"""
    allow_log(*others_errors(ALPN))
    offset = renewed.log_size()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(['acme-tls/1'])
    raw = socket.create_connection(('127.0.0.1', renewed.https_port), timeout=10)
    try:
        with ctx.wrap_socket(raw, server_hostname=ALPN) as s:
            alpn = s.selected_alpn_protocol()
            s.sendall(f'GET /secret.txt HTTP/1.1\r\nHost: {ALPN}\r\n'
                      'Connection: close\r\n\r\n'.encode())
            got = harness.read_until_close(s, 10)
    except (ssl.SSLError, ConnectionError) as e:
        alpn, got = None, e
    finally:
        raw.close()
    assert isinstance(got, (ssl.SSLError, ConnectionError)), \
        f'handshake done (ALPN {alpn!r}), then {got}'
    renewed.wait_log(rf'MTLS00039: .*tls-alpn-01 challenge for {re.escape(ALPN)} .*not answered: '
                     'no module has a challenge certificate', offset)

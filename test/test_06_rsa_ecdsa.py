"""An RSA and an ECDSA certificate on one vhost: the client's capabilities
decide which one is served."""
import re

import pytest

import harness


@pytest.fixture(scope='module')
def server(docroot, module_path, ca):
    rsa_cert, rsa_key = ca.issue(['a.test'], key_type='rsa')
    ec_cert, ec_key = ca.issue(['a.test'], key_type='ec')
    p1, p2 = harness.free_port(), harness.free_port()
    a = harness.Apache(f"""
Listen 127.0.0.1:{p1}
Listen 127.0.0.1:{p2}
TLSEngine 127.0.0.1:{p1}
TLSEngine 127.0.0.1:{p2}
<VirtualHost 127.0.0.1:{p1}>
  ServerName a.test
  TLSCertificate {rsa_cert} {rsa_key}
  TLSCertificate {ec_cert} {ec_key}
</VirtualHost>
<VirtualHost 127.0.0.1:{p2}>
  ServerName a.test
  TLSCertificate {ec_cert} {ec_key}
  TLSCertificate {rsa_cert} {rsa_key}
</VirtualHost>
""", docroot, name='rsa-ecdsa')
    a.ports = {'rsa_first': p1, 'ec_first': p2}
    a.pems = {'rsa': harness.pem_of(rsa_cert), 'ec': harness.pem_of(ec_cert)}
    a.start()
    yield a
    a.stop()


ORDERS = ['rsa_first', 'ec_first']


def _same_cert(pem_a, pem_b):
    return pem_a.strip() == pem_b.strip()


@pytest.mark.parametrize('order', ORDERS)
@pytest.mark.parametrize('args,kind', [
    (['-tls1_3', '-sigalgs', 'ecdsa_secp256r1_sha256'], 'ec'),
    (['-tls1_3', '-sigalgs', 'rsa_pss_rsae_sha256'], 'rsa'),
    (['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'], 'ec'),
    (['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'], 'rsa'),
], ids=['tls13-ecdsa', 'tls13-rsa', 'tls12-ecdsa', 'tls12-rsa'])
def test_cert_by_client_capability(ca, server, order, args, kind):
    r = harness.s_client(ca, server.ports[order], 'a.test', args)
    assert r.handshake_ok, r
    assert r.pubkey_bits == ('256' if kind == 'ec' else '2048'), r
    expected_sig = ('ECDSA',) if kind == 'ec' else ('RSA-PSS', 'RSA')
    assert r.peer_sig_type in expected_sig, r
    assert _same_cert(r.cert_pem, server.pems[kind])
    assert r.names[1] == ['a.test']


@pytest.mark.parametrize('order', ORDERS)
def test_both_usable_for_requests(ca, server, order):
    port = server.ports[order]
    for ciphers in ('ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256'):
        r = harness.curl(ca, port, '/hello.txt',
                         args=['--http1.1', '--tls-max', '1.2', '--ciphers', ciphers])
        assert (r.rc, r.status, r.body) == (0, 200, b'Hello, TLS!\n'), r


@pytest.fixture(scope='module')
def ec_only(docroot, module_path, ca):
    ec_cert, ec_key = ca.issue(['a.test'], key_type='ec')
    port = harness.free_port()
    a = harness.Apache(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {ec_cert} {ec_key}
</VirtualHost>
""", docroot, name='ec-only')
    a.port = port
    a.start()
    yield a
    a.stop()


@pytest.mark.parametrize('args', [
    ['-tls1_3', '-sigalgs', 'ecdsa_secp384r1_sha384'],
    ['-tls1_2', '-sigalgs', 'ECDSA+SHA1'],
    ['-tls1_2', '-sigalgs', 'ECDSA+SHA224'],
    ['-tls1_2', '-cipher', 'AES128-SHA'],
    ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'],
    ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256', '-sigalgs', 'ECDSA+SHA384'],
], ids=['tls13-p384-only', 'tls12-sha1-only', 'tls12-sha224-only', 'tls12-rsa-kx-only',
        'tls12-rsa-suite-for-ecdsa-cert', 'tls12-p384-scheme-for-p256-key'])
def test_nothing_in_common_is_handshake_failure(ca, ec_only, args):
    """A client the certificate cannot serve gets handshake_failure (40), as from rustls
    alone and from mod_ssl, not access_denied (49): it is not a matter of permission."""
    offset = ec_only.log_size()
    r = harness.s_client(ca, ec_only.port, 'a.test', args + ['-cipher', 'ALL:@SECLEVEL=0']
                         if '-cipher' not in args else args)
    # (in TLS 1.3 the ServerHello comes before the failure, so s_client names a cipher)
    assert r.rc != 0, r
    assert re.search(r'alert handshake failure|alert number 40\b', r.stderr), r.stderr
    assert 'access denied' not in r.stderr, r.stderr
    # the client's shortcoming, so info, never error (the autouse check fails on error lines)
    lines = ec_only.wait_log(r'\[tls:info\].*peer has no TLS version or cipher in common',
                             offset)
    assert len(lines) == 1, lines

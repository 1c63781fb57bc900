"""Configuration errors must fail `apache2 -t` and startup with a message that
names the problem and the config location; some problems only warn."""
import datetime
import os
import re

import pytest

import harness


def _body(port, vhost_cert_line, extra='', engine=None):
    engine = engine or f'TLSEngine 127.0.0.1:{port}'
    return f"""
Listen 127.0.0.1:{port}
{engine}
{extra}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  {vhost_cert_line}
</VirtualHost>
"""


def assert_fails(apache, marker, patterns):
    """`apache2 -t` and a start both fail; each output matches every regex in
    `patterns` (case-insensitive) and names httpd.conf at the line of `marker`
    (a string or line number, or a list of acceptable ones)."""
    markers = [marker] if isinstance(marker, (str, int)) else marker
    lines = [m if isinstance(m, int) else apache.line_of(m) for m in markers]
    locs = [harness.conf_location_re(apache.conf_path, n) for n in lines]
    rc, out = apache.configtest()
    assert rc != 0, f'configtest passed unexpectedly:\n{out}'
    _check_output('apache2 -t', out, patterns, locs)
    rc, out = apache.start(check=False)
    assert rc != 0, f'start succeeded unexpectedly:\n{out}'
    assert not apache.alive()
    _check_output('apache2 -k start', out, patterns, locs)
    apache.consume_log()


def _check_output(what, output, patterns, locs):
    for rx in patterns:
        assert re.search(rx, output, re.I), \
            f'{what}: no match for {rx!r} in output:\n{output}'
    assert any(loc.search(output) for loc in locs), \
        f'{what}: config file/line ({[loc.pattern for loc in locs]}) not named in:\n{output}'


@pytest.fixture
def port():
    return harness.free_port()


def test_missing_cert_file(apache_factory, ca, port):
    _, key = ca.issue(['a.test'])
    missing = ca.path('no-such-cert.pem')
    a = apache_factory(_body(port, f'TLSCertificate {missing} {key}'))
    assert_fails(a, 'TLSCertificate', [re.escape(missing)])


def test_missing_key_file(apache_factory, ca, port):
    cert, _ = ca.issue(['a.test'])
    missing = ca.path('no-such-key.pem')
    a = apache_factory(_body(port, f'TLSCertificate {cert} {missing}'))
    assert_fails(a, 'TLSCertificate', [re.escape(missing)])


def test_unreadable_cert_file(apache_factory, ca, port):
    # we run as root, so permissions do not stop reading: use a directory
    _, key = ca.issue(['a.test'])
    d = ca.path('a-directory.pem')
    os.makedirs(d, exist_ok=True)
    a = apache_factory(_body(port, f'TLSCertificate {d} {key}'))
    assert_fails(a, 'TLSCertificate', [re.escape(d)])


def test_garbled_cert_file(apache_factory, ca, port):
    _, key = ca.issue(['a.test'])
    bad = harness.write_file(ca.path('garbled.pem'),
                             '-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n'
                             '-----END CERTIFICATE-----\n')
    a = apache_factory(_body(port, f'TLSCertificate {bad} {key}'))
    assert_fails(a, 'TLSCertificate', [re.escape(bad)])


def test_file_without_certificate(apache_factory, ca, port):
    _, key = ca.issue(['a.test'])
    a = apache_factory(_body(port, f'TLSCertificate {key} {key}'))
    assert_fails(a, 'TLSCertificate', [re.escape(key), r'certificate'])


def test_cert_file_without_key(apache_factory, ca, port):
    cert, _ = ca.issue(['a.test'])
    a = apache_factory(_body(port, f'TLSCertificate {cert}'))
    assert_fails(a, 'TLSCertificate', [re.escape(cert), r'key'])


def test_key_file_without_key(apache_factory, ca, port):
    cert, _ = ca.issue(['a.test'])
    other, _ = ca.issue(['b.test'])
    a = apache_factory(_body(port, f'TLSCertificate {cert} {other}'))
    assert_fails(a, 'TLSCertificate', [re.escape(other), r'key'])


def test_key_does_not_match(apache_factory, ca, port):
    cert, _ = ca.issue(['a.test'])
    _, other_key = ca.issue(['b.test'])
    a = apache_factory(_body(port, f'TLSCertificate {cert} {other_key}'))
    assert_fails(a, 'TLSCertificate', [r'match'])


def test_key_type_does_not_match(apache_factory, ca, port):
    cert, _ = ca.issue(['a.test'])
    _, ec_key = ca.issue(['a.test'], key_type='ec')
    a = apache_factory(_body(port, f'TLSCertificate {cert} {ec_key}'))
    assert_fails(a, 'TLSCertificate', [r'match'])


def test_encrypted_key_pkcs8(apache_factory, ca, port):
    cert, key = ca.issue(['a.test'], passphrase='secret')
    a = apache_factory(_body(port, f'TLSCertificate {cert} {key}'))
    assert_fails(a, 'TLSCertificate', [re.escape(key), r'encrypt|pass'])


def test_encrypted_key_traditional(apache_factory, ca, port):
    cert, key = ca.issue(['a.test'])
    enc = ca.path('traditional-aes256.key')
    harness.subprocess.run(['openssl', 'rsa', '-in', key, '-out', enc, '-aes256',
                            '-traditional', '-passout', 'pass:secret'],
                           check=True, capture_output=True)
    with open(enc) as f:
        assert 'Proc-Type: 4,ENCRYPTED' in f.read()
    a = apache_factory(_body(port, f'TLSCertificate {cert} {enc}'))
    assert_fails(a, 'TLSCertificate', [re.escape(enc), r'encrypt|pass'])


def _body_with_nocert_vhost(certs, port):
    """A vhost with a certificate, and nocert.test without one, on the same TLS address."""
    cert, key = certs['a']
    return _body(port, f'TLSCertificate {cert} {key}') + f"""
<VirtualHost 127.0.0.1:{port}>
  ServerName nocert.test
</VirtualHost>
"""


def test_vhost_without_certificate(apache_factory, certs, port):
    a = apache_factory(_body_with_nocert_vhost(certs, port))
    sn_line = a.line_of('ServerName nocert.test')
    assert_fails(a, [sn_line, sn_line - 1],
                 [r'nocert\.test', r'certificate'])


def test_vhost_without_certificate_mod_md_loaded(apache_factory, certs, port):
    """With mod_md loaded, a vhost without a certificate passes `apache2 -t` (mod_md may give
    it one when the server starts); the start fails if mod_md gives none, and the message
    names the vhost, its TLS address and the two ways out."""
    a = apache_factory(f'LoadModule md_module {harness.MODULES_DIR}/mod_md.so\n'
                       + _body_with_nocert_vhost(certs, port))
    rc, out = a.configtest()
    assert rc == 0, out
    rc, out = a.start(check=False)
    assert rc != 0 and not a.alive(), out
    log = a.read_log()
    assert re.search(rf'MTLS00021: <VirtualHost> nocert\.test \(\S+:\d+\) serves the TLS '
                     rf'address 127\.0\.0\.1:{port} but has no certificate: add a '
                     rf'TLSCertificate line .* or an MDomain for its names', log), log
    a.consume_log()


def test_base_server_tls_without_certificate(apache_factory, port):
    # no vhost at all: the base server answers on the TLS address
    body = f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
"""
    a = apache_factory(body)
    rc, out = a.configtest()
    assert rc != 0, out
    assert re.search(r'certificate', out, re.I), out
    rc, out = a.start(check=False)
    assert rc != 0, out
    a.consume_log()


@pytest.mark.parametrize('directive', ['TLSCiphersPrefer', 'TLSCiphersSuppress'])
def test_unknown_cipher(apache_factory, certs, port, directive):
    cert, key = certs['a']
    a = apache_factory(_body(port, f'TLSCertificate {cert} {key}\n  '
                                   f'{directive} TLS_AES_256_GCM_SHA384:NO-SUCH-CIPHER'))
    assert_fails(a, directive, [r'NO-SUCH-CIPHER'])


@pytest.mark.parametrize('value', ['TLSv9.9+', 'bogus'])
def test_unknown_protocol(apache_factory, certs, port, value):
    cert, key = certs['a']
    a = apache_factory(_body(port, f'TLSCertificate {cert} {key}\n  TLSProtocol {value}'))
    assert_fails(a, 'TLSProtocol', [re.escape(value)])


def test_unknown_option(apache_factory, certs, port):
    cert, key = certs['a']
    a = apache_factory(_body(port, f'TLSCertificate {cert} {key}\n  TLSOptions +NoSuchOption'))
    assert_fails(a, 'TLSOptions', [r'NoSuchOption'])


def test_good_config_passes(apache_factory, certs, port):
    cert, key = certs['a']
    a = apache_factory(_body(port, f'TLSCertificate {cert} {key}'))
    rc, out = a.configtest()
    assert rc == 0, out
    assert 'Syntax OK' in out


# -- problems that only warn

def _warn_lines(apache, since=0):
    return [line for line in apache.log_lines(since) if re.search(r'\[(\w+:)?warn\]', line)]


def _start_and_warn(apache, patterns):
    rc, out = apache.configtest()
    assert rc == 0, out
    apache.start()
    assert apache.alive()
    lines = _warn_lines(apache)
    hits = [line for line in lines if all(re.search(p, line, re.I) for p in patterns)]
    assert len(hits) == 1, f'not one [warn] line matching {patterns} in:\n{apache.read_log()}'
    return hits


def test_expired_certificate_warns(apache_factory, ca, port, allow_log):
    cert, key = ca.issue(['a.test'], expired=True)
    yesterday = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    allow_log(r'expire')
    a = apache_factory(_body(port, f'TLSCertificate {cert} {key}'))
    hits = _start_and_warn(a, [r'expire', r'a\.test|' + re.escape(os.path.basename(cert))])
    # the warning names the date of expiry
    assert any(str(yesterday.year) in line for line in hits), hits
    r = harness.s_client(ca, port, 'a.test', verify=False)
    assert r.handshake_ok, r


def test_expiring_soon_warns(apache_factory, ca, port, allow_log):
    cert, key = ca.issue(['a.test'], days=10)
    allow_log(r'expire')
    a = apache_factory(_body(port, f'TLSCertificate {cert} {key}'))
    _start_and_warn(a, [r'expire', r'a\.test|' + re.escape(os.path.basename(cert))])
    r = harness.s_client(ca, port, 'a.test')
    assert r.handshake_ok, r


def test_valid_certificate_does_not_warn(apache_factory, ca, port):
    cert, key = ca.issue(['a.test'], days=90)
    a = apache_factory(_body(port, f'TLSCertificate {cert} {key}'))
    a.start()
    assert not _warn_lines(a), a.read_log()


def test_names_not_covered_warns(apache_factory, ca, port, allow_log):
    cert, key = ca.issue(['other.test'])
    allow_log(r'a\.test')
    a = apache_factory(_body(port, f'TLSCertificate {cert} {key}'))
    _start_and_warn(a, [r'a\.test', r'cover|ServerName|match'])


def test_server_alias_covered_does_not_warn(apache_factory, ca, port):
    # the cert covers only the alias: that is enough
    cert, key = ca.issue(['www.a.test'])
    body = _body(port, f'ServerAlias www.a.test\n  TLSCertificate {cert} {key}')
    a = apache_factory(body)
    a.start()
    assert not _warn_lines(a), a.read_log()


def test_engine_without_listen_warns(apache_factory, ca, certs, port, allow_log):
    """Debian's ports.conf opens 443 only under <IfModule ssl_module>: after `a2dismod ssl`
    a TLSEngine may name an address nothing listens on. Apache still starts, and says once
    which line serves nothing."""
    cert, key = certs['a']
    other = harness.free_port()
    allow_log(rf'TLSEngine 127\.0\.0\.1:{other}')
    a = apache_factory(_body(port, f'TLSCertificate {cert} {key}',
                             extra=f'TLSEngine 127.0.0.1:{other}') + f"""
<VirtualHost 127.0.0.1:{other}>
  ServerName other.test
</VirtualHost>
""")
    line = a.line_of(f'TLSEngine 127.0.0.1:{other}')
    hits = _start_and_warn(a, [rf'httpd\.conf:{line}\b', rf'127\.0\.0\.1:{other}',
                               r'no Listen', r'nothing is served'])
    assert len(hits) == 1, a.read_log()
    r = harness.curl(ca, port, '/hello.txt')
    assert (r.rc, r.status, r.body) == (0, 200, b'Hello, TLS!\n'), r

"""Cipher names written for the earlier mod_tls (TLS13_*, `TLSCiphersPrefer default`,
`TLSCiphersSuppress none`), and registered suites rustls does not offer: those warn,
while names in no registry stop the server."""
import re

import pytest

import harness
from test_02_conf_errors import assert_fails

AES128 = 'TLS_AES_128_GCM_SHA256'
AES256 = 'TLS_AES_256_GCM_SHA384'
CHACHA = 'TLS_CHACHA20_POLY1305_SHA256'
# rustls' own order is AES256, AES128, CHACHA: with the server's order deciding, a client
# offering all three gets AES256 unless a preference says otherwise
ALL13 = f'{CHACHA}:{AES128}:{AES256}'
GET = b'GET /hello.txt HTTP/1.0\r\nHost: a.test\r\n\r\n'


def _vhosts_body(cert, key, vhosts, main=''):
    ports = {name: harness.free_port() for name in vhosts}
    body = [main]
    for name, conf in vhosts.items():
        p = ports[name]
        body.append(f"""
Listen 127.0.0.1:{p}
TLSEngine 127.0.0.1:{p}
<VirtualHost 127.0.0.1:{p}>
  ServerName a.test
  TLSCertificate {cert} {key}
  Header always set X-Cipher "%{{SSL_CIPHER}}s"
  {conf}
</VirtualHost>""")
    return '\n'.join(body), ports


@pytest.fixture(scope='module')
def names(docroot, module_path, certs):
    """One vhost per port, the cipher settings in the vhost."""
    cert, key = certs['a']
    body, ports = _vhosts_body(cert, key, {
        'prefer13': 'TLSCiphersPrefer TLS13_CHACHA20_POLY1305_SHA256\n'
                    '  TLSHonorClientOrder off',
        'suppress13': 'TLSCiphersSuppress TLS13_AES_128_GCM_SHA256',
        'keywords': 'TLSCiphersPrefer default\n  TLSCiphersSuppress none\n'
                    '  TLSHonorClientOrder off',
        'unset': 'TLSHonorClientOrder off',
    })
    a = harness.Apache(body, docroot, name='ciphernames')
    a.ports = ports
    a.start()
    yield a
    a.stop()


@pytest.fixture(scope='module')
def override(docroot, module_path, certs):
    """The main server prefers CHACHA and suppresses AES128; vhosts inherit or undo that."""
    cert, key = certs['a']
    body, ports = _vhosts_body(cert, key, {
        'inherit': '',
        'reset': 'TLSCiphersPrefer default\n  TLSCiphersSuppress none',
        'reset_other_words': 'TLSCiphersPrefer none\n  TLSCiphersSuppress default',
        'reset_prefer': 'TLSCiphersPrefer default',
    }, main='TLSHonorClientOrder off\n'
            'TLSCiphersPrefer TLS13_CHACHA20_POLY1305_SHA256\n'
            'TLSCiphersSuppress TLS13_AES_128_GCM_SHA256')
    a = harness.Apache(body, docroot, name='cipheroverride')
    a.ports = ports
    a.start()
    yield a
    a.stop()


def tls13(ca, port, suites, request=False):
    return harness.s_client(ca, port, 'a.test', ['-tls1_3', '-ciphersuites', suites],
                            input=GET if request else b'')


def test_tls13_name_prefers(ca, names):
    r = tls13(ca, names.ports['prefer13'], ALL13, request=True)
    assert (r.protocol, r.cipher) == ('TLSv1.3', CHACHA), r
    # SSL_CIPHER names the suite as IANA does, not as it was configured
    assert re.search(rf'^X-Cipher: {CHACHA}\r?$', r.stdout, re.M), r.stdout[-2000:]


def test_tls13_name_suppresses(ca, names):
    port = names.ports['suppress13']
    r = tls13(ca, port, AES128)
    assert not r.handshake_ok, r
    for suite in (AES256, CHACHA):
        r = tls13(ca, port, suite)
        assert (r.protocol, r.cipher) == ('TLSv1.3', suite), r


@pytest.mark.parametrize('vhost', ['keywords', 'unset'])
def test_keywords_mean_unset(ca, names, vhost):
    port = names.ports[vhost]
    r = tls13(ca, port, ALL13)
    assert (r.protocol, r.cipher) == ('TLSv1.3', AES256), r
    for suite in (AES128, AES256, CHACHA):
        r = tls13(ca, port, suite)
        assert (r.protocol, r.cipher) == ('TLSv1.3', suite), r


def test_vhost_inherits_main_ciphers(ca, override):
    port = override.ports['inherit']
    r = tls13(ca, port, ALL13)
    assert r.cipher == CHACHA, r
    r = tls13(ca, port, AES128)
    assert not r.handshake_ok, r


@pytest.mark.parametrize('vhost', ['reset', 'reset_other_words'])
def test_vhost_keywords_override_main(ca, override, vhost):
    port = override.ports[vhost]
    r = tls13(ca, port, ALL13)
    assert r.cipher == AES256, r
    r = tls13(ca, port, AES128)
    assert (r.protocol, r.cipher) == ('TLSv1.3', AES128), r


def test_vhost_default_prefer_keeps_main_suppress(ca, override):
    port = override.ports['reset_prefer']
    r = tls13(ca, port, ALL13)
    assert r.cipher == AES256, r
    r = tls13(ca, port, AES128)
    assert not r.handshake_ok, r


# -- registered suites rustls does not offer: a warning, not a failed start

UNOFFERED = {
    # as written: the IANA name the warning also gives
    'TLS_NULL_WITH_NULL_NULL': None,
    'TLS_RSA_WITH_NULL_SHA': None,
    'NULL-MD5': 'TLS_RSA_WITH_NULL_MD5',
    'TLS_RSA_EXPORT_WITH_RC4_40_MD5': None,
    'TLS_KRB5_WITH_IDEA_CBC_SHA': None,
    'TLS_GOSTR341112_256_WITH_MAGMA_MGM_S': None,
    'TLS_EMPTY_RENEGOTIATION_INFO_SCSV': None,
    'TLS_FALLBACK_SCSV': None,
    'TLS13_AES_128_CCM_SHA256': 'TLS_AES_128_CCM_SHA256',
    'TLS_CIPHER_0x0002': 'TLS_RSA_WITH_NULL_SHA',
}


def _warned(apache, marker):
    line = apache.line_of(marker)
    loc = harness.conf_location_re(apache.conf_path, line)
    return [w for w in apache.log_lines() if re.search(r'\[(\w+:)?warn\]', w) and loc.search(w)]


def test_unoffered_suites_warn_once(apache_factory, ca, certs, allow_log):
    cert, key = certs['a']
    port = harness.free_port()
    allow_log(r'TLSCiphersSuppress: .* is never offered by mod_tls')
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
  TLSCiphersSuppress TLS_NULL_WITH_NULL_NULL TLS_RSA_WITH_NULL_SHA
  TLSCiphersSuppress {' '.join(n for n in UNOFFERED if n not in
                               ('TLS_NULL_WITH_NULL_NULL', 'TLS_RSA_WITH_NULL_SHA'))}
</VirtualHost>
""")
    rc, out = a.configtest()
    assert rc == 0, out
    a.start()
    first = _warned(a, 'TLSCiphersSuppress TLS_NULL_WITH_NULL_NULL')
    rest = _warned(a, 'TLSCiphersSuppress NULL-MD5')
    assert len(first) == 2, a.read_log()
    assert len(rest) == len(UNOFFERED) - 2, a.read_log()
    for name, iana in UNOFFERED.items():
        shown = f'{name} ({iana})' if iana else name
        hits = [w for w in first + rest
                if re.search(rf'TLSCiphersSuppress: {re.escape(shown)} is never offered by '
                             r'mod_tls \(rustls does not implement it\), so there is nothing '
                             r'to suppress; the name is harmless', w)]
        assert len(hits) == 1, (name, first + rest)
    # nothing rustls offers was suppressed
    for suite in (AES128, AES256, CHACHA):
        r = tls13(ca, port, suite)
        assert r.cipher == suite, r


def test_unoffered_preferred_suite_warns(apache_factory, ca, certs, allow_log):
    cert, key = certs['a']
    port = harness.free_port()
    allow_log(r'TLSCiphersPrefer: .* is never offered by mod_tls')
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
  TLSHonorClientOrder off
  TLSCiphersPrefer TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256 TLS13_CHACHA20_POLY1305_SHA256
</VirtualHost>
""")
    a.start()
    hits = _warned(a, 'TLSCiphersPrefer')
    assert len(hits) == 1, a.read_log()
    assert re.search(r'TLSCiphersPrefer: TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256 is never '
                     r'offered by mod_tls .*cannot be preferred', hits[0]), hits
    # the offered name on the same line still counts
    assert tls13(ca, port, ALL13).cipher == CHACHA


# -- names in no registry, and the keywords beside suite names: errors

def _one_vhost(port, cert, key, lines):
    return f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
  {lines}
</VirtualHost>
"""


@pytest.mark.parametrize('name', ['TLS_FOO_WITH_BAR', 'TLS13_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
                                  'TLS13_FOO', 'TLS_CIPHER_0x10000'])
@pytest.mark.parametrize('directive', ['TLSCiphersPrefer', 'TLSCiphersSuppress'])
def test_unknown_name_fails(apache_factory, certs, directive, name):
    cert, key = certs['a']
    port = harness.free_port()
    a = apache_factory(_one_vhost(port, cert, key, f'{directive} {AES256} {name}'))
    assert_fails(a, f'{directive} {AES256}',
                 [rf'{directive}: unknown cipher \'{re.escape(name)}\': use IANA names'])


@pytest.mark.parametrize('directive,word,means', [
    ('TLSCiphersPrefer', 'default', 'no preference'),
    ('TLSCiphersSuppress', 'none', 'nothing suppressed'),
])
@pytest.mark.parametrize('lines', [
    '{d} {w} TLS_AES_128_GCM_SHA256',
    '{d} TLS_AES_128_GCM_SHA256 {w}',
    '{d} {w}:TLS_AES_128_GCM_SHA256',
])
def test_keyword_with_names_fails(apache_factory, certs, directive, word, means, lines):
    cert, key = certs['a']
    port = harness.free_port()
    a = apache_factory(_one_vhost(port, cert, key, lines.format(d=directive, w=word)))
    assert_fails(a, f'{directive} ', [
        rf"{directive}: '{word}' means {means} and cannot be combined with suite names; "
        rf"keep either '{directive} {word}' or the names"])


@pytest.mark.parametrize('first,second', [('none', 'ECDHE-RSA-AES128-GCM-SHA256'),
                                          ('ECDHE-RSA-AES128-GCM-SHA256', 'none')])
def test_keyword_and_names_on_two_lines_fail(apache_factory, certs, first, second):
    cert, key = certs['a']
    port = harness.free_port()
    a = apache_factory(_one_vhost(port, cert, key, f'TLSCiphersSuppress {first}\n'
                                                   f'  TLSCiphersSuppress {second}'))
    # the error stands at the second line and points at the first
    earlier = a.line_of(f'TLSCiphersSuppress {first}')
    assert_fails(a, f'TLSCiphersSuppress {second}', [
        r"'none' means nothing suppressed and cannot be combined with suite names "
        rf"\(the other part is at {re.escape(a.conf_path)}:{earlier}\)"])

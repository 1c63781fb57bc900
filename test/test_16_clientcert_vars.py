"""SSL_CLIENT_* / SSL_SERVER_* variables compared with mod_ssl.

One Apache loads both modules: mod_tls serves one port, mod_ssl another,
with equivalent vhosts (same server certificate, same client CA, client
certificate required, StdEnvVars + ExportCertData, user name from the
client's CN). Every client certificate is sent to both, and what the CGI
environment, mod_headers' %{VAR}s, %{VAR}x in a LogFormat and expressions
say must be the same.

Left out of the comparison, on purpose:
- SSL_VERSION_*, SSL_SESSION_ID, SSL_CIPHER_* key sizes, SSL_SECURE_RENEG,
  SSL_COMPRESS_METHOD: library facts, not certificate variables.
- SSL_CLIENT_CERT_RFC4523_CEA: mod_ssl only, not among mod_tls' variables.
- mod_tls exporting more than mod_ssl (SSL_SERVER_V_REMAIN in the CGI
  environment; mod_ssl has it by lookup only) is fine.
V_REMAIN is compared: the certificates end half a day off a whole day, so
the seconds between the two requests cannot change the day count.

Hostile certificates (issued by the trusted client CA) put a NUL, newlines,
tabs and other control characters into SANs and DN parts: mod_ssl escapes
them (OpenSSL's ASN1_STRFLGS_ESC_CTRL: a NUL is `\\00`, a newline `\\0A`),
and so must mod_tls, or a NUL would cut `alice@...\\0.mallory.test` down to
`alice@...` for every C reader (TLSUserName, Require, CGI scripts).
"""
import json
import os
import re

import pytest
from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

import clientcerts as cc
import harness

DAY = cc.DAY

# Certificate fields, as in SSL_CLIENT_<field> / SSL_SERVER_<field>.
FIELDS = ['M_VERSION', 'M_SERIAL', 'V_START', 'V_END', 'V_REMAIN', 'A_SIG', 'A_KEY',
          'S_DN', 'S_DN_C', 'S_DN_ST', 'S_DN_L', 'S_DN_O', 'S_DN_OU', 'S_DN_CN',
          'S_DN_Email',
          'I_DN', 'I_DN_C', 'I_DN_ST', 'I_DN_L', 'I_DN_O', 'I_DN_OU', 'I_DN_CN',
          'I_DN_Email',
          'SAN_DNS_0', 'SAN_DNS_1', 'SAN_Email_0', 'SAN_Email_1', 'CERT']
# more DN parts mod_ssl knows, for the certificates with unusual subjects
MORE_DN = ['S_DN_OU_1', 'S_DN_CN_1', 'S_DN_T', 'S_DN_I', 'S_DN_G', 'S_DN_S', 'S_DN_D',
           'S_DN_UID', 'S_DN_SP']

# mod_tls' name for the n-th chain certificate, and mod_ssl's
CHAIN_VARS = ['SSL_CLIENT_CHAIN_0', 'SSL_CLIENT_CHAIN_1']
MODSSL_CHAIN_VARS = ['SSL_CLIENT_CERT_CHAIN_0', 'SSL_CLIENT_CERT_CHAIN_1']
CHAIN_RE = re.compile(r'^SSL_CLIENT_(?:CERT_)?CHAIN_(\d+)$')

CLIENT_VARS = (['SSL_CLIENT_VERIFY'] + [f'SSL_CLIENT_{f}' for f in FIELDS + MORE_DN]
               + CHAIN_VARS + MODSSL_CHAIN_VARS)
SERVER_VARS = [f'SSL_SERVER_{f}' for f in FIELDS]
LOOKUP_VARS = CLIENT_VARS + SERVER_VARS
BY_LOWER = {v.lower(): v for v in LOOKUP_VARS}

# %{VAR}x items of the comparison LogFormat (after the port, before %u)
LOG_VARS = ['SSL_CLIENT_S_DN_CN', 'SSL_CLIENT_VERIFY', 'SSL_CLIENT_M_SERIAL', 'SSL_CLIENT_S_DN',
            'SSL_CLIENT_I_DN', 'SSL_CLIENT_V_END', 'SSL_SERVER_S_DN_O', 'SSL_SERVER_M_SERIAL',
            'SSL_CLIENT_SAN_Email_0', 'SSL_CLIENT_SAN_DNS_0', 'SSL_CLIENT_S_DN_OU']

# outside SSL_CLIENT_* / SSL_SERVER_*, these must agree too
OTHER_SAME = ['HTTPS', 'SSL_PROTOCOL', 'SSL_TLS_SNI', 'SSL_SESSION_RESUMED', 'REMOTE_USER']
# mod_ssl only, and not among the variables mod_tls offers
MODSSL_ONLY = {'SSL_CLIENT_CERT_RFC4523_CEA'}

COMMON_CLIENTS = ['alice', 'rsa', 'chained', 'ed25519']
UNUSUAL_CLIENTS = ['utf8', 'escapes', 'more_attrs', 'multi_rdn', 'bmp']
# control characters in SANs and DN parts, from the trusted CA
HOSTILE_CLIENTS = ['nul_san', 'ctrl_san', 'ctrl_dn']
# the identity the hostile SANs pretend to be (alice's first SAN e-mail)
ALICE_EMAIL = 'alice@client.example'


@pytest.fixture(scope='module')
def pki():
    t = cc.now()
    srv_root = cc.Authority(cc.dn(C='US', ST='California', L='San Francisco', O='Server Org',
                                  OU='Server CA Unit', CN='Server Root',
                                  emailAddress='ca@server.example'), 'rsa', label='srvroot')
    server = srv_root.issue(
        cc.dn(C='US', ST='California', L='Palo Alto', O='Server Org', OU='Web', CN='a.test',
              emailAddress='web@server.example'),
        key_type='ec', eku=[cc.SERVER_AUTH], san_dns=['a.test', 'www.a.test'],
        san_email=['web@server.example', 'admin@server.example'],
        serial=0x8F0E0D0C0B0A09080706, not_after=t + 200 * DAY + DAY / 2, label='server')
    root = cc.Authority(cc.dn(C='DE', ST='Hessen', L='Darmstadt', O='Client Org', OU='PKI',
                              CN='Client Root', emailAddress='pki@client.example'),
                        'rsa', label='root')
    inter = cc.Authority(cc.dn(C='DE', O='Client Org', OU='Intermediates',
                               CN='Client Intermediate'), 'ec', parent=root,
                         base_dir=root.dir, label='inter')
    oid = x509.ObjectIdentifier
    serials = iter(range(0x5A5A0000000000000001, 0x5A5A0000000000000100))

    def sn():
        # fixed serials, so that M_SERIAL's format is tested by one
        # certificate only (alice's, with a leading zero nibble)
        return next(serials)
    p = {
        'srv_root': srv_root, 'server': server, 'root': root, 'inter': inter,
        'alice': root.issue(
            cc.dn(C='DE', ST='Hessen', L='Frankfurt', O='Client Org', OU='People', CN='alice',
                  emailAddress='alice@client.example'),
            san_dns=['alice.client.example', 'alice2.client.example'],
            san_email=['alice@client.example', 'a@client.example'],
            serial=0x0ABCDEF0123456789A, not_after=t + 100 * DAY + DAY / 2, label='alice'),
        'rsa': root.issue(cc.dn(O='Client Org', CN='rsa-user'), key_type='rsa',
                          label='rsa', serial=sn()),
        'chained': inter.issue(cc.dn(C='DE', O='Client Org', OU='Contractors', CN='dave'),
                               san_email=['dave@client.example'], label='dave',
                               serial=sn()),
        'ed25519': root.issue(cc.dn(CN='ed-user'), key_type='ed25519', label='ed25519',
                              serial=sn()),
        # unusual subjects
        'utf8': root.issue(cc.dn(C='DE', L='München', O='Müller & Söhne',
                                 CN='Zoë Ünal 日本'), label='utf8', serial=sn()),
        'escapes': root.issue(cc.dn(O='Smith, Jones + Co', OU='#hash', L=' lead and trail ',
                                    CN='a"b<c>d;e\\f=g'), label='escapes', serial=sn()),
        'more_attrs': root.issue(cc.dn(
            OU=['Dev', 'Ops'], CN=['first', 'second'],
            extra=[x509.NameAttribute(NameOID.TITLE, 'Dr'),
                   x509.NameAttribute(NameOID.GIVEN_NAME, 'Zoe'),
                   x509.NameAttribute(NameOID.SURNAME, 'Unal'),
                   x509.NameAttribute(oid('2.5.4.43'), 'ZU'),
                   x509.NameAttribute(oid('2.5.4.13'), 'a description'),
                   x509.NameAttribute(NameOID.USER_ID, 'zoe01'),
                   x509.NameAttribute(NameOID.SERIAL_NUMBER, '12345'),
                   x509.NameAttribute(NameOID.BUSINESS_CATEGORY, 'Private Organization'),
                   x509.NameAttribute(NameOID.DOMAIN_COMPONENT, 'example'),
                   x509.NameAttribute(oid('1.3.6.1.4.1.99999.1'), 'private')]),
            label='moreattrs', serial=sn()),
        'multi_rdn': root.issue(cc.dn(O='Client Org', extra=[x509.RelativeDistinguishedName([
            x509.NameAttribute(NameOID.COMMON_NAME, 'multi'),
            x509.NameAttribute(NameOID.USER_ID, 'm1')])]), label='multirdn',
            serial=sn()),
        'bmp': root.issue(cc.dn(extra=[
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'BMP Örg', _type=_ASN1Type.BMPString),
            x509.NameAttribute(NameOID.COMMON_NAME, 'bmp-user')]), label='bmp',
            serial=sn()),
        # hostile names: a NUL makes C see alice's address and host name
        'nul_san': root.issue(
            cc.dn(O='Client Org', CN='mallory'),
            san_email=[ALICE_EMAIL + '\0.mallory.test', 'm@client.example'],
            san_dns=['alice.client.example\0.mallory.test'], label='nulsan', serial=sn(),
            raw_san=True),
        # lines and tabs that would forge "NAME\tvalue" lines of the environment export
        'ctrl_san': root.issue(
            cc.dn(O='Client Org', CN='eve'),
            san_email=['eve@client.example\nSAN_Email_1\tadmin@client.example',
                       'back\\slash@client.example'],
            san_dns=['eve.client.example\tx\r\x7f\x1b[0m', 'ok.client.example'],
            label='ctrlsan', serial=sn(), raw_san=True),
        'ctrl_dn': root.issue(
            cc.dn(O='Client Org\nS_DN_CN\talice', OU='a\tb\x00c', L='\x1b[31mred\x7f',
                  CN='eve\r\nX-Injected: 1', emailAddress='eve@client.example\x00x'),
            label='ctrldn', serial=sn()),
    }
    return p


@pytest.fixture(scope='module')
def server(docroot, module_path, pki):
    tls_port, ssl_port = harness.free_port(), harness.free_port()
    srv = pki['server']
    logdir = harness.mkdtemp('tls-cmplog-')
    var_log = os.path.join(logdir, 'vars.log')
    headers = '\n'.join(f'Header always set X-V-{v} "%{{{v}}}s"' for v in LOOKUP_VARS)
    log_items = '|'.join(['%{local}p'] + [f'%{{{v}}}x' for v in LOG_VARS] + ['%u', '%U%q'])

    def admin(user_name):
        # the user is alice's first SAN e-mail, and only alice may pass
        return f"""  <Location /admin.txt>
    {user_name} SSL_CLIENT_SAN_Email_0
    Require user {ALICE_EMAIL}
  </Location>"""
    body = f"""
LoadModule authz_user_module {harness.MODULES_DIR}/mod_authz_user.so
Alias /admin.txt "{docroot}/hello.txt"
Listen 127.0.0.1:{tls_port}
Listen 127.0.0.1:{ssl_port}
TLSEngine 127.0.0.1:{tls_port}
SSLSessionCache "shmcb:{logdir}/ssl_scache(512000)"
LogFormat "{log_items}" varfmt
CustomLog "{var_log}" varfmt
{headers}
<If "%{{SSL_CLIENT_S_DN_CN}} == 'alice'">
  Header always set X-If-Var alice
</If>
<If "%{{SSL:SSL_CLIENT_S_DN_O}} == 'Client Org' && %{{SSL:SSL_CLIENT_VERIFY}} == 'SUCCESS'">
  Header always set X-If-Fn client-org
</If>
<Location /hello.txt>
  Require expr %{{SSL:SSL_CLIENT_S_DN_CN}} == 'alice'
</Location>

<VirtualHost 127.0.0.1:{tls_port}>
  ServerName a.test
  TLSCertificate {srv.cert_path} {srv.key_path}
  TLSClientCA {pki['root'].cert_path}
  TLSClientCertificate required
  TLSOptions +StdEnvVars +ExportCertData
  TLSUserName SSL_CLIENT_S_DN_CN
{admin('TLSUserName')}
</VirtualHost>

<VirtualHost 127.0.0.1:{ssl_port}>
  ServerName a.test
  SSLEngine on
  SSLCertificateFile {srv.cert_path}
  SSLCertificateKeyFile {srv.key_path}
  SSLCACertificateFile {pki['root'].cert_path}
  SSLVerifyClient require
  SSLVerifyDepth 5
  SSLOptions +StdEnvVars +ExportCertData
  SSLUserName SSL_CLIENT_S_DN_CN
{admin('SSLUserName')}
</VirtualHost>
"""
    a = harness.Apache(body, docroot, ssl=True, name='modssl-cmp')
    a.tls_port, a.ssl_port, a.var_log = tls_port, ssl_port, var_log
    a.start()
    yield a
    a.stop()


def norm(name, value):
    """PEM values compared with whitespace normalised."""
    if value is not None and 'BEGIN CERTIFICATE' in value:
        return ' '.join(value.split())
    return value


def both_env(server, pki, who, tls='tls13'):
    """CGI environments from mod_tls and mod_ssl for one client certificate."""
    out = {}
    for mod, port in (('tls', server.tls_port), ('ssl', server.ssl_port)):
        o = cc.curl_get(pki['srv_root'], port, '/cgi-bin/env.py', host='a.test',
                        client=pki[who], tls=tls)
        assert (o.ok, o.status) == (True, 200), (mod, o)
        out[mod] = json.loads(o.body)
    return out['tls'], out['ssl']


def both_headers(server, pki, who):
    """X-V-* lookups (mod_headers %{VAR}s) from both modules."""
    out = {}
    for mod, port in (('tls', server.tls_port), ('ssl', server.ssl_port)):
        o = cc.py_get(pki['srv_root'], port, '/index.html', sni='a.test', client=pki[who])
        assert (o.ok, o.status) == (True, 200), (mod, o)
        h = {}
        for k, v in o.headers.items():
            if k.startswith('x-v-'):
                # header bytes arrive as latin-1; the values are UTF-8
                h[BY_LOWER[k[4:]]] = v.encode('latin-1').decode('utf-8', 'replace')
            elif k.startswith('x-if-'):
                h[k] = v
        out[mod] = h
    return out['tls'], out['ssl']


def cert_vars(env):
    return {k: v for k, v in env.items() if k.startswith(('SSL_CLIENT_', 'SSL_SERVER_'))}


def fmt(diffs):
    return '\n'.join(f'  {k}:\n    mod_ssl: {s!r}\n    mod_tls: {t!r}' for k, s, t in diffs)


def same_meaning(tls_vars, ssl_vars):
    """Both sets keyed by meaning (chain variables under mod_ssl's name)."""
    t = {chain_key(k): v for k, v in tls_vars.items()}
    s = {chain_key(k): v for k, v in ssl_vars.items()}
    return t, s


def chain_key(name):
    """SSL_CLIENT_CHAIN_n (mod_tls) and SSL_CLIENT_CERT_CHAIN_n (mod_ssl) name
    the same certificate; compare them under mod_ssl's name."""
    m = CHAIN_RE.match(name)
    return f'SSL_CLIENT_CERT_CHAIN_{m.group(1)}' if m else name


def value_diffs(tls_vars, ssl_vars, names=None):
    """[(name, mod_ssl value, mod_tls value)] for the variables mod_ssl has
    (or `names`), where the values differ: one mod_tls lacks counts (as None)."""
    t, s = same_meaning(tls_vars, ssl_vars)
    keys = sorted(set(s) - MODSSL_ONLY) if names is None else names
    assert keys, 'nothing to compare'
    return [(k, s.get(k), t.get(k)) for k in keys
            if norm(k, t.get(k)) != norm(k, s.get(k))]


def lookup_diffs(tls_h, ssl_h, names):
    """As value_diffs, for the X-V-* lookups; mod_tls' chain certificates
    are compared under its own name with mod_ssl's under mod_ssl's."""
    out = []
    for k in names:
        if k in MODSSL_CHAIN_VARS:
            continue
        s_name = chain_key(k)
        if norm(k, tls_h.get(k)) != norm(k, ssl_h.get(s_name)):
            out.append((k, ssl_h.get(s_name), tls_h.get(k)))
    return out


def only_in_mod_ssl(tls_env, ssl_env):
    t, s = same_meaning(cert_vars(tls_env), cert_vars(ssl_env))
    return sorted(set(s) - set(t) - MODSSL_ONLY)


# --------------------------------------------------------------------------
# the certificates of everyday use

@pytest.mark.parametrize('who', COMMON_CLIENTS)
def test_env_values_equal(server, pki, who):
    """Every SSL_CLIENT_* / SSL_SERVER_* variable both modules put into the
    CGI environment has the same value (PEM whitespace normalised)."""
    tls_env, ssl_env = both_env(server, pki, who)
    diffs = value_diffs(cert_vars(tls_env), cert_vars(ssl_env))
    diffs += value_diffs(tls_env, ssl_env, OTHER_SAME)
    assert not diffs, f'{who}: values differ:\n{fmt(diffs)}'


@pytest.mark.parametrize('who', COMMON_CLIENTS)
def test_env_names_like_mod_ssl(server, pki, who):
    """mod_tls exports every SSL_CLIENT_* / SSL_SERVER_* variable mod_ssl
    does (chain certificates counted by meaning, see
    test_chain_variables_by_mod_ssl_name for their names)."""
    tls_env, ssl_env = both_env(server, pki, who)
    missing = only_in_mod_ssl(tls_env, ssl_env)
    assert not missing, f'{who}: only in mod_ssl\'s environment: ' + ', '.join(
        f'{k}={ssl_env.get(k, "")[:60]!r}' for k in missing)
    if who == 'chained':
        assert 'SSL_CLIENT_CHAIN_0' in tls_env


@pytest.mark.parametrize('who', COMMON_CLIENTS)
def test_lookup_values_equal(server, pki, who):
    """ap_ssl_var_lookup (mod_headers %{VAR}s) gives the same value for
    every variable of the list, and the expressions agree."""
    tls_h, ssl_h = both_headers(server, pki, who)
    diffs = lookup_diffs(tls_h, ssl_h, LOOKUP_VARS)
    for k in ('x-if-var', 'x-if-fn'):
        if tls_h.get(k) != ssl_h.get(k):
            diffs.append((k, ssl_h.get(k), tls_h.get(k)))
    assert not diffs, f'{who}: lookups differ:\n{fmt(diffs)}'
    assert tls_h['SSL_CLIENT_VERIFY'] == 'SUCCESS'
    assert (tls_h.get('x-if-var') == 'alice') == (who == 'alice')
    assert tls_h.get('x-if-fn') == 'client-org' or who == 'ed25519'


@pytest.mark.parametrize('how', ['env', 'lookup'])
def test_chain_variables_by_mod_ssl_name(server, pki, how):
    """mod_ssl calls the chain certificates SSL_CLIENT_CERT_CHAIN_n
    (environment with ExportCertData, and lookups); configurations and
    scripts written for mod_ssl use that name."""
    if how == 'env':
        tls_vars, ssl_vars = both_env(server, pki, 'chained')
    else:
        tls_vars, ssl_vars = both_headers(server, pki, 'chained')
    assert 'BEGIN CERTIFICATE' in ssl_vars.get('SSL_CLIENT_CERT_CHAIN_0', '')
    diffs = [(k, ssl_vars.get(k), tls_vars.get(k)) for k in MODSSL_CHAIN_VARS
             if norm(k, tls_vars.get(k)) != norm(k, ssl_vars.get(k))]
    assert not diffs, fmt(diffs)


def test_expected_values(server, pki):
    """Values stated outright, so that a change in both modules would show."""
    tls_env, ssl_env = both_env(server, pki, 'alice')
    end = pki['alice'].cert.not_valid_after
    v_end = end.strftime('%b ') + f'{end.day:2d}' + end.strftime(' %H:%M:%S %Y GMT')
    expected = {
        'SSL_CLIENT_VERIFY': 'SUCCESS',
        'SSL_CLIENT_S_DN': ('emailAddress=alice@client.example,CN=alice,OU=People,'
                            'O=Client Org,L=Frankfurt,ST=Hessen,C=DE'),
        'SSL_CLIENT_I_DN': ('emailAddress=pki@client.example,CN=Client Root,OU=PKI,'
                            'O=Client Org,L=Darmstadt,ST=Hessen,C=DE'),
        'SSL_CLIENT_S_DN_ST': 'Hessen',
        'SSL_CLIENT_I_DN_L': 'Darmstadt',
        'SSL_CLIENT_M_VERSION': '3',
        'SSL_CLIENT_A_KEY': 'id-ecPublicKey',
        'SSL_CLIENT_A_SIG': 'sha256WithRSAEncryption',
        'SSL_CLIENT_V_REMAIN': '100',
        'SSL_CLIENT_V_END': v_end,
        'SSL_CLIENT_SAN_DNS_1': 'alice2.client.example',
        'SSL_CLIENT_SAN_Email_1': 'a@client.example',
        'SSL_SERVER_S_DN_CN': 'a.test',
        'SSL_SERVER_S_DN_OU': 'Web',
        'SSL_SERVER_A_KEY': 'id-ecPublicKey',
        'SSL_SERVER_A_SIG': 'sha256WithRSAEncryption',
        'SSL_SERVER_M_SERIAL': '8F0E0D0C0B0A09080706',
        'SSL_SERVER_SAN_Email_1': 'admin@server.example',
        'REMOTE_USER': 'alice',
    }
    assert {k: ssl_env.get(k) for k in expected} == expected
    assert {k: tls_env.get(k) for k in expected} == expected
    # (mod_tls' serial is compared in test_env_values_equal)
    assert ssl_env['SSL_CLIENT_M_SERIAL'] == pki['alice'].serial_hex == '0ABCDEF0123456789A'


@pytest.mark.parametrize('tls', ['tls12', 'tls13'])
def test_tls_versions(server, pki, tls):
    tls_env, ssl_env = both_env(server, pki, 'chained', tls=tls)
    diffs = value_diffs(cert_vars(tls_env), cert_vars(ssl_env))
    diffs += value_diffs(tls_env, ssl_env, OTHER_SAME)
    assert not diffs, fmt(diffs)
    assert tls_env['SSL_PROTOCOL'] == {'tls12': 'TLSv1.2', 'tls13': 'TLSv1.3'}[tls]


def _log_lines(server, path, n):
    return harness.wait_lines(server.var_log, re.escape('|' + path) + '$', count=n)


def _by_port(server, lines):
    out = {}
    for ln in lines:
        port, rest = ln.split('|', 1)
        out.setdefault(int(port), []).append(rest)
    return out.get(server.tls_port), out.get(server.ssl_port)


def test_log_format(server, pki):
    """%{VAR}x in a LogFormat, and %u from TLSUserName / SSLUserName."""
    for port in (server.tls_port, server.ssl_port):
        o = cc.curl_get(pki['srv_root'], port, '/index.html?log', host='a.test',
                        client=pki['rsa'])
        assert (o.ok, o.status) == (True, 200), o
    tls_lines, ssl_lines = _by_port(server, _log_lines(server, '/index.html?log', 2))
    assert tls_lines and tls_lines == ssl_lines, (tls_lines, ssl_lines)
    fields = tls_lines[-1].split('|')
    assert fields[:3] == ['rsa-user', 'SUCCESS', pki['rsa'].serial_hex], fields
    assert fields[-2] == 'rsa-user', fields


def test_require_expr(server, pki, allow_log):
    allow_log(r'AH01630')  # rsa-user is not alice: denied by Require expr
    for port in (server.tls_port, server.ssl_port):
        o = cc.curl_get(pki['srv_root'], port, '/hello.txt', host='a.test',
                        client=pki['alice'])
        assert (o.ok, o.status) == (True, 200), (port, o)
        o = cc.curl_get(pki['srv_root'], port, '/hello.txt', host='a.test',
                        client=pki['rsa'])
        assert (o.ok, o.status) == (True, 403), (port, o)


def test_user_logged_on_denied_request(server, pki, allow_log):
    """mod_ssl sets the user from SSLUserName before access control, so a
    request denied by a Require that does not need a user still logs who
    it was (%u); mod_tls should name the user as well."""
    allow_log(r'AH01630')
    for port in (server.tls_port, server.ssl_port):
        o = cc.curl_get(pki['srv_root'], port, '/hello.txt?denied', host='a.test',
                        client=pki['rsa'])
        assert (o.ok, o.status) == (True, 403), (port, o)
    tls_lines, ssl_lines = _by_port(server, _log_lines(server, '/hello.txt?denied', 2))
    assert ssl_lines and ssl_lines[-1].split('|')[-2] == 'rsa-user', ssl_lines
    assert tls_lines and tls_lines[-1] == ssl_lines[-1], (
        f'mod_ssl: {ssl_lines[-1]!r}\nmod_tls: {tls_lines[-1]!r}')


# --------------------------------------------------------------------------
# unusual subjects

@pytest.mark.parametrize('who', UNUSUAL_CLIENTS)
def test_unusual_subject_values(server, pki, who):
    """Non-ASCII, RFC 2253 escapes, repeated and less common attributes, a
    multi-valued RDN, a BMPString: the same values as mod_ssl, in the CGI
    environment and by lookup."""
    tls_env, ssl_env = both_env(server, pki, who)
    tls_h, ssl_h = both_headers(server, pki, who)
    diffs = value_diffs(cert_vars(tls_env), cert_vars(ssl_env))
    hdiffs = lookup_diffs(tls_h, ssl_h, [k for k in CLIENT_VARS if 'CHAIN' not in k])
    assert not diffs and not hdiffs, (
        f'{who}:\nCGI environment:\n{fmt(diffs)}\nlookup:\n{fmt(hdiffs)}')


@pytest.mark.parametrize('who', UNUSUAL_CLIENTS)
def test_unusual_subject_env_names(server, pki, who):
    """mod_ssl exports every DN part it knows (T, G, S, I, D, UID, ... and
    the second and later ones as _1, _2) into the environment."""
    tls_env, ssl_env = both_env(server, pki, who)
    missing = only_in_mod_ssl(tls_env, ssl_env)
    assert not missing, f'{who}: only in mod_ssl\'s environment: ' + ', '.join(
        f'{k}={ssl_env[k]!r}' for k in missing)


# --------------------------------------------------------------------------
# control characters in names (a NUL, newlines, tabs, ESC, DEL)

def _no_controls(values):
    return {k: v for k, v in values.items()
            if "BEGIN CERTIFICATE" not in (v or "") and re.search(r"[\x00-\x1f\x7f]", v or "")}


@pytest.mark.parametrize('who', HOSTILE_CLIENTS)
def test_control_characters_escaped(server, pki, who):
    """Every value is the one mod_ssl gives, escaped (a NUL is \\00, a
    newline \\0A, a tab \\09, a backslash \\\\), in the CGI environment and
    by lookup; no raw control character reaches either, and no variable
    is forged from a line or tab inside a name."""
    tls_env, ssl_env = both_env(server, pki, who)
    tls_h, ssl_h = both_headers(server, pki, who)
    diffs = value_diffs(cert_vars(tls_env), cert_vars(ssl_env))
    hdiffs = lookup_diffs(tls_h, ssl_h, [k for k in CLIENT_VARS if 'CHAIN' not in k])
    assert not diffs and not hdiffs, (
        f'{who}:\nCGI environment:\n{fmt(diffs)}\nlookup:\n{fmt(hdiffs)}')
    assert not _no_controls(cert_vars(tls_env)) and not _no_controls(tls_h)
    t, s = same_meaning(cert_vars(tls_env), cert_vars(ssl_env))
    assert not only_in_mod_ssl(tls_env, ssl_env)
    # mod_tls exports SSL_SERVER_V_REMAIN besides mod_ssl's (see the top)
    assert set(t) - set(s) <= {'SSL_SERVER_V_REMAIN'}, sorted(set(t) - set(s))


def test_control_characters_expected_values(server, pki):
    """The escapes stated outright, as mod_ssl (OpenSSL) writes them."""
    expected = {
        'nul_san': {
            'SSL_CLIENT_SAN_Email_0': ALICE_EMAIL + '\\00.mallory.test',
            'SSL_CLIENT_SAN_Email_1': 'm@client.example',
            'SSL_CLIENT_SAN_DNS_0': 'alice.client.example\\00.mallory.test',
        },
        'ctrl_san': {
            'SSL_CLIENT_SAN_Email_0': 'eve@client.example\\0ASAN_Email_1\\09admin@client.example',
            'SSL_CLIENT_SAN_Email_1': 'back\\\\slash@client.example',
            'SSL_CLIENT_SAN_DNS_0': 'eve.client.example\\09x\\0D\\7F\\1B[0m',
        },
        'ctrl_dn': {
            'SSL_CLIENT_S_DN_O': 'Client Org\\0AS_DN_CN\\09alice',
            'SSL_CLIENT_S_DN_OU': 'a\\09b\\00c',
            'SSL_CLIENT_S_DN_L': '\\1B[31mred\\7F',
            'SSL_CLIENT_S_DN_CN': 'eve\\0D\\0AX-Injected: 1',
            'SSL_CLIENT_S_DN_Email': 'eve@client.example\\00x',
        },
    }
    for who, values in expected.items():
        tls_env, ssl_env = both_env(server, pki, who)
        assert {k: ssl_env.get(k) for k in values} == values, who
        assert {k: tls_env.get(k) for k in values} == values, who


def test_nul_in_san_is_not_the_user(server, pki, allow_log):
    """TLSUserName SSL_CLIENT_SAN_Email_0 with `Require user alice@...`:
    alice passes; a certificate for `alice@...\\0.mallory.test` does not
    (mod_ssl: 403), and both log the same, escaped, user."""
    allow_log(r'AH01630', r'AH01631')  # the hostile certificate is denied
    for who, status in (('alice', 200), ('nul_san', 403)):
        for port in (server.tls_port, server.ssl_port):
            o = cc.curl_get(pki['srv_root'], port, f'/admin.txt?{who}', host='a.test',
                            client=pki[who])
            assert (o.ok, o.status) == (True, status), (who, port, o)
    for who, user in (('alice', ALICE_EMAIL), ('nul_san', ALICE_EMAIL + '\\\\00.mallory.test')):
        tls_lines, ssl_lines = _by_port(server, _log_lines(server, f'/admin.txt?{who}', 2))
        assert ssl_lines and ssl_lines[-1].split('|')[-2] == user, ssl_lines
        assert tls_lines and tls_lines[-1] == ssl_lines[-1], (
            f'mod_ssl: {ssl_lines[-1]!r}\nmod_tls: {tls_lines[-1]!r}')


@pytest.mark.parametrize('who', HOSTILE_CLIENTS)
def test_control_characters_log_format(server, pki, who):
    """%{SSL_CLIENT_SAN_Email_0}x and the other %{VAR}x of the LogFormat
    write what mod_ssl's write."""
    path = f'/index.html?log-{who}'
    for port in (server.tls_port, server.ssl_port):
        o = cc.curl_get(pki['srv_root'], port, path, host='a.test', client=pki[who])
        assert (o.ok, o.status) == (True, 200), o
    tls_lines, ssl_lines = _by_port(server, _log_lines(server, path, 2))
    assert ssl_lines and tls_lines == ssl_lines, (
        f'mod_ssl: {ssl_lines!r}\nmod_tls: {tls_lines!r}')

"""Client certificates: TLSClientCA, TLSClientCertificate required|optional|none,
TLSClientCRL (whole chain), TLSUserName, HTTP/2 and the 421 guard between
vhosts whose client authentication differs, and the startup errors."""
import json
import os
import re

import pytest

import clientcerts as cc
import harness

DAY = cc.DAY
ALICE_DN = dict(C='DE', ST='Berlin', L='Berlin', O='Example Org', OU='People',
                CN='alice', emailAddress='alice@example.org')

# Loose reasons for the info line of a refused client, by case.
REASONS = {
    'none': r'(?i)no certificates|NoCertificatesPresented',
    'expired': r'Expired',
    'notyet': r'NotValidYet|not yet valid',
    'revoked': r'Revoked',
    'other_ca': r'UnknownIssuer',
    'no_chain': r'UnknownIssuer',
    'server_eku': r'(?i)InvalidPurpose|purpose|usage',
    'inter_revoked_leaf': r'Revoked',
    'under_revoked_inter': r'Revoked',
}


@pytest.fixture(scope='module')
def pki():
    """Client CAs and certificates, valid and not."""
    t = cc.now()
    root = cc.Authority(cc.dn(C='DE', O='Example Org', CN='Example Client Root'),
                        'rsa', label='root')
    inter = cc.Authority(cc.dn(C='DE', O='Example Org', OU='Clients',
                               CN='Example Client Intermediate'),
                         'ec', parent=root, base_dir=root.dir, label='inter')
    bad_inter = cc.Authority(cc.dn(C='DE', O='Example Org', CN='Revoked Intermediate'),
                             'ec', parent=root, base_dir=root.dir, label='badinter')
    other = cc.Authority(cc.dn(O='Elsewhere', CN='Other Client Root'), 'ec', label='other')
    p = {
        'root': root, 'inter': inter, 'bad_inter': bad_inter, 'other': other,
        'alice': root.issue(cc.dn(**ALICE_DN), san_dns=['alice.example.org'],
                            san_email=['alice@example.org'], label='alice',
                            serial=0x0ABCDEF0123456789A),
        'bob': root.issue(cc.dn(O='Example Org', CN='bob', emailAddress='bob@example.org'),
                          label='bob'),
        'rsa': root.issue(cc.dn(CN='rsa-client'), key_type='rsa', label='rsa'),
        'ed25519': root.issue(cc.dn(CN='ed-client'), key_type='ed25519', label='ed25519'),
        'expired': root.issue(cc.dn(CN='expired'), not_before=t - 30 * DAY,
                              not_after=t - DAY, label='expired'),
        'notyet': root.issue(cc.dn(CN='notyet'), not_before=t + DAY,
                             not_after=t + 30 * DAY, label='notyet'),
        'revoked': root.issue(cc.dn(CN='revoked'), label='revoked'),
        'other_ca': other.issue(cc.dn(CN='alice'), label='otherca'),
        'server_eku': root.issue(cc.dn(CN='server-eku'), eku=[cc.SERVER_AUTH],
                                 label='servereku'),
        'chained': inter.issue(cc.dn(O='Example Org', CN='dave'), label='dave'),
        'inter_revoked_leaf': inter.issue(cc.dn(CN='erin'), label='erin'),
        'under_revoked_inter': bad_inter.issue(cc.dn(CN='frank'), label='frank'),
    }
    p['no_chain'] = p['chained']   # sent without its intermediate
    root.revoke(p['revoked'])
    root.revoke(bad_inter)
    inter.revoke(p['inter_revoked_leaf'])
    p['root_crl'] = root.gen_crl()
    p['inter_crl'] = inter.gen_crl()
    return p


CLIENT_AUTH = """  TLSClientCA {ca}
  TLSClientCRL {root_crl}
  TLSClientCRL {inter_crl}"""


@pytest.fixture(scope='module')
def server(docroot, module_path, ca, pki):
    port = harness.free_port()
    certs = {
        'none': ca.issue(['none.test']),
        'req': ca.issue(['req.test', 'req2.test', 'req3.test']),
        'opt': ca.issue(['opt.test']),
        'nocrl': ca.issue(['nocrl.test']),
        'user': ca.issue(['user.test']),
    }
    auth = CLIENT_AUTH.format(ca=pki['root'].cert_path, root_crl=pki['root_crl'],
                              inter_crl=pki['inter_crl'])
    logdir = harness.mkdtemp('tls-userlog-')
    user_log = os.path.join(logdir, 'user.log')
    req_cert, req_key = certs['req']

    def req_vhost(name, mode):
        return f"""
<VirtualHost 127.0.0.1:{port}>
  ServerName {name}
  TLSCertificate {req_cert} {req_key}
  TLSClientCertificate {mode}
{auth}
  TLSOptions +StdEnvVars +ExportCertData
</VirtualHost>"""

    body = f"""
LoadModule authz_user_module {harness.MODULES_DIR}/mod_authz_user.so
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
Protocols h2 http/1.1
LogFormat "%v %u %>s %U" userfmt

# first: the default vhost, for clients without SNI
<VirtualHost 127.0.0.1:{port}>
  ServerName none.test
  TLSCertificate {certs['none'][0]} {certs['none'][1]}
  TLSClientCertificate none
  TLSOptions +StdEnvVars
</VirtualHost>
{req_vhost('req.test', 'required')}
{req_vhost('req2.test', 'required')}
{req_vhost('req3.test', 'optional')}
<VirtualHost 127.0.0.1:{port}>
  ServerName opt.test
  TLSCertificate {certs['opt'][0]} {certs['opt'][1]}
  TLSClientCertificate optional
{auth}
  TLSOptions +StdEnvVars
  <Location /hello.txt>
    Require expr %{{SSL_CLIENT_VERIFY}} == 'SUCCESS'
  </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName nocrl.test
  TLSCertificate {certs['nocrl'][0]} {certs['nocrl'][1]}
  TLSClientCertificate required
  TLSClientCA {pki['root'].cert_path}
  TLSOptions +StdEnvVars
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName user.test
  TLSCertificate {certs['user'][0]} {certs['user'][1]}
  TLSClientCertificate required
{auth}
  TLSUserName SSL_CLIENT_S_DN_CN
  CustomLog "{user_log}" userfmt
  ScriptAlias /cgi-email/ "{docroot}/cgi-bin/"
  <Location /cgi-email/>
    TLSUserName SSL_CLIENT_S_DN_Email
  </Location>
  <Location /hello.txt>
    Require user alice
  </Location>
</VirtualHost>
"""
    a = harness.Apache(body, docroot, name='clientcert')
    a.port, a.user_log = port, user_log
    a.start()
    yield a
    a.stop()


# How a client learns it was refused: a TLS alert (curl calls the certificate_expired alert
# "(60) SSL certificate verification failed", as if it had failed to verify the server).
TOLD = r'(?i)\balert\b|^curl rc=60: .*verification failed'


def refused_with(server, outcome, reason, offset):
    """Assert the client was refused with an alert (not a silent close, reset or timeout)
    and the error log says why, at info."""
    assert not outcome.ok, outcome
    assert re.search(TOLD, outcome.error), f'refused without an alert: {outcome}'
    server.wait_log(reason, offset)
    lines = harness.lines_matching(server.error_log, 'failed during', offset)
    assert lines, f'no info line about the refused client:\n{server.read_log(offset)}'
    assert any(re.search(reason, ln) for ln in lines), \
        f'reason {reason!r} not in:\n' + '\n'.join(lines)
    assert all('[tls:info]' in ln for ln in lines), lines


def env_of(outcome):
    assert outcome.ok and outcome.status == 200, outcome
    return json.loads(outcome.body)


# --------------------------------------------------------------------------
# required

@pytest.mark.parametrize('tls', ['tls12', 'tls13'])
@pytest.mark.parametrize('how', ['curl', 'python'])
def test_required_valid(ca, server, pki, how, tls):
    o = cc.get(how, ca, server.port, '/cgi-bin/env.py', host='req.test',
               client=pki['alice'], tls=tls)
    env = env_of(o)
    assert env['SSL_CLIENT_VERIFY'] == 'SUCCESS'
    assert env['SSL_CLIENT_S_DN_CN'] == 'alice'
    assert env['SSL_CLIENT_S_DN_Email'] == 'alice@example.org'
    assert env['SSL_CLIENT_I_DN_CN'] == 'Example Client Root'
    # (its exact format is compared with mod_ssl's in test_16)
    assert int(env['SSL_CLIENT_M_SERIAL'], 16) == pki['alice'].cert.serial_number
    assert env['SSL_PROTOCOL'] == {'tls12': 'TLSv1.2', 'tls13': 'TLSv1.3'}[tls]
    assert env['SSL_CLIENT_CERT'].strip() == pki['alice'].pem.strip()
    assert 'SSL_CLIENT_CHAIN_0' not in env


@pytest.mark.parametrize('kind', ['rsa', 'ed25519'])
def test_required_key_types(ca, server, pki, kind):
    for how in ('curl', 'python'):
        env = env_of(cc.get(how, ca, server.port, '/cgi-bin/env.py', host='req.test',
                            client=pki[kind]))
        assert env['SSL_CLIENT_VERIFY'] == 'SUCCESS'
        assert env['SSL_CLIENT_S_DN_CN'] == pki[kind].cert.subject.get_attributes_for_oid(
            cc.NameOID.COMMON_NAME)[0].value
        # (A_KEY's spelling is compared with mod_ssl's in test_16)
        assert env['SSL_CLIENT_A_KEY'].lower() == {'rsa': 'rsaencryption',
                                                   'ed25519': 'ed25519'}[kind]


@pytest.mark.parametrize('how', ['curl', 'python'])
def test_required_intermediate_chain(ca, server, pki, how):
    """The client sends leaf + intermediate, TLSClientCA holds the root."""
    env = env_of(cc.get(how, ca, server.port, '/cgi-bin/env.py', host='req.test',
                        client=pki['chained']))
    assert env['SSL_CLIENT_VERIFY'] == 'SUCCESS'
    assert env['SSL_CLIENT_S_DN_CN'] == 'dave'
    assert env['SSL_CLIENT_I_DN_CN'] == 'Example Client Intermediate'
    assert env['SSL_CLIENT_CERT'].strip() == pki['chained'].pem.strip()
    assert env['SSL_CLIENT_CHAIN_0'].strip() == cc.cert_pem(pki['inter'].cert).decode().strip()
    assert 'SSL_CLIENT_CHAIN_1' not in env


@pytest.mark.parametrize('tls', ['tls12', 'tls13'])
@pytest.mark.parametrize('how', ['curl', 'python'])
@pytest.mark.parametrize('case', list(REASONS))
def test_required_refused(ca, server, pki, case, how, tls):
    client = None if case == 'none' else pki[case]
    offset = server.log_size()
    o = cc.get(how, ca, server.port, '/cgi-bin/env.py', host='req.test', client=client,
               tls=tls, chain=case != 'no_chain')
    refused_with(server, o, REASONS[case], offset)


def test_crl_is_what_refuses(ca, server, pki):
    """Without TLSClientCRL the revoked certificates pass: the refusals
    above come from the lists (for the leaf and for the intermediate)."""
    for case in ('revoked', 'inter_revoked_leaf', 'under_revoked_inter'):
        env = env_of(cc.curl_get(ca, server.port, '/cgi-bin/env.py', host='nocrl.test',
                                 client=pki[case]))
        assert env['SSL_CLIENT_VERIFY'] == 'SUCCESS', case
    # the other reasons hold there too
    offset = server.log_size()
    o = cc.curl_get(ca, server.port, '/', host='nocrl.test', client=pki['expired'])
    refused_with(server, o, REASONS['expired'], offset)


# --------------------------------------------------------------------------
# optional and none

@pytest.mark.parametrize('how', ['curl', 'python'])
def test_optional_without_certificate(ca, server, how):
    env = env_of(cc.get(how, ca, server.port, '/cgi-bin/env.py', host='opt.test'))
    assert env['SSL_CLIENT_VERIFY'] == 'NONE'
    assert not [k for k in env if k.startswith('SSL_CLIENT_') and k != 'SSL_CLIENT_VERIFY'], env
    o = cc.get(how, ca, server.port, '/index.html', host='opt.test')
    assert (o.ok, o.status) == (True, 200), o


def test_optional_require_expr(ca, server, pki, allow_log):
    allow_log(r'AH01630')  # client denied by server configuration
    o = cc.curl_get(ca, server.port, '/hello.txt', host='opt.test')
    assert (o.ok, o.status) == (True, 403), o
    for how in ('curl', 'python'):
        o = cc.get(how, ca, server.port, '/hello.txt', host='opt.test', client=pki['alice'])
        assert (o.ok, o.status, o.body) == (True, 200, b'Hello, TLS!\n'), o
    env = env_of(cc.curl_get(ca, server.port, '/cgi-bin/env.py', host='opt.test',
                             client=pki['alice']))
    assert env['SSL_CLIENT_VERIFY'] == 'SUCCESS'
    assert env['SSL_CLIENT_S_DN_CN'] == 'alice'


@pytest.mark.parametrize('how', ['curl', 'python'])
@pytest.mark.parametrize('case', ['expired', 'other_ca', 'revoked', 'server_eku',
                                  'under_revoked_inter'])
def test_optional_invalid_refused(ca, server, pki, case, how):
    offset = server.log_size()
    o = cc.get(how, ca, server.port, '/index.html', host='opt.test', client=pki[case])
    refused_with(server, o, REASONS[case], offset)


@pytest.mark.parametrize('case', ['alice', 'expired', 'other_ca'])
def test_none_does_not_ask(ca, server, pki, case):
    """Without client authentication no certificate is asked for (so none
    is sent or judged), and there are no client variables."""
    for how in ('curl', 'python'):
        env = env_of(cc.get(how, ca, server.port, '/cgi-bin/env.py', host='none.test',
                            client=pki[case]))
        assert env['SSL_CLIENT_VERIFY'] == 'NONE'
        assert 'SSL_CLIENT_S_DN' not in env


# --------------------------------------------------------------------------
# TLSUserName

def test_user_name(ca, server, pki, allow_log):
    allow_log(r'AH01630')  # bob: client denied by server configuration
    for how in ('curl', 'python'):
        o = cc.get(how, ca, server.port, '/hello.txt', host='user.test', client=pki['alice'])
        assert (o.ok, o.status) == (True, 200), o
        o = cc.get(how, ca, server.port, '/hello.txt', host='user.test', client=pki['bob'])
        assert (o.ok, o.status) == (True, 403), o
    env = env_of(cc.curl_get(ca, server.port, '/cgi-bin/env.py', host='user.test',
                             client=pki['alice']))
    assert env.get('REMOTE_USER') == 'alice', env
    env = env_of(cc.curl_get(ca, server.port, '/cgi-email/env.py', host='user.test',
                             client=pki['bob']))
    assert env.get('REMOTE_USER') == 'bob@example.org', env
    harness.wait_lines(server.user_log, r' /cgi-email/env\.py$')
    with open(server.user_log) as f:
        log = f.read()
    lines = log.splitlines()
    assert 'user.test alice 200 /hello.txt' in lines, log
    assert 'user.test bob 403 /hello.txt' in lines, log
    assert 'user.test alice 200 /cgi-bin/env.py' in lines, log
    assert 'user.test bob@example.org 200 /cgi-email/env.py' in lines, log


def _authz_runs(a, port, path, client, status=200):
    """How often authz_core decided (its debug line AH01626) for one request."""
    offset = a.log_size()
    o = cc.curl_get(a.ca, port, path, host='authz.test', client=client)
    assert (o.ok, o.status) == (True, status), (path, o)
    # every decision is logged before the response goes out
    return len(a.wait_log(r'AH01626.*Require all', offset))


def test_auth_shortcut_for_internal_requests(apache_factory, ca, pki, docroot):
    """The user hook runs as a per-configuration access check
    (AP_AUTH_INTERNAL_PER_CONF), as mod_ssl's: httpd then skips
    authorization for an internal redirect whose configuration is its
    parent's, also into another directory (here an ErrorDocument). One
    plain access_checker hook turned that off for every request of the
    server, TLS or not."""
    sub = os.path.join(docroot, 'authz-sub')
    os.makedirs(sub, exist_ok=True)
    os.chmod(sub, 0o755)
    harness.write_file(os.path.join(sub, 'missing.txt'), 'not here\n')
    port = harness.free_port()
    inner = f"""  TLSClientCertificate required
  TLSClientCA {pki['root'].cert_path}
  TLSUserName SSL_CLIENT_S_DN_CN
  ErrorDocument 404 /authz-sub/missing.txt
  LogLevel warn tls:info authz_core:debug"""
    a = apache_factory(_vhost(port, ca.issue(['authz.test']), inner, name='authz.test'))
    a.ca = ca
    a.start()
    assert _authz_runs(a, port, '/hello.txt', pki['alice']) == 1, a.read_log()
    assert _authz_runs(a, port, '/nothere.txt', pki['alice'], 404) == 1, a.read_log()
    # and TLSUserName still names the user
    env = env_of(cc.curl_get(ca, port, '/cgi-bin/env.py', host='authz.test',
                             client=pki['alice']))
    assert env.get('REMOTE_USER') == 'alice', env


def test_user_name_not_set_elsewhere(ca, server, pki):
    """TLSUserName is per vhost/directory: req.test has none."""
    env = env_of(cc.curl_get(ca, server.port, '/cgi-bin/env.py', host='req.test',
                             client=pki['alice']))
    assert 'REMOTE_USER' not in env


# --------------------------------------------------------------------------
# HTTP/2 and requests for other vhosts on the connection

def test_h2_client_certificate(ca, server, pki):
    r = harness.curl(ca, server.port, '/cgi-bin/env.py', host='req.test',
                     args=['--http2'] + pki['chained'].curl_args())
    assert (r.rc, r.status, r.http_version) == (0, 200, '2'), r
    env = json.loads(r.body)
    assert env['SSL_CLIENT_VERIFY'] == 'SUCCESS'
    assert env['SSL_CLIENT_S_DN_CN'] == 'dave'
    assert env['SSL_CLIENT_CHAIN_0'].strip() == cc.cert_pem(pki['inter'].cert).decode().strip()
    # several streams on the one connection
    urls = [f'https://req.test:{server.port}/hello.txt'] * 3
    r = harness.curl(ca, server.port, host='req.test', urls=urls,
                     args=['--http2'] + pki['alice'].curl_args())
    assert r.rc == 0 and [i['http_code'] for i in r.infos] == [200] * 3, r
    assert all(i['http_version'] == '2' for i in r.infos), r.infos
    # without a certificate: refused. curl may find the connection gone before it reads
    # the alert, so the alert an h2 client gets is looked at with Python's ssl
    offset = server.log_size()
    o = cc.curl_get(ca, server.port, '/hello.txt', host='req.test', args=['--http2'])
    assert not o.ok, o
    with harness.tls_connect(ca, server.port, 'req.test', alpn=['h2']) as s:
        assert s.selected_alpn_protocol() == 'h2'
        got = harness.read_until_close(s)
    assert got.end == 'alert' and not got.data, got
    refused_with(server, cc.Outcome(False, error=str(got.error)), REASONS['none'], offset)


@pytest.mark.parametrize('proto', ['--http1.1', '--http2'])
def test_misdirected(ca, server, pki, proto):
    def status(sni, host, client=None):
        args = [proto, '-H', f'Host: {host}']
        if client:
            args += client.curl_args()
        r = harness.curl(ca, server.port, '/hello.txt', host=sni, args=args)
        assert (r.rc, r.http_version) == (0, '2' if proto == '--http2' else '1.1'), r
        return int(r.status)
    alice = pki['alice']
    # same certificate and client authentication: one may serve the other
    assert status('req.test', 'req2.test', alice) == 200
    assert status('req2.test', 'req.test', alice) == 200
    # same certificate, but optional: a request for the required vhost must
    # not ride on a connection that had no certificate checked
    assert status('req3.test', 'req.test') == 421
    assert status('req3.test', 'req.test', alice) == 421
    assert status('req.test', 'req3.test', alice) == 421
    assert status('opt.test', 'req.test', alice) == 421
    assert status('none.test', 'user.test') == 421


def test_misdirected_without_sni(ca, server, pki):
    o = cc.py_get(ca, server.port, '/hello.txt', sni=None, host='req.test',
                  client=pki['alice'])
    assert (o.ok, o.status) == (True, 421), o
    o = cc.py_get(ca, server.port, '/hello.txt', sni=None, host='none.test')
    assert (o.ok, o.status) == (True, 200), o


# --------------------------------------------------------------------------
# configuration errors and warnings

def _vhost(port, cert, inner, name='bad.test'):
    return f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName {name}
  TLSCertificate {cert[0]} {cert[1]}
{inner}
</VirtualHost>
"""


@pytest.mark.parametrize('mode', ['required', 'optional'])
def test_conf_mode_without_ca(apache_factory, ca, mode):
    port = harness.free_port()
    a = apache_factory(_vhost(port, ca.issue(['bad.test']),
                              f'  TLSClientCertificate {mode}', name='noca.test'))
    rc, out = a.configtest()
    assert rc != 0, out
    assert 'noca.test' in out and 'TLSClientCA' in out, out
    assert mode in out, out


def test_conf_none_without_ca(apache_factory, ca):
    port = harness.free_port()
    a = apache_factory(_vhost(port, ca.issue(['bad.test']), '  TLSClientCertificate none'))
    rc, out = a.configtest()
    assert rc == 0, out


@pytest.mark.parametrize('section', ['Directory', 'Location'])
def test_conf_not_per_directory(apache_factory, ca, pki, docroot, section):
    port = harness.free_port()
    where = docroot if section == 'Directory' else '/secure'
    inner = f"""  TLSClientCA {pki['root'].cert_path}
  <{section} "{where}">
    TLSClientCertificate required
  </{section}>"""
    a = apache_factory(_vhost(port, ca.issue(['bad.test']), inner))
    rc, out = a.configtest()
    assert rc != 0, out
    assert 'TLSClientCertificate' in out and 'cannot be used' in out, out
    line = a.line_of('TLSClientCertificate')
    assert harness.conf_location_re(a.conf_path, line).search(out), out


def test_conf_bad_mode(apache_factory, ca, pki):
    port = harness.free_port()
    inner = f"""  TLSClientCA {pki['root'].cert_path}
  TLSClientCertificate sometimes"""
    a = apache_factory(_vhost(port, ca.issue(['bad.test']), inner))
    rc, out = a.configtest()
    assert rc != 0, out
    assert 'TLSClientCertificate' in out and 'required' in out, out


def _crl_files(pki):
    d = harness.mkdtemp('tls-badcrl-')
    with open(pki['root_crl']) as f:
        good = f.read()
    lines = good.strip().splitlines()
    body = ''.join(lines[1:-1])
    # valid base64, but the DER inside is cut short
    cut = lines[0] + '\n' + body[:len(body) // 2 // 4 * 4] + '\n' + lines[-1] + '\n'
    return {
        'garbage': harness.write_file(os.path.join(d, 'garbage.pem'),
                                      'this is not a revocation list\n'),
        'cert_not_crl': pki['root'].cert_path,
        'truncated': harness.write_file(os.path.join(d, 'truncated.pem'), cut),
    }


@pytest.mark.parametrize('kind', ['garbage', 'cert_not_crl', 'truncated'])
def test_conf_bad_crl(apache_factory, ca, pki, kind):
    port = harness.free_port()
    crl = _crl_files(pki)[kind]
    inner = f"""  TLSClientCertificate required
  TLSClientCA {pki['root'].cert_path}
  TLSClientCRL {crl}"""
    a = apache_factory(_vhost(port, ca.issue(['bad.test']), inner, name='badcrl.test'))
    rc, out = a.configtest()
    assert rc != 0, out
    assert 'badcrl.test' in out and re.search(r'(?i)crl', out), out
    rc, out = a.start(check=False)
    assert rc != 0, out
    assert not a.alive()


def test_crl_file_with_nul_byte(apache_factory, ca, pki):
    """A NUL byte between the lists of one TLSClientCRL file (PEM ignores
    what lies between blocks), a second file after it: every list holds.
    The files are joined by their sizes, not up to a NUL as C strings (that
    lost what followed the NUL, and the bridge read past the copy)."""
    d = harness.mkdtemp('tls-nulcrl-')
    with open(pki['root_crl'], 'rb') as f:
        root_crl = f.read()
    with open(pki['inter_crl'], 'rb') as f:
        inter_crl = f.read()
    both = harness.write_file(os.path.join(d, 'both.crl.pem'),
                              root_crl + b'\0\n' + inter_crl + b'\0trailing junk\n')
    # a long tail after the NUL: read as C strings, the bridge read that far past the copy
    # (a crash at startup)
    again = harness.write_file(os.path.join(d, 'again.crl.pem'),
                               b'\0\n' + b'# after a NUL\n' * 40000 + root_crl)
    port = harness.free_port()
    inner = f"""  TLSClientCertificate required
  TLSClientCA {pki['root'].cert_path}
  TLSClientCRL {both}
  TLSClientCRL {again}"""
    a = apache_factory(_vhost(port, ca.issue(['nulcrl.test']), inner, name='nulcrl.test'))
    a.start()
    for who in ('alice', 'chained'):
        o = cc.curl_get(ca, port, '/index.html', host='nulcrl.test', client=pki[who])
        assert (o.ok, o.status) == (True, 200), (who, o)
    for who in ('revoked', 'inter_revoked_leaf', 'under_revoked_inter'):
        offset = a.log_size()
        o = cc.curl_get(ca, port, '/index.html', host='nulcrl.test', client=pki[who])
        refused_with(a, o, REASONS[who], offset)


def test_crl_nul_inside_a_list(apache_factory, ca, pki):
    """A NUL byte inside a list's base64 breaks it: the start stops, naming
    the file."""
    with open(pki['root_crl'], 'rb') as f:
        lines = f.read().split(b'\n')
    lines[2] = lines[2][:10] + b'\0' + lines[2][11:]
    path = harness.write_file(os.path.join(harness.mkdtemp('tls-nulcrl-'), 'broken.crl.pem'),
                              b'\n'.join(lines))
    port = harness.free_port()
    inner = f"""  TLSClientCertificate required
  TLSClientCA {pki['root'].cert_path}
  TLSClientCRL {path}"""
    a = apache_factory(_vhost(port, ca.issue(['bad.test']), inner, name='badcrl.test'))
    rc, out = a.configtest()
    assert rc != 0, out
    assert path in out and 'badcrl.test' in out, out


def test_conf_missing_files(apache_factory, ca, pki):
    port = harness.free_port()
    for inner in ('  TLSClientCA /nonexistent/ca.pem',
                  f'  TLSClientCA {pki["root"].cert_path}\n'
                  '  TLSClientCRL /nonexistent/crl.pem'):
        a = apache_factory(_vhost(port, ca.issue(['bad.test']), inner))
        rc, out = a.configtest()
        assert rc != 0, out
        assert '/nonexistent/' in out, out


def test_stale_crl(apache_factory, ca, pki):
    """A CRL past its nextUpdate: Apache starts with a warning naming the
    file, and the revocations in it still hold."""
    stale = pki['root'].stale_crl([pki['revoked']])
    port = harness.free_port()
    inner = f"""  TLSClientCertificate required
  TLSClientCA {pki['root'].cert_path}
  TLSClientCRL {stale}"""
    warn = r'\[tls:warn\].*' + re.escape(stale)
    a = apache_factory(_vhost(port, ca.issue(['stale.test']), inner, name='stale.test'),
                       expect=[warn])
    a.start()
    warnings = [ln for ln in a.log_lines() if re.search(warn, ln)]
    assert len(warnings) == 1, a.read_log()
    o = cc.curl_get(ca, port, '/index.html', host='stale.test', client=pki['alice'])
    assert (o.ok, o.status) == (True, 200), o
    offset = a.log_size()
    o = cc.curl_get(ca, port, '/index.html', host='stale.test', client=pki['revoked'])
    refused_with(a, o, REASONS['revoked'], offset)
    a.stop()


# --------------------------------------------------------------------------
# resumed sessions

def _session_ctx(ca, client, version):
    ctx = harness.ssl_context(ca, min_version=version, max_version=version)
    if client:
        ctx.load_cert_chain(client.chain_path, client.key_path)
    return ctx


def _session_env(ctx, port, sni, session=None):
    """(env, reused, session, error) of one request on a fresh connection
    (sessions need the one context); env is None when the server refused
    the client, and error then says how. A server that neither answers nor
    closes fails the test."""
    raw = harness.socket.create_connection(('127.0.0.1', port), timeout=10)
    try:
        with ctx.wrap_socket(raw, server_hostname=sni, session=session) as s:
            s.sendall(f'GET /cgi-bin/env.py HTTP/1.0\r\nHost: {sni}\r\n\r\n'.encode())
            got = harness.read_until_close(s, 10)
            if got.end in ('alert', 'reset') and not got.data:
                return None, s.session_reused, None, f'{got.end}: {got.error}'
            head, _, body = got.data.partition(b'\r\n\r\n')
            assert head.startswith(b'HTTP/1.1 200'), got
            return json.loads(body), s.session_reused, s.session, None
    except TimeoutError as e:
        raise AssertionError(f'no handshake within 10s: {e}')
    except harness.ssl.SSLError as e:
        return None, False, None, f'{type(e).__name__}: {e}'
    finally:
        raw.close()


@pytest.mark.parametrize('version', [harness.ssl.TLSVersion.TLSv1_2,
                                     harness.ssl.TLSVersion.TLSv1_3],
                         ids=['tls12', 'tls13'])
def test_resumed_session_keeps_client_certificate(ca, server, pki, version):
    ctx = _session_ctx(ca, pki['alice'], version)
    env, reused, session, error = _session_env(ctx, server.port, 'req.test')
    assert env and not reused and env['SSL_CLIENT_S_DN_CN'] == 'alice', (env, error)
    seen = []
    for _ in range(2):
        env, reused, session, error = _session_env(ctx, server.port, 'req.test', session)
        assert env, f'refused: {error}'
        seen.append(reused)
        assert env['SSL_SESSION_RESUMED'] == ('Resumed' if reused else 'Initial'), env
        # resumed or not, the client is the one who authenticated
        assert env['SSL_CLIENT_VERIFY'] == 'SUCCESS', env
        assert env['SSL_CLIENT_S_DN_CN'] == 'alice', env
        assert env['SSL_CLIENT_CERT'].strip() == pki['alice'].pem.strip()
    assert any(seen), 'the client never resumed: nothing tested'


@pytest.mark.parametrize('version', [harness.ssl.TLSVersion.TLSv1_2,
                                     harness.ssl.TLSVersion.TLSv1_3],
                         ids=['tls12', 'tls13'])
def test_no_resumption_into_required_vhost(ca, server, pki, version):
    """A session made without a client certificate (req3.test: optional,
    same server certificate) must not open req.test (required)."""
    ctx = _session_ctx(ca, None, version)
    env, _, session, error = _session_env(ctx, server.port, 'req3.test')
    assert env and env['SSL_CLIENT_VERIFY'] == 'NONE', (env, error)
    offset = server.log_size()
    env, reused, _, error = _session_env(ctx, server.port, 'req.test', session)
    assert env is None or env['SSL_CLIENT_VERIFY'] == 'SUCCESS', (reused, env)
    assert env is None, f'served without a client certificate (resumed: {reused})'
    # refused as a client without a certificate is, with an alert and a log line
    refused_with(server, cc.Outcome(False, error=error), REASONS['none'], offset)


@pytest.mark.parametrize('kind', ['garbage', 'crl_not_ca'])
def test_conf_bad_ca_file(apache_factory, ca, pki, kind):
    if kind == 'garbage':
        path = harness.write_file(os.path.join(harness.mkdtemp('tls-badca-'), 'ca.pem'),
                                  'no certificates in here\n')
    else:
        path = pki['root_crl']
    port = harness.free_port()
    inner = f"""  TLSClientCertificate optional
  TLSClientCA {path}"""
    a = apache_factory(_vhost(port, ca.issue(['bad.test']), inner, name='badca.test'))
    rc, out = a.configtest()
    assert rc != 0, out
    assert 'badca.test' in out and path in out, out

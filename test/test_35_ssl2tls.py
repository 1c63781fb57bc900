"""scripts/ssl2tls (issue 14): mod_ssl configurations converted to mod_tls.

Table-driven checks of the mapping (protocols, OpenSSL cipher strings against what `openssl
ciphers` itself makes of them, directive by directive), then whole configurations: Debian's
own default-ssl.conf, ssl.conf and ports.conf, client certificates, a proxy to a TLS backend,
protocols and ciphers, several virtual hosts on one port, includes. Each converted result must
pass `apache2 -t` with mod_tls; several are started and answer https requests. The tool must
never write its input."""
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import subprocess
import time

import pytest

import harness

TOOL = os.path.join(harness.TOP_DIR, 'scripts', 'ssl2tls')
DEBIAN = [os.path.join(r, 'etc', 'apache2') for r in
          ('/', os.path.join(harness.TOP_DIR, 'build', 'debian-apache2'))]
PROXY_MODULES = '\n'.join(f'LoadModule {m}_module {harness.MODULES_DIR}/mod_{m}.so'
                          for m in ('proxy', 'proxy_http'))


def _load_tool():
    loader = importlib.machinery.SourceFileLoader('ssl2tls', TOOL)
    spec = importlib.util.spec_from_loader('ssl2tls', loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


s2t = _load_tool()


def run_tool(*args):
    p = subprocess.run(['/usr/bin/python3', TOOL, *args], capture_output=True, text=True,
                       timeout=60)
    return p


def convert(conf, *args):
    """Converted text of `conf` (one combined file on stdout) and the stderr summary."""
    p = run_tool('--module-path', harness.MODULE_PATH, *args, conf)
    assert p.returncode == 0, p.stderr
    return p.stdout, p.stderr


def debian_file(rel):
    """Debian's own file from the apache2 package (installed, or unpacked by deps.sh)."""
    for d in DEBIAN:
        if os.path.isfile(os.path.join(d, rel)):
            return os.path.join(d, rel)
    pytest.fail(f"Debian's {rel} not found: run scripts/deps.sh test (it unpacks the "
                'apache2 package into build/debian-apache2)', pytrace=False)


def digest(folder):
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            with open(os.path.join(d, f), 'rb') as fh:
                out[os.path.join(d, f)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def directives(text):
    """The active (uncommented) lines, stripped."""
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith('#')]


# --------------------------------------------------------------------------
# the mapping, table-driven

@pytest.mark.parametrize('args,line,note', [
    (['all', '-SSLv3'], 'TLSProtocol TLSv1.2+', r'TLSv1, TLSv1\.1: never offered'),
    (['-all', '+TLSv1.2', '+TLSv1.3'], 'TLSProtocol TLSv1.2+', None),
    (['TLSv1.2'], 'TLSProtocol TLSv1.2+', 'TLS 1.3 is offered as well'),
    (['-all', '+TLSv1.3'], 'TLSProtocol TLSv1.3+', None),
    (['TLSv1.3'], 'TLSProtocol TLSv1.3+', None),
    (['all', '-TLSv1.2', '-TLSv1.3'], 'TLSProtocol TLSv1.2+', 'no TLS 1.2 or 1.3'),
])
def test_protocol_mapping(args, line, note):
    got, notes, attention = s2t.map_protocol(args)
    assert got == line
    if note:
        assert re.search(note, '; '.join(notes)), notes
    else:
        assert not notes
    assert attention == (note == 'no TLS 1.2 or 1.3')


@pytest.mark.parametrize('spec', [
    'HIGH:!aNULL', 'HIGH:!aNULL:!MD5', 'ECDHE+AESGCM', 'ECDHE+AESGCM:ECDHE+CHACHA20',
    'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305',
    'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:!AES128',
    'ALL:!CHACHA20:@STRENGTH', 'AES128+EECDH:AES256+EECDH', 'HIGH:-aECDSA:+AES128',
    'DEFAULT:!aRSA', 'kEECDH+ECDSA+AES128:kEECDH+ECDSA+AES256:kEECDH+AES128',
    'RC4-SHA:DES-CBC3-SHA', 'AES128-SHA:AES256-SHA', 'ECDH:!AES256:ALL', 'FIPS',
    'ECDHE+AES:!SHA1:!SHA256:!SHA384', 'ECDHE-ECDSA-AES128-GCM-SHA256:+ECDSA:-AES128:AES',
    'HIGH:-aECDSA:-CHACHA20:ALL:+AES256', 'ALL:!aRSA:aRSA:CHACHA20:@STRENGTH',
])
def test_cipher_strings_as_openssl_reads_them(spec):
    """The evaluator picks, in order, the suites of mod_tls that OpenSSL itself picks."""
    p = subprocess.run(['openssl', 'ciphers', '-tls1_2', '-s', spec], capture_output=True,
                       text=True)
    ours = {s[0] for s in s2t.TLS12_SUITES}
    want = [c for c in p.stdout.strip().split(':') if c in ours] if p.returncode == 0 else []
    assert s2t.openssl_cipher_list(spec) == want


@pytest.mark.parametrize('args,lines,attention', [
    (['HIGH:!aNULL'], [], False),
    (['ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305'],
     ['TLSCiphersPrefer ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305',
      'TLSCiphersSuppress ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:'
      'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256'], False),
    (['HIGH:!CHACHA20'],
     ['TLSCiphersSuppress ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305'], False),
    (['TLSv1.3', 'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384'],
     ['TLSCiphersPrefer TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384',
      'TLSCiphersSuppress TLS_AES_128_GCM_SHA256'], False),
    (['AES128-SHA:DES-CBC3-SHA'], [], True),
    (['TLSv1.3', 'TLS_AES_128_CCM_SHA256'], [], True),
])
def test_cipher_suite_mapping(args, lines, attention):
    got, notes, att = s2t.map_cipher_suite(args)
    assert (got, att) == (lines, attention), notes


# (mod_ssl lines, what the converted text must hold, what it must not hold as a directive)
SNIPPETS = [
    ('SSLHonorCipherOrder on', ['TLSHonorClientOrder off'], []),
    ('SSLHonorCipherOrder off', ['TLSHonorClientOrder on'], []),
    ('SSLVerifyClient require', ['TLSClientCertificate required'], []),
    ('SSLVerifyClient optional_no_ca', ['# ssl2tls: no equivalent: optional_no_ca'],
     ['TLSClientCertificate']),
    ('<Location /x>\nSSLVerifyClient require\n</Location>',
     ["# ssl2tls: no equivalent: mod_tls sets this per virtual host", 'Require expr'],
     ['TLSClientCertificate']),
    ('<Directory /x>\nSSLCipherSuite HIGH\nSSLHonorCipherOrder on\n</Directory>',
     ['per virtual host'], ['TLSCiphers', 'TLSHonorClientOrder']),
    ('<Proxy https://be/>\nSSLProxyCipherSuite HIGH:!CHACHA20\n</Proxy>',
     ['TLSProxyCiphersSuppress ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305'], []),
    # both of mod_ssl's strings make one list; a vhost's replaces the server's, so a vhost
    # that allows all undoes the server's list
    ('SSLCipherSuite HIGH:!CHACHA20\n'
     'SSLCipherSuite TLSv1.3 TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n'
     '<VirtualHost *:8443>\nSSLCipherSuite HIGH\n</VirtualHost>',
     ['TLSCiphersPrefer TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n'
      'TLSCiphersSuppress ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:'
      'TLS_AES_128_GCM_SHA256',
      # the vhost keeps the server's TLS 1.3 string, as in mod_ssl
      'TLSCiphersPrefer TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n'
      'TLSCiphersSuppress TLS_AES_128_GCM_SHA256\n</VirtualHost>'], []),
    ('SSLCipherSuite ECDHE-RSA-AES128-GCM-SHA256:HIGH\n'
     '<VirtualHost *:8443>\nSSLCipherSuite HIGH:!aNULL\n</VirtualHost>',
     ['TLSCiphersPrefer default\n</VirtualHost>'], ['TLSCiphersSuppress']),
    ('SSLCACertificateFile /c/ca.pem', ['TLSClientCA /c/ca.pem'], []),
    ('SSLCARevocationFile /c/crl.pem', ['TLSClientCRL /c/crl.pem'], []),
    ('SSLUserName SSL_CLIENT_S_DN_CN', ['TLSUserName SSL_CLIENT_S_DN_CN'], []),
    ('SSLOptions +StdEnvVars +FakeBasicAuth', ['TLSOptions +StdEnvVars', 'FakeBasicAuth'],
     []),
    # a name without a sign resets the options, in both
    ('SSLOptions StrictRequire', ['TLSOptions Defaults', 'StrictRequire: not offered'], []),
    ('<Location />\nSSLOptions +StrictRequire\n</Location>',
     ['no equivalent: +StrictRequire'], ['TLSOptions']),
    ('SSLOptions ExportCertData', ['TLSOptions ExportCertData'], []),
    ('SSLOptions FakeBasicAuth +StdEnvVars', ['TLSOptions Defaults +StdEnvVars'], []),
    ('SSLSessionCache shmcb:/run/ssl_scache(512000)',
     ['TLSSessionCache shmcb:/run/tls_scache(512000)'], []),
    ('SSLSessionCache none', ['TLSSessionCache none'], []),
    ('SSLSessionCacheTimeout 300', ['TLSSessionCacheTimeout 300'], []),
    ('SSLSessionTickets off', ['TLSSessionTickets off'], []),
    ('<VirtualHost *:443>\nSSLSessionTickets off\n</VirtualHost>',
     ['server-wide'], ['TLSSessionTickets']),
    ('SSLProxyEngine on\nSSLProxyCACertificateFile /c/ca.pem\nSSLProxyVerify require',
     ['TLSProxyEngine on', 'TLSProxyCA /c/ca.pem', 'always verifies'], []),
    ('SSLProxyEngine on', ['TLSProxyEngine on', 'against the system CAs'], []),
    ('SSLProxyCheckPeerName off', ['TLSProxyPeerName'], []),
    ('SSLProxyMachineCertificateFile /c/m.pem', ['TLSProxyMachineCertificate /c/m.pem'], []),
    ('SSLProxyProtocol -all +TLSv1.3', ['TLSProxyProtocol TLSv1.3+'], []),
    ('SSLProxyCipherSuite HIGH:!CHACHA20', ['TLSProxyCiphersSuppress'], []),
    ('SSLUseStapling on', ['MDStapling on', 'MDStapleOthers on', '<IfModule md_module>'], []),
    ('SSLStaplingCache shmcb:/run/ocsp(1000)', ['no equivalent: mod_md'], []),
    ('SSLRandomSeed startup builtin', ['no equivalent: rustls'], []),
    ('SSLPassPhraseDialog builtin', ['no equivalent: mod_tls reads unencrypted keys'], []),
    ('SSLCertificateFile /c/a.pem\nSSLCertificateKeyFile /c/a.key\n'
     'SSLCertificateFile /c/b.pem\nSSLCertificateKeyFile /c/b.key',
     ['TLSCertificate /c/a.pem /c/a.key', 'TLSCertificate /c/b.pem /c/b.key'], []),
    ('SSLCertificateFile /c/a.pem\nSSLCertificateChainFile /c/chain.pem',
     ['TLSCertificate /c/a.pem', 'append /c/chain.pem to /c/a.pem'], []),
    ('SSLCertificateFile "/c/with space.pem"', ['TLSCertificate "/c/with space.pem"'], []),
    ('<IfModule mod_ssl.c>\nSSLRandomSeed startup builtin\n</IfModule>',
     ['<IfModule tls_module>'], ['<IfModule mod_ssl.c>']),
    ('<IfModule !ssl_module>\nListen 80\n</IfModule>', ['<IfModule !tls_module>'], []),
    ('LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so',
     [f'LoadModule tls_module {harness.MODULE_PATH}'], ['LoadModule ssl_module']),
    ('LoadModule ssl_module modules/mod_ssl.so\nLoadModule tls_module modules/mod_tls.so',
     ['mod_tls is loaded elsewhere'], ['LoadModule ssl_module', f'{harness.MODULE_PATH}']),
    ('SSLEngine off', ['no equivalent'], ['TLSEngine']),
    ('SSLEngine optional', ['RFC 2817'], ['TLSEngine']),
    ('<VirtualHost 192.0.2.1:8443 [2001:db8::1]:8443>\nSSLEngine on\n</VirtualHost>',
     ['TLSEngine 192.0.2.1:8443 [2001:db8::1]:8443'], []),
    ('<VirtualHost _default_:443>\nSSLEngine on\n</VirtualHost>', ['TLSEngine 443'], []),
    ('<VirtualHost www.example.org:443>\nSSLEngine on\n</VirtualHost>',
     ['not a numeric address:port'], ['TLSEngine']),
    ('Listen 8443\nSSLEngine on', ['TLSEngine 8443'], []),
    ('SSLFoo bar', ['not a mod_ssl directive ssl2tls knows'], ['SSLFoo']),
    ('SSLRequire %{SSL_CLIENT_S_DN_O} eq "Snake Oil, Ltd."', ['Require expr'], ['SSLRequire']),
]


@pytest.mark.parametrize('source,present,absent', SNIPPETS)
def test_directive_mapping(tmp_path, source, present, absent):
    conf = tmp_path / 'in.conf'
    conf.write_text(source + '\n')
    out, err = convert(str(conf))
    for text in present:
        assert text in out, out
    active = '\n'.join(directives(out))
    for text in absent:
        assert text not in active, out
    # every SSL* directive is gone from the active lines
    assert not re.search(r'^\s*SSL\w+', active, re.M | re.I), out
    assert re.search(r'\d+ converted, \d+ commented \(no equivalent\), \d+ need attention',
                     err), err


def test_no_servername(tmp_path):
    """A TLS vhost without a name served every SNI under mod_ssl; under strict SNI it does
    not, which the converted file and the summary say."""
    conf = tmp_path / 'in.conf'
    conf.write_text('<VirtualHost *:8443>\nSSLEngine on\n</VirtualHost>\n'
                    '<VirtualHost *:8444>\nServerAlias x.test\nSSLEngine on\n</VirtualHost>\n')
    out, err = convert(str(conf))
    assert out.count('no ServerName here') == 1, out
    assert re.search(r'in\.conf:1: a TLS <VirtualHost> without ServerName', err), err


@pytest.mark.parametrize('around,flagged', [
    ('', True),
    ('SSLProxyCACertificateFile /c/ca.pem\n', True),
    ('SSLProxyVerify optional\n', True),
    # settings inherited from the server config count
    ('SSLProxyVerify require\n', False),
    ('SSLProxyCACertificateFile /c/ca.pem\nSSLProxyVerify require\n', False),
])
def test_proxy_verification_flagged(tmp_path, around, flagged):
    """mod_ssl verified no backend by default, mod_tls always does: an SSLProxyEngine
    where mod_ssl did not verify needs attention."""
    conf = tmp_path / 'in.conf'
    conf.write_text(around + '<VirtualHost *:80>\nSSLProxyEngine on\n</VirtualHost>\n')
    out, err = convert(str(conf))
    assert ('against the system CAs' in out) == flagged, out
    assert ('check TLSProxyCA' in err) == flagged, err


def test_engine_once_per_address(tmp_path):
    conf = tmp_path / 'in.conf'
    conf.write_text(''.join(f'<VirtualHost *:8443>\nServerName {n}\nSSLEngine on\n'
                            '</VirtualHost>\n' for n in ('a', 'b', 'c')))
    out, _ = convert(str(conf))
    active = directives(out)
    assert active.count('TLSEngine 8443') == 1, out
    # before the first <VirtualHost>, at server level
    assert active.index('TLSEngine 8443') < active.index('<VirtualHost *:8443>'), out


def test_usage_and_executable():
    assert os.access(TOOL, os.X_OK)
    with open(TOOL) as f:
        assert f.readline().strip() == '#!/usr/bin/python3'
    p = subprocess.run([TOOL], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and 'usage: ssl2tls' in p.stderr, p
    p = subprocess.run([TOOL, '--help'], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and '-O DIR' in p.stdout, p
    conf = os.path.join(harness.mkdtemp('tls-ssl2tls-'), 'in.conf')
    harness.write_file(conf, 'SSLHonorCipherOrder on\nSSLRandomSeed startup builtin\n')
    p = run_tool('-v', conf)
    assert p.returncode == 0 and re.search(r'converted:\n  .*in\.conf:1: SSLHonorCipherOrder on\n'
                                           r'ssl2tls: commented:\n  .*in\.conf:2: SSLRandom',
                                           p.stderr), p.stderr
    p = run_tool('-q', conf)
    assert p.returncode == 0 and not p.stderr and 'TLSHonorClientOrder off' in p.stdout, p
    p = run_tool('/no/such/file.conf')
    assert p.returncode == 1 and 'cannot read /no/such/file.conf' in p.stderr, p


def test_never_writes_input(tmp_path):
    conf = tmp_path / 'in.conf'
    conf.write_text('SSLProtocol all -SSLv3\n')
    before = digest(str(tmp_path))
    p = run_tool('-o', str(conf), str(conf))
    assert p.returncode == 1 and 'never writes its input' in p.stderr, p
    out = tmp_path / 'out'
    p = run_tool('-O', str(tmp_path), str(conf))
    assert p.returncode == 1, p
    assert digest(str(tmp_path)) == before
    p = run_tool('-O', str(out), str(conf))
    assert p.returncode == 0, p.stderr
    assert 'TLSProtocol TLSv1.2+' in (out / 'in.conf').read_text()
    assert {k: v for k, v in digest(str(tmp_path)).items() if '/out/' not in k} == before


# --------------------------------------------------------------------------
# whole configurations: apache2 -t, and requests

def check_conf(apache_factory, text, **kw):
    # a converted LoadModule ssl_module loads mod_tls itself; otherwise the harness does
    kw.setdefault('tls', 'LoadModule tls_module' not in text)
    a = apache_factory(text, **kw)
    rc, out = a.configtest()
    assert rc == 0, f'{out}\n---- converted:\n{text}'
    return a


def test_debian_default_ssl(apache_factory, tmp_path, ca, docroot, allow_log):
    """Debian's own default-ssl.conf and mods-available/ssl.{load,conf}, ports.conf: the
    converted configuration passes apache2 -t, starts and serves https."""
    port = harness.free_port()
    cert, key = ca.issue(['localhost', 'a.test'])
    root = tmp_path / 'root'
    for rel in ('mods-available/ssl.load', 'mods-available/ssl.conf', 'ports.conf',
                'sites-available/default-ssl.conf'):
        (root / os.path.dirname(rel)).mkdir(parents=True, exist_ok=True)
        with open(debian_file(rel)) as f:
            text = f.read()
        text = (text.replace('/etc/ssl/certs/ssl-cert-snakeoil.pem', cert)
                .replace('/etc/ssl/private/ssl-cert-snakeoil.key', key)
                .replace('443', str(port)).replace('Listen 80\n', '')
                .replace('/var/www/html', docroot))
        (root / rel).write_text(text)
    (root / 'logs').mkdir()
    (root / 'run').mkdir()
    (root / 'apache2.conf').write_text(
        f'Define APACHE_LOG_DIR {root}/logs\nDefine APACHE_RUN_DIR {root}/run\n'
        'Include mods-available/ssl.load\nInclude mods-available/ssl.conf\n'
        'Include ports.conf\nInclude sites-available/*.conf\n')
    before = digest(str(root))
    out, err = convert(str(root / 'apache2.conf'))
    assert digest(str(root)) == before
    active = directives(out)
    assert f'TLSEngine {port}' in active
    assert f'TLSCertificate {cert} {key}' in active
    assert f'LoadModule tls_module {harness.MODULE_PATH}' in active
    assert 'TLSProtocol TLSv1.2+' in active and 'TLSSessionTickets off' in active
    assert any(a.startswith('TLSSessionCache shmcb:') for a in active), out
    assert '<IfModule tls_module>' in active and f'Listen {port}' in active
    assert not [a for a in active if re.match(r'SSL|<IfModule (mod_ssl|ssl_module)', a)], out
    assert re.search(r'^ssl2tls: \d+ converted, \d+ commented', err, re.M), err
    a = check_conf(apache_factory, out)
    a.start()
    r = harness.curl(ca, port, '/index.html', host='localhost')
    assert (r.rc, r.status) == (0, 200) and b'mod_tls test index' in r.body, r


def test_client_certificates(apache_factory, tmp_path, ca, docroot):
    """SSLVerifyClient require + SSLCACertificateFile + SSLUserName + SSLOptions: converted,
    a client with a certificate gets in as its user, one without is refused."""
    port = harness.free_port()
    cert, key = ca.issue(['a.test'])
    ccert, ckey = ca.issue(['alice'], client=True, cn='alice')
    conf = tmp_path / 'site.conf'
    conf.write_text(f"""
LoadModule ssl_module {harness.MODULES_DIR}/mod_ssl.so
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName a.test
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
    SSLCACertificateFile {ca.cert_path}
    SSLVerifyClient require
    SSLVerifyDepth 3
    SSLUserName SSL_CLIENT_S_DN_CN
    SSLOptions +StdEnvVars +FakeBasicAuth +StrictRequire
</VirtualHost>
""")
    out, err = convert(str(conf))
    assert 'TLSClientCertificate required' in out and 'TLSUserName SSL_CLIENT_S_DN_CN' in out
    assert 'FakeBasicAuth' in err, err
    a = check_conf(apache_factory, out)
    a.start()
    r = harness.curl(ca, port, '/cgi-bin/env.py', args=['--cert', ccert, '--key', ckey])
    assert (r.rc, r.status) == (0, 200), r
    env = json.loads(r.body)
    assert env.get('REMOTE_USER') == 'alice' and env.get('SSL_CLIENT_VERIFY') == 'SUCCESS', env
    r = harness.curl(ca, port, '/index.html')
    assert r.rc != 0 and r.status != 200, r


def test_proxy_to_tls_backend(apache_factory, tmp_path, ca, docroot):
    """SSLProxyEngine with a CA and verification: converted to TLSProxy*, the front proxies a
    request to a TLS backend (a second converted vhost) and answers with its page."""
    front, back = harness.free_port(), harness.free_port()
    cert, key = ca.issue(['a.test'])
    bcert, bkey = ca.issue(['localhost'])
    conf = tmp_path / 'proxy.conf'
    conf.write_text(f"""
{PROXY_MODULES}
<IfModule !mod_ssl.c>
LoadModule ssl_module {harness.MODULES_DIR}/mod_ssl.so
</IfModule>
Listen 127.0.0.1:{front}
Listen 127.0.0.1:{back}
<VirtualHost 127.0.0.1:{front}>
    ServerName a.test
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
    SSLProxyEngine on
    SSLProxyCACertificateFile {ca.cert_path}
    SSLProxyVerify require
    SSLProxyCheckPeerName on
    SSLProxyCheckPeerExpire on
    SSLProxyProtocol all -SSLv3 -TLSv1 -TLSv1.1
    ProxyPass /be/ https://localhost:{back}/
</VirtualHost>
<VirtualHost 127.0.0.1:{back}>
    ServerName localhost
    SSLEngine on
    SSLCertificateFile {bcert}
    SSLCertificateKeyFile {bkey}
</VirtualHost>
""")
    out, _ = convert(str(conf))
    active = directives(out)
    assert 'TLSProxyEngine on' in active and f'TLSProxyCA {ca.cert_path}' in active
    assert f'TLSEngine 127.0.0.1:{front}' in active and f'TLSEngine 127.0.0.1:{back}' in active
    a = check_conf(apache_factory, out)
    a.start()
    r = harness.curl(ca, front, '/be/index.html')
    assert (r.rc, r.status) == (0, 200) and b'mod_tls test index' in r.body, r


def test_protocols_ciphers_and_sni(apache_factory, tmp_path, ca):
    """Three name-based vhosts on one port, each with its own certificate (one with RSA and
    ECDSA), one with protocol and cipher settings, below server-wide session, stapling and
    other settings: converted, each name is served with its certificate, and the restricted
    one negotiates what its SSLProtocol and SSLCipherSuite lines allowed, in its order."""
    port = harness.free_port()
    certs = {n: ca.issue([n]) for n in ('a.test', 'b.test', 'c.test')}
    ec_cert, ec_key = ca.issue(['a.test'], key_type='ec')
    vhosts = []
    for n, (cert, key) in certs.items():
        extra = ''
        if n == 'a.test':
            extra = f'    SSLCertificateFile {ec_cert}\n    SSLCertificateKeyFile {ec_key}\n'
        if n == 'c.test':
            extra = """    SSLProtocol -all +TLSv1.2 +TLSv1.3
    SSLCipherSuite ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256
    SSLCipherSuite TLSv1.3 TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256
    SSLHonorCipherOrder on
"""
        vhosts.append(f"""<VirtualHost *:{port}>
    ServerName {n}
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
{extra}</VirtualHost>
""")
    conf = tmp_path / 'sni.conf'
    conf.write_text(f"""Listen 127.0.0.1:{port}
SSLProtocol all -SSLv3
SSLCipherSuite HIGH:!aNULL
SSLRandomSeed startup builtin
SSLPassPhraseDialog builtin
SSLSessionCache shmcb:{tmp_path}/ssl_scache(512000)
SSLSessionCacheTimeout 600
SSLStrictSNIVHostCheck off
SSLCompression off
SSLInsecureRenegotiation off
SSLUseStapling on
SSLStaplingCache shmcb:{tmp_path}/ssl_stapling(32768)
""" + ''.join(vhosts))
    out, _ = convert(str(conf))
    active = directives(out)
    assert active.count(f'TLSEngine {port}') == 1, out
    assert 'TLSHonorClientOrder off' in active
    assert f'TLSSessionCache shmcb:{tmp_path}/tls_scache(512000)' in active
    assert 'MDStapling on' in active
    a = check_conf(apache_factory, out)
    a.start()
    for n in certs:
        r = harness.curl(ca, port, '/index.html', host=n)
        assert (r.rc, r.status) == (0, 200), r
        assert harness.s_client(ca, port, n).names[1] == [n]
    # a.test has both keys: a client for ECDSA only gets the ECDSA certificate
    r = harness.s_client(ca, port, 'a.test',
                         ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'])
    assert r.cipher == 'ECDHE-ECDSA-AES128-GCM-SHA256', r
    # c.test: the server's order (SSLHonorCipherOrder on), only what the strings allowed
    r = harness.s_client(ca, port, 'c.test', ['-tls1_2'])
    assert r.protocol == 'TLSv1.2' and r.cipher == 'ECDHE-RSA-CHACHA20-POLY1305', r
    r = harness.s_client(ca, port, 'c.test', ['-tls1_3'])
    assert r.protocol == 'TLSv1.3' and r.cipher == 'TLS_CHACHA20_POLY1305_SHA256', r
    for args in (['-tls1_2', '-cipher', 'ECDHE-RSA-AES256-GCM-SHA384'],
                 ['-tls1_3', '-ciphersuites', 'TLS_AES_256_GCM_SHA384']):
        r = harness.s_client(ca, port, 'c.test', args)
        assert not r.handshake_ok, r
    # the other names still get what mod_ssl's server-wide HIGH:!aNULL allowed: everything
    r = harness.s_client(ca, port, 'b.test', ['-tls1_3', '-ciphersuites',
                                              'TLS_AES_256_GCM_SHA384'])
    assert r.cipher == 'TLS_AES_256_GCM_SHA384', r


def make_tree(root, cert, key, port):
    """A ServerRoot with includes: a glob, IncludeOptional with and without matches, a
    folder, ServerRoot-relative and absolute paths, a vhost split across files."""
    files = {
        'main.conf': f"""Listen 127.0.0.1:{port}
Define CONFD conf.d
Include ${{CONFD}}/*.conf
IncludeOptional optional/*.conf
IncludeOptional nothing-here/*.conf
Include {root}/sites
""",
        'conf.d/10-ssl.conf': """<IfModule ssl_module>
    SSLProtocol -all +TLSv1.2 +TLSv1.3
    SSLSessionCacheTimeout 600
</IfModule>
""",
        'conf.d/20-other.conf': 'ServerSignature Off\n',
        'optional/cache.conf': 'SSLSessionCache none\n',
        'sites/a.conf': f"""<VirtualHost 127.0.0.1:{port}>
    ServerName a.test
    SSLEngine on
    Include snippets/cert.conf
</VirtualHost>
""",
        'snippets/cert.conf': f'SSLCertificateFile {cert}\nSSLCertificateKeyFile {key}\n',
    }
    for rel, text in files.items():
        (root / os.path.dirname(rel)).mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_includes_combined_and_split(apache_factory, tmp_path, ca):
    port = harness.free_port()
    cert, key = ca.issue(['a.test'])
    root = tmp_path / 'root'
    make_tree(root, cert, key, port)
    before = digest(str(root))
    out, err = convert(str(root / 'main.conf'))
    active = directives(out)
    for want in ('TLSProtocol TLSv1.2+', 'TLSSessionCacheTimeout 600', 'TLSSessionCache none',
                 f'TLSEngine 127.0.0.1:{port}', f'TLSCertificate {cert} {key}',
                 'ServerSignature Off'):
        assert want in active, out
    assert not [a for a in active if a.startswith(('Include', 'SSL'))], out
    assert f'# ssl2tls: begin {root}/snippets/cert.conf' in out
    a = check_conf(apache_factory, out)
    a.start()
    r = harness.curl(ca, port, '/index.html')
    assert (r.rc, r.status) == (0, 200), r
    a.stop()
    # per-file output, mirroring the tree; it works in place with the folder as ServerRoot
    split = tmp_path / 'split'
    p = run_tool('-O', str(split), '-d', str(root), str(root / 'main.conf'))
    assert p.returncode == 0, p.stderr
    assert digest(str(root)) == before
    got = sorted(os.path.relpath(f, split) for f in digest(str(split)))
    assert got == sorted(os.path.relpath(f, root) for f in before), got
    assert 'TLSProtocol TLSv1.2+' in (split / 'conf.d/10-ssl.conf').read_text()
    assert 'TLSCertificate' in (split / 'snippets/cert.conf').read_text()
    main = (split / 'main.conf').read_text()
    assert 'Include ${CONFD}/*.conf' in main
    # the absolute Include points into the original tree: point it at the copy for the test
    main = main.replace(f'Include {root}/sites', f'Include {split}/sites')
    check_conf(apache_factory, f'ServerRoot "{split}"\n' + main)
    shutil.rmtree(split)


# the modules a fresh Debian install enables, and those a2enmod ssl adds
DEBIAN_MODS = ['access_compat', 'alias', 'auth_basic', 'authn_core', 'authn_file',
               'authz_core', 'authz_host', 'authz_user', 'autoindex', 'deflate', 'dir', 'env',
               'filter', 'mime', 'mpm_event', 'negotiation', 'reqtimeout', 'setenvif',
               'socache_shmcb', 'ssl']


def test_debian_tree(tmp_path, ca, docroot):
    """Debian's whole /etc/apache2 as the package ships it, with default-ssl enabled by
    links as a2enmod/a2ensite make them: converted one file per input file (links kept),
    checked and started as apache2ctl would, with the folder as ServerRoot."""
    port, plain = harness.free_port(), harness.free_port()
    cert, key = ca.issue(['localhost'])
    root = tmp_path / 'apache2'
    shutil.copytree(os.path.dirname(debian_file('apache2.conf')), root, symlinks=True)
    # the name clients use (Debian's default-ssl.conf inherits it; see test_no_servername)
    main = root / 'apache2.conf'
    main.write_text(main.read_text() + f'\nServerName localhost\n<Directory {docroot}>\n'
                    '    Require all granted\n</Directory>\n')
    site = root / 'sites-available/default-ssl.conf'
    site.write_text(site.read_text()
                    .replace('/etc/ssl/certs/ssl-cert-snakeoil.pem', cert)
                    .replace('/etc/ssl/private/ssl-cert-snakeoil.key', key)
                    .replace('*:443', f'*:{port}').replace('/var/www/html', docroot))
    ports = root / 'ports.conf'
    ports.write_text(ports.read_text().replace('Listen 443', f'Listen 127.0.0.1:{port}')
                     .replace('Listen 80', f'Listen 127.0.0.1:{plain}'))
    for m in DEBIAN_MODS:
        for ext in ('load', 'conf'):
            if (root / f'mods-available/{m}.{ext}').exists():
                os.symlink(f'../mods-available/{m}.{ext}', root / f'mods-enabled/{m}.{ext}')
    os.symlink('../sites-available/default-ssl.conf', root / 'sites-enabled/default-ssl.conf')
    run = tmp_path / 'run'
    for d in ('run', 'lock', 'log'):
        (run / d).mkdir(parents=True)
    env = dict(harness.HTTPD_ENV, APACHE_RUN_USER='www-data', APACHE_RUN_GROUP='www-data',
               APACHE_PID_FILE=str(run / 'run/apache2.pid'), APACHE_RUN_DIR=str(run / 'run'),
               APACHE_LOCK_DIR=str(run / 'lock'), APACHE_LOG_DIR=str(run / 'log'))
    before = digest(str(root))
    out = tmp_path / 'converted'
    p = run_tool('-O', str(out), '--module-path', harness.MODULE_PATH,
                 str(root / 'apache2.conf'))
    assert p.returncode == 0, p.stderr
    assert digest(str(root)) == before
    # links stay links, to the converted files
    assert os.readlink(out / 'sites-enabled/default-ssl.conf') == \
        '../sites-available/default-ssl.conf'
    assert os.readlink(out / 'mods-enabled/ssl.load') == '../mods-available/ssl.load'
    text = (out / 'sites-available/default-ssl.conf').read_text()
    assert f'TLSEngine {port}' in directives(text) and 'SSLEngine on' not in directives(text)
    assert 'LoadModule tls_module' in (out / 'mods-available/ssl.load').read_text()
    assert '<IfModule tls_module>' in (out / 'ports.conf').read_text()
    assert not [line for f in digest(str(out)) for line in directives(open(f).read())
                if line.startswith('SSL')]
    cmd = [harness.HTTPD, '-d', str(out), '-f', str(out / 'apache2.conf')]
    t = subprocess.run(cmd + ['-t'], capture_output=True, text=True, env=env, timeout=60)
    assert t.returncode == 0, t.stderr
    t = subprocess.run(cmd + ['-k', 'start'], capture_output=True, text=True, env=env,
                       timeout=60)
    assert t.returncode == 0, t.stderr
    pid = None
    try:
        for _ in range(100):
            if (run / 'run/apache2.pid').exists():
                pid = int((run / 'run/apache2.pid').read_text())
                break
            time.sleep(0.1)
        assert pid and harness.wait_port('127.0.0.1', port, 10), \
            (run / 'log/error.log').read_text()
        r = harness.curl(ca, port, '/index.html', host='localhost')
        assert (r.rc, r.status) == (0, 200) and b'mod_tls test index' in r.body, r
    finally:
        harness.Apache.stop_pid(pid)
    log = (run / 'log/error.log').read_text()
    assert not re.search(r'\[(\w+:)?(warn|error|crit|alert|emerg)\]', log), log

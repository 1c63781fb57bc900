"""Configurations written for the earlier mod_tls (httpd 2.4.52 to 2.4.62) keep working:
what it accepted and this module would otherwise refuse. Cipher names, several addresses per
<VirtualHost> and TLSEngine without Listen have their tests with their features (05, 09, 02)."""
import json
import re

import pytest

import harness


@pytest.fixture(scope='module')
def server(docroot, module_path, ca):
    cert, key = ca.issue(['a.test'])
    port, legacy = harness.free_port(), harness.free_port()
    a = harness.Apache(f"""
Listen 127.0.0.1:{port}
Listen 127.0.0.1:{legacy}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
  TLSOptions +StdEnvVars +ExportCertData
  <Location /cgi-bin/>
    TLSOptions StdEnvVars
  </Location>
  <Location /defaults/>
    TLSOptions Defaults
  </Location>
  <Location /defaults-plus/>
    TLSOptions Defaults +ExportCertData
  </Location>
  <Location /added/>
    TLSOptions -StdEnvVars
  </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:{legacy}>
  # the earlier module took TLSEngine inside <VirtualHost>
  TLSEngine 127.0.0.1:{legacy}
  ServerName a.test
  TLSCertificate {cert} {key}
  TLSProtocol TLSv0x0301+
</VirtualHost>
Alias /defaults/ "{docroot}/cgi-bin/"
Alias /defaults-plus/ "{docroot}/cgi-bin/"
Alias /added/ "{docroot}/cgi-bin/"
<Location ~ "^/(defaults|defaults-plus|added)/">
  SetHandler cgi-script
</Location>
""", docroot, name='earlier', expect=[r'TLSProtocol TLSv0x0301\+'])
    a.port, a.legacy = port, legacy
    a.start()
    yield a
    a.stop()


def env_of(ca, port, path):
    r = harness.curl(ca, port, path, args=['--http1.1'])
    assert (r.rc, r.status) == (0, 200), r
    return json.loads(r.body)


@pytest.mark.parametrize('path,std,cert', [
    # a name without + or - replaces what the section inherits, as SSLOptions does
    ('/cgi-bin/env.py', True, False),
    ('/defaults/env.py', False, False),
    ('/defaults-plus/env.py', False, True),
    # signed names change the inherited options
    ('/added/env.py', False, True),
])
def test_options_as_sslopts(ca, server, path, std, cert):
    env = env_of(ca, server.port, path)
    assert env.get('HTTPS') == 'on'
    assert ('SSL_PROTOCOL' in env) == std, env
    assert ('SSL_SERVER_CERT' in env) == cert, env


def test_engine_in_vhost_and_old_minimum(ca, server):
    """TLSEngine inside <VirtualHost> serves TLS there; TLSv0x0301+ starts, serves TLS 1.2
    and up (never less), and says so once at startup with the line."""
    r = harness.s_client(ca, server.legacy, 'a.test', ['-tls1_2'])
    assert r.protocol == 'TLSv1.2', r
    r = harness.s_client(ca, server.legacy, 'a.test', ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'])
    assert not r.handshake_ok, r
    line = server.line_of('TLSProtocol TLSv0x0301+')
    warns = [w for w in server.log_lines() if 'TLSProtocol TLSv0x0301+' in w]
    assert len(warns) == 1 and re.search(rf'httpd\.conf:{line}\b.*TLS 1\.2 is the minimum',
                                         warns[0]), warns


@pytest.mark.parametrize('value', ['TLSv1.0+', 'TLSv1.1+', 'v0x0302+'])
def test_old_minimum_starts(apache_factory, ca, certs, value, allow_log):
    cert, key = certs['a']
    port = harness.free_port()
    allow_log(re.escape(f'TLSProtocol {value}'))
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
  TLSProtocol {value}
</VirtualHost>
""")
    assert a.configtest()[0] == 0
    a.start()
    assert harness.tls_info(ca, port)['version'] == 'TLSv1.3'
    r = harness.s_client(ca, port, 'a.test', ['-tls1_2'])
    assert r.protocol == 'TLSv1.2', r
    r = harness.s_client(ca, port, 'a.test', ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'])
    assert not r.handshake_ok and re.search(r'alert number (40|70)\b', r.stderr), r
    # said once at startup, with the line
    line = a.line_of(f'TLSProtocol {value}')
    warns = harness.lines_matching(a.error_log, re.escape(f'TLSProtocol {value}'))
    assert len(warns) == 1 and re.search(rf'\[tls:warn\].*httpd\.conf:{line}: .*TLS 1\.2 is the '
                                         r'minimum', warns[0]), a.read_log()


@pytest.mark.parametrize('value', ['+Defaults', 'NoSuch'])
def test_unknown_option_still_fails(apache_factory, certs, value):
    cert, key = certs['a']
    port = harness.free_port()
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
  TLSOptions {value}
</VirtualHost>
""")
    rc, out = a.configtest()
    assert rc != 0 and re.search(rf"unknown option '{re.escape(value)}'", out), out
    assert harness.conf_location_re(a.conf_path, a.line_of('TLSOptions')).search(out), out

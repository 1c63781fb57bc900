"""TLS to backends when <Location>s with different TLSProxy* settings proxy to one backend URL.

mod_proxy keeps backend connections per URL and hands a kept one to the next request for that
URL, whatever its scope. A request must never go out on a connection that was verified under
another scope's settings: before the fix, /unknown/ (a CA that does not know the backend) and
/name/ (a peer name the backend's certificate lacks) got 200 on the connection /ok/ had made.
Nor may the scopes cost each other requests: /ok/ and /deep/in/ (settings merged from two
sections) take turns on one backend URL, each always answered.
"""
import os

import pytest

import harness

MODULES = f"""
LoadModule proxy_module {harness.MODULES_DIR}/mod_proxy.so
LoadModule proxy_http_module {harness.MODULES_DIR}/mod_proxy_http.so
"""


@pytest.fixture(scope='module')
def servers(ca, docroot):
    d = harness.mkdtemp('tls-p22b-')
    back_doc = harness.make_docroot(os.path.join(d, 'back'))
    harness.write_file(os.path.join(back_doc, 'x.txt'), b'backend body\n')
    other = harness.CA('another test CA')
    bc, bk = ca.issue(['localhost'])
    fc, fk = ca.issue(['a.test'])
    bp, fp = harness.free_port(), harness.free_port()
    back = harness.Apache(f"""
Listen 127.0.0.1:{bp}
TLSEngine 127.0.0.1:{bp}
<VirtualHost 127.0.0.1:{bp}>
  ServerName localhost
  TLSCertificate {bc} {bk}
</VirtualHost>
""", docroot=back_doc, name='p22b-back', cgi=False)
    url = f'https://localhost:{bp}/'
    # one process, so that every request meets the same pool of kept connections
    front = harness.Apache(f"""
{MODULES}
{harness.ONE_CHILD}
Listen 127.0.0.1:{fp}
TLSEngine 127.0.0.1:{fp}
<VirtualHost 127.0.0.1:{fp}>
  ServerName a.test
  TLSCertificate {fc} {fk}
  TLSProxyEngine on
  TLSProxyCA {ca.cert_path}
  <Location /ok/>
    ProxyPass {url}
  </Location>
  <Location /unknown/>
    TLSProxyCA {other.cert_path}
    ProxyPass {url}
  </Location>
  <Location /name/>
    TLSProxyPeerName wrong.test
    ProxyPass {url}
  </Location>
  <Location /deep/>
    TLSProxyProtocol TLSv1.3+
  </Location>
  <Location /deep/in/>
    TLSProxyCiphersPrefer TLS_CHACHA20_POLY1305_SHA256
    ProxyPass {url}
  </Location>
</VirtualHost>
""", docroot=docroot, name='p22b-front', cgi=False, http2=False,
        expect=[r'MTLS00035', r'AH01084', r'AH01097', r'AH00898', r'AH01102'])
    back.start()
    front.start()
    yield front, fp
    front.stop()
    back.stop()


def test_settings_merged_from_two_sections(ca, servers):
    """/deep/in/ merges two <Location>s with TLSProxy* lines over the vhost: a set of settings
    startup did not build (it builds each section over its server), made when first met. It
    and /ok/ take turns on the backend URL they share, and neither is ever refused."""
    front, port = servers
    offset = front.log_size()
    conn = harness.HTTPSConn(ca, port, 'a.test')
    try:
        for path in ['/deep/in/x.txt', '/ok/x.txt'] * 3:
            assert _get(ca, port, conn, path) == (200, b'backend body\n'), path
    finally:
        conn.close()
    assert not harness.lines_matching(front.error_log, r'MTLS000(35|37)', offset)


def _get(ca, port, conn, path):
    conn.request('GET', path, headers={'Host': 'a.test'})
    r = conn.getresponse()
    return r.status, r.read()


@pytest.mark.parametrize('strict, reason', [
    ('/unknown/', 'UnknownIssuer'),
    ('/name/', 'UnrecognisedName'),   # the backend's strict SNI answers before rustls checks
])
def test_a_kept_connection_is_not_used_for_a_stricter_scope(ca, servers, strict, reason):
    front, port = servers
    conn = harness.HTTPSConn(ca, port, 'a.test')
    try:
        offset = front.log_size()
        assert _get(ca, port, conn, '/ok/x.txt') == (200, b'backend body\n')
        # the connection /ok/ made is kept; the stricter scope must not get through on it,
        # and a fresh connection under its own settings fails as it should
        for _ in range(2):
            status, _body = _get(ca, port, conn, f'{strict}x.txt')
            assert status == 502, f'{strict} answered {status} on /ok/\'s backend connection'
        assert _get(ca, port, conn, '/ok/x.txt') == (200, b'backend body\n')
    finally:
        conn.close()
    # each strict request got a connection of its own, verified under its own settings; and
    # mod_proxy, told the kept one was closed, never had a request refused on it
    lines = harness.lines_matching(front.error_log, r'MTLS00035', offset)
    assert len(lines) == 2 and all(reason in l for l in lines), lines

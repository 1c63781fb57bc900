"""SNI: selecting the virtual host, strict SNI, default vhost, 421, names that are not
host names."""
import re
import ssl

import pytest

import harness


def _sni_body(port, ca, strict=None):
    a_cert, a_key = ca.issue(['a.test'])
    b_cert, b_key = ca.issue(['b.test', 'www.b.test'])
    cd_cert, cd_key = ca.issue(['c.test', 'd.test'])
    strict_line = f'TLSStrictSNI {strict}' if strict else ''
    return f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
{strict_line}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {a_cert} {a_key}
  Header always set X-VHost a
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName b.test
  ServerAlias www.b.test
  TLSCertificate {b_cert} {b_key}
  Header always set X-VHost b
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName c.test
  TLSCertificate {cd_cert} {cd_key}
  Header always set X-VHost c
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName d.test
  TLSCertificate {cd_cert} {cd_key}
  Header always set X-VHost d
</VirtualHost>
"""


def _start(docroot, ca, strict, name):
    port = harness.free_port()
    a = harness.Apache(_sni_body(port, ca, strict), docroot, name=name)
    a.port = port
    a.start()
    return a


@pytest.fixture(scope='module')
def strict(docroot, module_path, ca):
    # TLSStrictSNI not given: on is the default
    a = _start(docroot, ca, None, 'sni-strict')
    yield a
    a.stop()


@pytest.fixture(scope='module')
def lax(docroot, module_path, ca):
    a = _start(docroot, ca, 'off', 'sni-lax')
    yield a
    a.stop()


@pytest.mark.parametrize('name,names,vhost', [
    ('a.test', ['a.test'], 'a'),
    ('b.test', ['b.test', 'www.b.test'], 'b'),
    ('www.b.test', ['b.test', 'www.b.test'], 'b'),
    ('c.test', ['c.test', 'd.test'], 'c'),
    ('d.test', ['c.test', 'd.test'], 'd'),
])
def test_sni_selects_vhost(ca, strict, name, names, vhost):
    info = harness.tls_info(ca, strict.port, name)
    assert info['names'] == names
    status, headers, body = harness.https_get(ca, strict.port, '/hello.txt', name)
    assert status == 200
    assert headers.get('X-VHost') == vhost
    r = harness.s_client(ca, strict.port, name)
    assert r.handshake_ok, r
    assert r.names[1] == names


def test_sni_case_insensitive(ca, strict):
    info = harness.tls_info(ca, strict.port, 'B.Test')
    assert info['names'] == ['b.test', 'www.b.test']


def test_curl_sni(ca, strict):
    for host, vhost in (('a.test', 'a'), ('b.test', 'b')):
        r = harness.curl(ca, strict.port, '/hello.txt', host=host,
                         args=['--http1.1', '-D', '-'])
        assert r.rc == 0, r
        assert r.status == 200
        assert f'x-vhost: {vhost}' in r.text.lower()


def test_strict_unknown_name_refused_python(ca, strict):
    with pytest.raises(ssl.SSLError) as exc:
        harness.tls_info(ca, strict.port, 'unknown.test', check_hostname=False)
    assert 'UNRECOGNIZED_NAME' in str(exc.value).upper()


def test_strict_unknown_name_refused_s_client(ca, strict):
    r = harness.s_client(ca, strict.port, 'unknown.test', verify=False)
    assert not r.handshake_ok, r
    assert ('unrecognized name' in r.stderr or 'alert number 112' in r.stderr), r.stderr


@pytest.mark.parametrize('which', ['strict', 'lax'])
def test_no_sni_gets_default_vhost(ca, request, which):
    server = request.getfixturevalue(which)
    info = harness.tls_info(ca, server.port, None)
    assert info['names'] == ['a.test']
    r = harness.s_client(ca, server.port, None)
    assert r.handshake_ok, r
    assert r.names[1] == ['a.test']
    status, headers, _ = harness.https_get(ca, server.port, '/hello.txt', None)
    assert status == 200
    assert headers.get('X-VHost') == 'a'


def test_lax_unknown_name_gets_default(ca, lax):
    info = harness.tls_info(ca, lax.port, 'unknown.test', check_hostname=False)
    assert info['names'] == ['a.test']
    status, headers, _ = harness.https_get(ca, lax.port, '/hello.txt', 'unknown.test',
                                           check_hostname=False)
    assert status == 200
    assert headers.get('X-VHost') == 'a'


def test_lax_known_names_still_selected(ca, lax):
    assert harness.tls_info(ca, lax.port, 'b.test')['names'] == ['b.test', 'www.b.test']


@pytest.mark.parametrize('sni,host', [('a.test', 'b.test'), ('b.test', 'a.test'),
                                      ('a.test', 'c.test')])
def test_misdirected_request(ca, strict, sni, host):
    status, _, _ = harness.https_get(ca, strict.port, '/hello.txt', sni, host=host)
    assert status == 421


def test_misdirected_request_curl(ca, strict):
    r = harness.curl(ca, strict.port, '/hello.txt', host='a.test',
                     args=['--http1.1', '-H', 'Host: b.test'])
    assert r.rc == 0, r
    assert r.status == 421


@pytest.mark.parametrize('sni,host,vhost', [('c.test', 'd.test', 'd'),
                                            ('d.test', 'c.test', 'c'),
                                            ('b.test', 'www.b.test', 'b')])
def test_same_tls_settings_allowed(ca, strict, sni, host, vhost):
    status, headers, body = harness.https_get(ca, strict.port, '/hello.txt', sni, host=host)
    assert status == 200
    assert headers.get('X-VHost') == vhost
    assert body == b'Hello, TLS!\n'


def test_host_header_with_port(ca, strict):
    status, headers, _ = harness.https_get(ca, strict.port, '/hello.txt', 'b.test',
                                           host=f'b.test:{strict.port}')
    assert status == 200
    assert headers.get('X-VHost') == 'b'


# ---- an SNI that is not a DNS host name --------------------------------------------------

def _client_hello_with_sni(ca, name):
    """A real ClientHello (Python's ssl) with its server_name replaced by the bytes `name`,
    which Python itself would never send."""
    head, exts = harness.hello_extensions(harness.client_hello(ca, 'a.test'))
    assert [typ for typ, _ in exts].count(0) == 1, exts
    entry = b'\x00' + len(name).to_bytes(2, 'big') + name
    sni = len(entry).to_bytes(2, 'big') + entry
    return harness.hello_with_extensions(head, [(typ, sni if typ == 0 else data)
                                                for typ, data in exts])


DECODE_ERROR_ALERT = b'\x15\x03\x03\x00\x02\x02\x32'   # fatal decode_error (50)
RFC = ' is not a DNS host name (RFC 6066 section 3 wants a host name without port)'


@pytest.mark.parametrize('name,shown', [
    pytest.param(b'a.test:443', "'a.test:443'", id='port'),
    pytest.param(b'ctl\x01\x1b[0m\r\nname', "'ctl%01%1B[0m%0D%0Aname'", id='control'),
    pytest.param('b\u00e9.test'.encode(), "'b%C3%A9.test'", id='non-ascii'),
    pytest.param(b"q'uo\"te\\ 100%", "'q%27uo%22te%5C%20100%25'", id='quote-backslash'),
    pytest.param(b'a\x00b.test', "'a%00b.test'", id='nul'),
    pytest.param(b'', "''", id='empty'),
    pytest.param(b'x' * 300, "'" + 'x' * 64 + "...' (300 bytes)", id='long'),
])
def test_sni_not_a_host_name_refused_and_logged(ca, strict, name, shown):
    offset = strict.log_size()
    got = harness.exchange(strict.port, _client_hello_with_sni(ca, name))
    assert got.data == DECODE_ERROR_ALERT, got
    lines = strict.wait_log('refused: SNI', offset)
    assert len(lines) == 1, strict.read_log(offset)
    assert re.search(r'\[tls:info\] .*\] MTLS\d{5}: tls: connection from 127\.0\.0\.1 refused: SNI '
                     + re.escape(shown + RFC) + '$', lines[0]), lines[0]


@pytest.mark.parametrize('which', ['strict', 'lax'])
def test_sni_with_port_refused_s_client(ca, request, which):
    server = request.getfixturevalue(which)
    offset = server.log_size()
    r = harness.s_client(ca, server.port, f'a.test:{server.port}', verify=False)
    assert not r.handshake_ok, r
    assert 'decode error' in r.stderr or 'alert number 50' in r.stderr, r.stderr
    lines = server.wait_log('refused: SNI', offset)
    assert lines[0].endswith(
        f"tls: connection from 127.0.0.1 refused: SNI 'a.test:{server.port}'" + RFC), lines
    # the server is fine
    assert harness.tls_info(ca, server.port, 'b.test')['names'] == ['b.test', 'www.b.test']


def test_ip_literal_sni_is_no_sni(ca, strict):
    # rustls drops an IP address sent as SNI: the client is served as one that sent none
    offset = strict.log_size()
    r = harness.s_client(ca, strict.port, '127.0.0.1', verify=False)
    assert r.handshake_ok, r
    assert r.names[1] == ['a.test']
    # a refusal is logged while the ClientHello is read, before the answer s_client got
    assert not harness.lines_matching(strict.error_log, 'refused', offset), \
        strict.read_log(offset)

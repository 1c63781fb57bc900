"""ALPN and HTTP/2 via Apache's Protocols directive."""
import re
import subprocess

import pytest

import harness


@pytest.fixture(scope='module')
def server(docroot, module_path, ca):
    port = harness.free_port()
    a_cert, a_key = ca.issue(['a.test'])
    b_cert, b_key = ca.issue(['b.test'])
    a = harness.Apache(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  Protocols h2 http/1.1
  TLSCertificate {a_cert} {a_key}
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName b.test
  Protocols http/1.1
  TLSCertificate {b_cert} {b_key}
</VirtualHost>
""", docroot, name='alpn')
    a.port = port
    a.start()
    yield a
    a.stop()


def test_curl_h2(ca, server):
    r = harness.curl(ca, server.port, '/index.html', args=['--http2'])
    assert r.rc == 0, r
    assert (r.status, r.http_version) == (200, '2')
    assert r.text == harness.INDEX_HTML


def test_curl_h1(ca, server):
    r = harness.curl(ca, server.port, '/index.html', args=['--http1.1'])
    assert r.rc == 0, r
    assert (r.status, r.http_version) == (200, '1.1')
    assert r.text == harness.INDEX_HTML


@pytest.mark.parametrize('tls', ['1.2', '1.3'])
def test_curl_h2_tls_versions(ca, server, tls):
    r = harness.curl(ca, server.port, '/hello.txt',
                     args=['--http2', f'--tlsv{tls}', '--tls-max', tls])
    assert r.rc == 0, r
    assert (r.status, r.http_version) == (200, '2')


def test_python_alpn(ca, server):
    assert harness.tls_info(ca, server.port, 'a.test', alpn=['h2', 'http/1.1'])['alpn'] == 'h2'
    assert harness.tls_info(ca, server.port, 'a.test', alpn=['http/1.1'])['alpn'] == 'http/1.1'


def test_s_client_alpn(ca, server):
    r = harness.s_client(ca, server.port, 'a.test', ['-alpn', 'h2,http/1.1'])
    assert r.handshake_ok, r
    assert r.alpn == 'h2'


def test_h2load_many_streams(ca, server):
    n = 200
    p = subprocess.run(['h2load', '-n', str(n), '-c', '2', '-m', '20',
                        f'--connect-to=127.0.0.1:{server.port}',
                        f'https://a.test:{server.port}/hello.txt'],
                       capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert re.search(r'Application protocol: h2', out), out
    m = re.search(r'status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx', out)
    assert m, out
    assert [int(x) for x in m.groups()] == [n, 0, 0, 0], out
    m = re.search(r'requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, '
                  r'(\d+) failed, (\d+) errored', out)
    assert m, out
    assert int(m.group(4)) == n and int(m.group(5)) == 0 and int(m.group(6)) == 0, out


def test_curl_h2_multiplexed(ca, server):
    urls = [f'https://a.test:{server.port}/hello.txt'] * 20
    r = harness.curl(ca, server.port, urls=urls, args=['--http2', '--parallel',
                                                       '--parallel-max', '20'])
    assert r.rc == 0, r
    assert len(r.infos) == 20
    assert all(i['http_code'] == 200 and i['http_version'] == '2' for i in r.infos)
    assert sum(i['num_connects'] for i in r.infos) < 20


def test_h1_only_vhost_curl(ca, server):
    r = harness.curl(ca, server.port, '/index.html', host='b.test', args=['--http2'])
    assert r.rc == 0, r
    assert (r.status, r.http_version) == (200, '1.1')


def test_h1_only_vhost_s_client(ca, server):
    # nothing in common: mod_tls answers without ALPN (RFC 7301 would allow the
    # no_application_protocol alert too, but mod_tls leaves the choice to the client)
    r = harness.s_client(ca, server.port, 'b.test', ['-alpn', 'h2'])
    assert r.handshake_ok, r
    assert r.alpn is None and 'No ALPN negotiated' in r.stdout, r.stdout


def test_h1_only_vhost_python(ca, server):
    info = harness.tls_info(ca, server.port, 'b.test', alpn=['h2', 'http/1.1'])
    assert info['alpn'] == 'http/1.1'


def test_no_alpn_is_http1(ca, server):
    info = harness.tls_info(ca, server.port, 'a.test')
    assert info['alpn'] is None
    status, _, body = harness.https_get(ca, server.port, '/hello.txt')
    assert status == 200 and body == b'Hello, TLS!\n'


def test_h2_request_for_http1_only_vhost_is_misdirected(ca, docroot, module_path):
    """Two vhosts with the same certificate share TLS settings, but only one allows h2: a
    request for the other on an h2 connection gets 421, on http/1.1 it is served."""
    port = harness.free_port()
    cert, key = ca.issue(['a.test', 'b.test'])
    a = harness.Apache(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
TLSCertificate {cert} {key}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  Protocols h2 http/1.1
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName b.test
  Protocols http/1.1
</VirtualHost>
""", docroot, name='alpn-421')
    a.start()
    try:
        h2 = harness.curl(ca, port, '/hello.txt', host='a.test',
                          args=['--http2', '-H', 'Host: b.test'])
        assert (h2.rc, h2.http_version, h2.status) == (0, '2', 421), h2
        h1 = harness.curl(ca, port, '/hello.txt', host='a.test',
                          args=['--http1.1', '-H', 'Host: b.test'])
        assert (h1.rc, h1.status) == (0, 200), h1
    finally:
        a.stop()


def test_h2_streams_read_handshake_results(ca, docroot, module_path, apache_factory):
    """HTTP/2 runs requests on other threads than the connection's: every stream reads the
    client certificate and the TLS facts from the handshake's snapshot, all at once, while
    the connection itself moves a large download through rustls."""
    import json

    import clientcerts as cc
    pki = cc.Authority(cc.dn(CN='h2 client CA'), label='h2ca')
    client = pki.issue(cc.dn(CN='carol', O='Streams'))
    cert, key = ca.issue(['a.test'])
    size = 8 << 20
    harness.make_data_file(docroot, 'h2-8m.bin', size)
    port = harness.free_port()
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
H2MaxSessionStreams 100
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  Protocols h2 http/1.1
  TLSCertificate {cert} {key}
  TLSClientCA {pki.cert_path}
  TLSClientCertificate required
  TLSOptions +StdEnvVars +ExportCertData
</VirtualHost>
""")
    a.start()
    n = 40
    out = harness.mkdtemp('tls-h2-streams-')
    p = subprocess.run(
        ['curl', '-sS', '--resolve', f'a.test:{port}:127.0.0.1', '--cacert', ca.cert_path,
         '--http2', '--parallel', '--parallel-max', '50', '--max-time', '60',
         *client.curl_args(), '-w', '%{http_version} %{http_code} %{num_connects}\\n',
         '-o', '/dev/null', f'https://a.test:{port}/h2-8m.bin',
         '-o', f'{out}/env_#1.json', f'https://a.test:{port}/cgi-bin/env.py?[1-{n}]'],
        capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split()
    assert len(lines) == 3 * (n + 1), p.stdout
    assert set(lines[0::3]) == {'2'} and set(lines[1::3]) == {'200'}, p.stdout
    assert sum(int(x) for x in lines[2::3]) == 1, 'all streams on one connection'
    for i in range(1, n + 1):
        with open(f'{out}/env_{i}.json') as f:
            env = json.load(f)
        assert env['SSL_CLIENT_S_DN'] == 'CN=carol,O=Streams', env
        assert env['SSL_CLIENT_VERIFY'] == 'SUCCESS'
        assert env['SSL_CLIENT_CERT'].strip() == client.pem.strip()
        assert env['SSL_PROTOCOL'] in ('TLSv1.2', 'TLSv1.3')


def test_failed_protocol_switch_closes(ca, docroot, module_path, apache_factory, allow_log):
    """ALPN agreed on a protocol whose module then refuses the switch (mod_tlstest's
    x-no-switch): the connection closes, as with mod_ssl, instead of going on as HTTP/1.1
    while the client speaks the agreed protocol."""
    cert, key = ca.issue(['a.test'])
    port = harness.free_port()
    allow_log(r'AH02906', r'x-no-switch')
    a = apache_factory(f"""
{harness.test_module()}
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  Protocols x-no-switch http/1.1
  TLSCertificate {cert} {key}
</VirtualHost>
""")
    a.start()
    offset = a.log_size()
    # closed without a word: no HTTP/1.1 answer to a client that speaks x-no-switch
    # (request_until_close fails on no close; with or without close_notify varies)
    data, _ = harness.request_until_close(
        ca, port, b'GET /hello.txt HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n',
        alpn=['x-no-switch'])
    assert data == b'', data
    assert re.search(r"\[tls:error\].*x-no-switch", a.read_log(offset)), a.read_log(offset)
    # a client that offers only http/1.1 is served
    data, _ = harness.request_until_close(
        ca, port, b'GET /hello.txt HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n',
        alpn=['http/1.1'])
    assert data.startswith(b'HTTP/1.1 200') and data.endswith(b'Hello, TLS!\n'), data


@pytest.mark.parametrize('close', ['keepalive-timeout', 'graceful-stop', 'protocol-error'])
def test_h2_goaway_before_close_notify(ca, docroot, module_path, apache_factory, close):
    """However an h2 connection ends (idle past the keep-alive timeout, a graceful stop, the
    client's protocol error), mod_http2's GOAWAY reaches the client, and close_notify comes
    after it as the last thing on the connection, as with mod_ssl."""
    import threading

    import records as rc
    cert, key = ca.issue(['a.test'])
    port = harness.free_port()
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
KeepAliveTimeout 1
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  Protocols h2 http/1.1
  TLSCertificate {cert} {key}
</VirtualHost>
""", name='h2-goaway')
    a.start()
    conn = rc.RecordConn(ca, port, alpn=['h2'], timeout=15)
    try:
        assert conn.tls.selected_alpn_protocol() == 'h2'
        h2 = rc.H2Reader(conn)
        h2.start()
        conn.send(rc.h2_get(1, '/hello.txt'))
        h2.read_until(rc.h2_stream_ended(1))
        assert any(t == rc.H2_DATA and s == 1 for t, _, s, _ in h2.frames), h2.frames
        seen = len(h2.frames)
        stopper = None
        if close == 'graceful-stop':
            stopper = threading.Thread(target=a.stop)
            stopper.start()
        elif close == 'protocol-error':
            # SETTINGS belong to the connection, never to a stream
            conn.send(rc.h2_frame(rc.H2_SETTINGS, 0, 1))
        h2.read_until(lambda frames: False)
        if stopper:
            stopper.join()
    finally:
        conn.close()
    later = [t for t, _, _, _ in h2.frames[seen:]]
    assert rc.H2_GOAWAY in later, f'no GOAWAY; frames after the response: {later}'
    assert conn.closed == 'close_notify', conn.closed


def test_alpn_name_with_nul_is_not_taken_for_another(ca, server):
    """ALPN names travel with their length: 'h2<NUL>x' is not h2. Apache (C strings) must
    not see it as 'h2' and choose a protocol the client never offered; it is passed over,
    and the client's next name is served."""
    info = harness.tls_info(ca, server.port, 'a.test', alpn=['h2\x00x', 'http/1.1'])
    assert info['alpn'] == 'http/1.1', info
    status, _, body = harness.https_get(ca, server.port, '/hello.txt', alpn=['h2\x00x', 'http/1.1'])
    assert (status, body) == (200, b'Hello, TLS!\n')

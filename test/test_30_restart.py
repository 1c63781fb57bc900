"""Graceful and full restarts reload the TLS configuration, and the parent
does not grow with them; connections made before a graceful restart finish on the old one."""
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import time

import pytest

import clientcerts as cc
import harness


def _wait_names(ca, port, names, timeout=30):
    """Until the server's certificate has `names`: a restart under ASan on a loaded machine
    (the configuration read again, new children) can take several seconds."""
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        try:
            got = harness.tls_info(ca, port, 'a.test')['names']
            if got == names:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f'served names {got}, expected {names}')


@pytest.mark.parametrize('how', ['graceful', 'restart'])
def test_restart_reloads_certificate(apache_factory, ca, how):
    old = ca.issue(['a.test'])
    new = ca.issue(['a.test', 'new.a.test'])
    live = harness.mkdtemp('tls-live-')
    cert, key = f'{live}/live.crt', f'{live}/live.key'
    shutil.copy(old[0], cert)
    shutil.copy(old[1], key)
    port = harness.free_port()
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  Protocols h2 http/1.1
  TLSCertificate {cert} {key}
</VirtualHost>
""")
    a.start()
    pid = a.pid
    assert harness.tls_info(ca, port, 'a.test')['names'] == ['a.test']
    shutil.copy(new[0], cert)
    shutil.copy(new[1], key)
    a.signal(how)
    _wait_names(ca, port, ['a.test', 'new.a.test'])
    assert a.read_pid() == pid and a.alive()
    for proto, version in (('--http1.1', '1.1'), ('--http2', '2')):
        r = harness.curl(ca, port, '/hello.txt', args=[proto])
        assert (r.rc, r.status, r.http_version, r.body) == (0, 200, version, b'Hello, TLS!\n'), r
    # and once more, back to the old one
    shutil.copy(old[0], cert)
    shutil.copy(old[1], key)
    a.signal(how)
    _wait_names(ca, port, ['a.test'])


# Apache unloads mod_tls.so at every configuration cycle and loads it afresh, with new
# statics: anything the module's Rust side builds lazily in the parent (x509-parser's table
# of extension parsers, 1,328 bytes, built by the first CRL parse) is lost each time. That
# grew the parent by a 4 kB page every 3 graceful restarts, steadily (136 kB over 100
# restarts after 10 of warm-up, measured); without it the parent gains a page or two over
# the 100. glibc may also grow its heap once by a larger step (a 64 kB jump was seen): each
# rise counts for at most STEP_CAP_KB (harness.capped_growth_kb).
WARMUP, RESTARTS, STEP_CAP_KB, MAX_GROWTH_KB = 10, 100, 8, 48


def test_graceful_restarts_keep_parent_flat(apache_factory, ca):
    """RSS of the parent over graceful restarts with a TLS vhost, client
    certificates and a CRL, and TLS to backends with the system's CAs and a
    machine certificate (what the parent parses at every cycle)."""
    root = cc.Authority(cc.dn(CN='Restart Client Root'), 'ec', label='restart')
    crl = root.gen_crl()
    cert, key = ca.issue(['a.test'])
    port = harness.free_port()
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
  TLSClientCertificate optional
  TLSClientCA {root.cert_path}
  TLSClientCRL {crl}
  TLSProxyEngine on
  TLSProxyCA system
  TLSProxyMachineCertificate {cert} {key}
</VirtualHost>
""", cgi=False, http2=False, log_level='notice tls:info')
    a.start()

    rss = []
    for i in range(WARMUP + RESTARTS):
        offset = a.log_size()
        os.kill(a.pid, signal.SIGUSR1)
        # AH00489: "... configured -- resuming normal operations", once per cycle
        a.wait_log('AH00489', offset, timeout=20)
        if i >= WARMUP - 1:
            rss.append(harness.rss_kb(a.pid))
    assert a.alive() and a.read_pid() == a.pid
    assert harness.tls_info(ca, port, 'a.test')['names'] == ['a.test']
    if harness.SANITIZER_DIR:
        pytest.skip(harness.SANITIZER_RSS_SKIP)
    growth, rises = harness.capped_growth_kb(rss, STEP_CAP_KB)
    assert growth < MAX_GROWTH_KB, (
        f'the parent grew by {growth} kB ({rss[-1] - rss[0]} kB in all, in {rises} '
        f'rises) over {RESTARTS} graceful restarts: {rss}')


# A CGI that answers only once the test has made the file <flag>, after the graceful restart
# (at most a minute): a fixed pause would race with a restart slowed down by a loaded machine.
SLOW_CGI = """#!/usr/bin/python3
import os, sys, time
deadline = time.time() + 60
while not os.path.exists({flag!r}) and time.time() < deadline:
    time.sleep(0.05)
sys.stdout.write("Content-Type: text/plain\\r\\n\\r\\n")
sys.stdout.write("slow answer\\n" + "0123456789abcdef" * 4096 + "\\nend\\n")
"""
SLOW_BODY = b'slow answer\n' + b'0123456789abcdef' * 4096 + b'\nend\n'


def _head_and_some(sock, want_body, timeout=10):
    """Read a response header and at least `want_body` bytes of the body (or all of it
    when shorter): (status line, headers lower-cased, the body bytes read so far)."""
    deadline = time.monotonic() + timeout
    data = b''
    while True:
        end = data.find(b'\r\n\r\n')
        if end >= 0 and len(data) - end - 4 >= want_body:
            break
        left = deadline - time.monotonic()
        assert left > 0, f'no response within {timeout}s: {data[:200]!r}'
        sock.settimeout(left)
        chunk = sock.recv(65536)
        assert chunk, f'closed early: {data[:200]!r}'
        data += chunk
    head, body = data[:end].decode('latin-1'), data[end + 4:]
    lines = head.split('\r\n')
    hdrs = {k.strip().lower(): v.strip() for k, v in (x.split(':', 1) for x in lines[1:])}
    return lines[0], hdrs, body


def _dechunk(data):
    """The body of a chunked HTTP/1.1 message body; one that breaks off before its last
    (zero) chunk fails."""
    body, pos = b'', 0
    while True:
        eol = data.find(b'\r\n', pos)
        assert eol > 0, f'chunked body breaks off after {len(body)} bytes'
        size = int(data[pos:eol].split(b';')[0], 16)
        if size == 0:
            assert data[eol:] == b'\r\n\r\n', f'after the last chunk: {data[eol:eol + 80]!r}'
            return body
        chunk = data[eol + 2:eol + 2 + size]
        assert len(chunk) == size and data[eol + 2 + size:eol + 4 + size] == b'\r\n', \
            f'chunk of {size} bytes breaks off after {len(body)} bytes'
        body += chunk
        pos = eol + 4 + size


def _queued(port, peer_port):
    """Bytes the kernel holds for the TCP connection between 127.0.0.1:port (the server) and
    127.0.0.1:peer_port: the server's send queue plus the client's receive queue."""
    total = 0
    for local, remote, tx, rx, _ in harness.tcp_table():
        if (local, remote) == (port, peer_port):
            total += tx
        elif (local, remote) == (peer_port, port):
            total += rx
    return total


def _peer_names(sock):
    return harness.cert_names(ssl.DER_cert_to_PEM_cert(sock.getpeercert(binary_form=True)))[1]


def test_graceful_renewed_certificate_old_connections_finish(apache_factory, ca, docroot):
    """A renewed certificate (same file names, new content) and a graceful restart: new
    connections get the new certificate, while two connections made before the restart
    finish normally on the old generation: one waiting for a CGI that answers only after
    the restart, one kept alive and in the middle of a 16 MiB response its client is slow
    to read (a small receive buffer: most of the response is still in Apache at the
    restart). Both get the whole body, on the old certificate."""
    old = ca.issue(['a.test'])
    new = ca.issue(['a.test', 'renewed.a.test'])
    live = harness.mkdtemp('tls-renew-')
    cert, key = f'{live}/live.crt', f'{live}/live.key'
    shutil.copy(old[0], cert)
    shutil.copy(old[1], key)
    flag = os.path.join(live, 'restarted')
    harness.write_file(os.path.join(docroot, 'cgi-bin', 'slow.py'), SLOW_CGI.format(flag=flag),
                       0o755)
    big_size = 16 << 20
    big_sha = harness.make_data_file(docroot, 'renew-16m.bin', big_size)
    port = harness.free_port()
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {key}
</VirtualHost>
""")
    a.start()
    pid = a.pid
    assert harness.tls_info(ca, port, 'a.test')['names'] == ['a.test']

    slow = harness.tls_connect(ca, port, 'a.test', timeout=15)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    raw.settimeout(15)
    raw.connect(('127.0.0.1', port))
    kept = harness.ssl_context(ca).wrap_socket(raw, server_hostname='a.test')
    try:
        assert _peer_names(slow) == _peer_names(kept) == ['a.test']
        slow.sendall(b'GET /cgi-bin/slow.py HTTP/1.1\r\nHost: a.test\r\n'
                     b'Connection: close\r\n\r\n')
        # a first request on the kept-alive connection, answered whole
        kept.sendall(b'GET /hello.txt HTTP/1.1\r\nHost: a.test\r\n\r\n')
        status, hdrs, body = _head_and_some(kept, len(b'Hello, TLS!\n'))
        assert (status, body) == ('HTTP/1.1 200 OK', b'Hello, TLS!\n'), (status, hdrs, body)
        assert hdrs.get('connection', '').lower() != 'close', hdrs
        # then the big one, of which the client reads only the start for now
        kept.sendall(b'GET /renew-16m.bin HTTP/1.1\r\nHost: a.test\r\n'
                     b'Connection: close\r\n\r\n')
        status, hdrs, big_start = _head_and_some(kept, 64 << 10)
        assert status == 'HTTP/1.1 200 OK' and hdrs['content-length'] == str(big_size), hdrs
        time.sleep(0.3)     # the buffers fill up
        in_kernel = _queued(port, kept.getsockname()[1])
        assert len(big_start) + in_kernel < big_size // 2, \
            f'the response is no longer in Apache: {len(big_start)} read, {in_kernel} queued'

        shutil.copy(new[0], cert)
        shutil.copy(new[1], key)
        a.signal('graceful')
        _wait_names(ca, port, ['a.test', 'renewed.a.test'])
        # the new generation serves the renewed certificate; only now does the CGI answer
        harness.write_file(flag, '')
        r = harness.curl(ca, port, '/hello.txt')
        assert (r.rc, r.status, r.body) == (0, 200, b'Hello, TLS!\n'), r

        got = harness.read_until_close(slow, timeout=15)
        assert got.end == 'close', got
        head, _, body = got.data.partition(b'\r\n\r\n')
        assert head.split(b'\r\n', 1)[0] == b'HTTP/1.1 200 OK', got
        # (Apache sends a CGI's answer chunked)
        if re.search(rb'(?im)^transfer-encoding: *chunked\r?$', head):
            body = _dechunk(body)
        assert body == SLOW_BODY, f'{len(body)} body bytes: {body[:80]!r}...{body[-80:]!r}'

        rest = harness.read_until_close(kept, timeout=15)
        assert rest.end == 'close', rest
        whole = big_start + rest.data
        assert len(whole) == big_size, len(whole)
        assert hashlib.sha256(whole).hexdigest() == big_sha
        # both stayed on the certificate they started with
        assert _peer_names(slow) == _peer_names(kept) == ['a.test']
    finally:
        slow.close()
        kept.close()
    assert a.read_pid() == pid and a.alive()
    assert harness.tls_info(ca, port, 'a.test')['names'] == ['a.test', 'renewed.a.test']

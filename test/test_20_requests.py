"""Requests over TLS as plain Apache answers them: CGI output that reaches the client as the
script writes it (HTTP/1.1 and HTTP/2), request lines and header fields at and past Apache's
limits, mod_reqtimeout's header and body stages; and mod_tls' startup warnings, each once
per start and once more per graceful restart.

Where plain Apache's answer is the measure, the one server also listens without TLS and the
same bytes are sent to both."""
import concurrent.futures
import os
import re
import select
import signal
import subprocess
import time

import pytest

import clientcerts as cc
import harness

# The CGI writes a line, sleeps, writes a second one, each with the time it was written.
STREAM_SLEEP = 1.2
STREAM_CGI = f"""#!/usr/bin/python3
import sys, time
sys.stdout.write("Content-Type: text/plain\\r\\n\\r\\n")
sys.stdout.write("first %.3f\\n" % time.time())
sys.stdout.flush()
time.sleep({STREAM_SLEEP})
sys.stdout.write("second %.3f\\n" % time.time())
sys.stdout.flush()
"""

# Apache's defaults for LimitRequestLine and LimitRequestFieldSize
LIMIT = 8190
# what mod_reqtimeout allows each stage (RequestReadTimeout below), and the slack the noisy
# test machine gets on top
STAGE_SECONDS, SLACK = 2, 4


@pytest.fixture(scope='module')
def server(docroot, module_path, certs):
    harness.write_file(os.path.join(docroot, 'cgi-bin', 'stream.py'), STREAM_CGI, 0o755)
    cert, key = certs['a']
    port, plain = harness.free_port(), harness.free_port()
    a = harness.Apache(f"""
Listen 127.0.0.1:{port}
Listen 127.0.0.1:{plain}
TLSEngine 127.0.0.1:{port}
RequestReadTimeout handshake=0 header={STAGE_SECONDS} body={STAGE_SECONDS}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  Protocols h2 http/1.1
  TLSCertificate {cert} {key}
</VirtualHost>
<VirtualHost 127.0.0.1:{plain}>
  ServerName a.test
</VirtualHost>
""", docroot, name='requests', log_level='warn tls:info reqtimeout:info')
    a.port, a.plain_port = port, plain
    a.start()
    yield a
    a.stop()


# --------------------------------------------------------------------------
# CGI output as it is produced

def _timed_curl(ca, port, path, proto, timeout=20):
    """curl's output as [(arrival time, all output so far)], read as it comes."""
    cmd = ['curl', '-sS', '--no-buffer', proto, '--resolve', f'a.test:{port}:127.0.0.1',
           '--cacert', ca.cert_path, '--max-time', str(timeout),
           '-w', '\\n@@ %{http_version} %{http_code}\\n', f'https://a.test:{port}{path}']
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, out = [], b''
    deadline = time.monotonic() + timeout + 5
    try:
        while True:
            ready, _, _ = select.select([p.stdout], [], [], max(0, deadline - time.monotonic()))
            assert ready, f'curl still running after {timeout + 5}s; output so far: {out!r}'
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
            seen.append((time.time(), out))
        assert p.wait(10) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    return seen


@pytest.mark.parametrize('proto,version', [('--http1.1', '1.1'), ('--http2', '2')],
                         ids=['h1', 'h2'])
def test_cgi_output_streams(ca, server, proto, version):
    """The client has the CGI's first line before the CGI writes its second: nothing on the
    way (mod_tls' output filter, rustls) holds a slow source's output back."""
    seen = _timed_curl(ca, server.port, '/cgi-bin/stream.py', proto)
    out = seen[-1][1].decode()
    m = re.fullmatch(r'first (\d+\.\d+)\nsecond (\d+\.\d+)\n\n@@ (\S+) (\d+)\n', out)
    assert m, out
    assert (m.group(3), m.group(4)) == (version, '200'), out
    first_written, second_written = float(m.group(1)), float(m.group(2))
    first_arrived = next(t for t, so_far in seen if b'first' in so_far and so_far.endswith(b'\n'))
    assert first_arrived < second_written, (
        f'the first line arrived {first_arrived - first_written:.2f}s after it was written, '
        f'{first_arrived - second_written:.2f}s after the second')


# --------------------------------------------------------------------------
# Request lines and header fields around 8 KiB

def _request_line(n):
    """A GET for /hello.txt whose request line is n bytes long (without CRLF)."""
    head, tail = b'GET /hello.txt?', b' HTTP/1.1'
    return head + b'a' * (n - len(head) - len(tail)) + tail


def _field(n):
    """A header field line of n bytes."""
    return b'X-Pad: ' + b'b' * (n - len(b'X-Pad: '))


FOLLOW_UP = b'GET /hello.txt HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n'


def _big_request(what, n):
    if what == 'line':
        first = _request_line(n) + b'\r\nHost: a.test\r\n\r\n'
    else:
        first = b'GET /hello.txt HTTP/1.1\r\nHost: a.test\r\n' + _field(n) + b'\r\n\r\n'
    assert len(first) > 8192
    # a second request on the connection, for when Apache keeps it
    return first + FOLLOW_UP


def _over_tls(ca, port, request, cut):
    """The answer to `request` sent in one TLS record, or with cut=True in two, the first
    ending inside the long line."""
    with harness.tls_connect(ca, port, 'a.test') as s:
        for piece in ((request[:5000], request[5000:]) if cut else (request,)):
            s.sendall(piece)
        got = harness.read_until_close(s)
    assert got.end == 'close', got
    return got.data


def _statuses(data):
    return [int(x) for x in re.findall(rb'^HTTP/1\.1 (\d{3}) ', data, re.M)]


@pytest.mark.parametrize('what,refused', [('line', 414), ('field', 400)])
def test_request_limits(ca, server, what, refused):
    """A request line (LimitRequestLine) or header field (LimitRequestFieldSize) of the
    limit's length is served and the connection serves the next request; two bytes more and
    Apache answers 414 / 400 and closes, over TLS exactly as without."""
    for n, expected in ((LIMIT, [200, 200]), (LIMIT + 1, None), (LIMIT + 2, [refused])):
        request = _big_request(what, n)
        plain = harness.exchange(server.plain_port, request)
        assert plain.end == 'close', plain
        for cut in (False, True):
            tls = _over_tls(ca, server.port, request, cut)
            assert _statuses(tls) == _statuses(plain.data), (n, cut, tls[:300], plain.data[:300])
            if expected:
                assert _statuses(tls) == expected, (n, cut, tls[:300])
            if expected == [refused]:
                assert re.search(rb'^Connection: close\r$', tls, re.M), tls[:500]
            elif expected:
                assert tls.endswith(b'\r\n\r\nHello, TLS!\n'), tls[-300:]


# --------------------------------------------------------------------------
# mod_reqtimeout after the handshake

STALLS = {
    # half a request line
    'header': b'GET /hello.txt HT',
    # all of the head, 10 of 100 body bytes
    'body': b'POST /cgi-bin/sha256.sh HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\n'
            b'0123456789',
}
# what Apache answers (nothing, for a request it never had) and logs, in the access log
# (%r %>s %b) and at info in the error log
ANSWERS = {'header': None, 'body': b'HTTP/1.1 408 Request Timeout\r\n'}
ACCESS = {'header': r'"-" 408 -$', 'body': r'"POST /cgi-bin/sha256\.sh HTTP/1\.1" 408 \d+$'}
LOGGED = {'header': 'AH01382: Request header read timeout',
          'body': 'AH01382: Request body read timeout'}


def _stall(ca, port, data, tls):
    """(client port, seconds from the stall to the server's close, what it sent)"""
    if tls:
        s = harness.tls_connect(ca, port, 'a.test', timeout=20, report_eof=True)
    else:
        s = harness.socket.create_connection(('127.0.0.1', port), timeout=20)
    with s:
        s.sendall(data)
        start = time.monotonic()
        got = harness.read_until_close(s, STAGE_SECONDS + SLACK + 5)
        return s.getsockname()[1], time.monotonic() - start, got


@pytest.mark.parametrize('stage', list(STALLS))
def test_reqtimeout_stage(ca, server, stage, allow_log):
    """A client that stalls in the request head or body after the handshake: Apache gives
    up when the stage's time is up, answers (408 for the body; nothing for a request it
    never had) and logs it, over TLS as without (both run at once)."""
    # mod_cgid's own error when the body it reads breaks off
    allow_log(r'\[cgid:error\] .*AH01270')
    offset, access_offset = server.log_size(), os.path.getsize(server.access_log)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        tls = pool.submit(_stall, ca, server.port, STALLS[stage], True)
        plain = pool.submit(_stall, ca, server.plain_port, STALLS[stage], False)
        tls, plain = tls.result(), plain.result()
    for (client_port, seconds, got), how in ((tls, 'tls'), (plain, 'plain')):
        assert STAGE_SECONDS - 0.5 <= seconds <= STAGE_SECONDS + SLACK, (how, seconds, got)
        if ANSWERS[stage]:
            assert got.data.startswith(ANSWERS[stage]), (how, got)
        else:
            assert got.data == b'', (how, got)
        server.wait_log(rf'\[reqtimeout:info\] .*\[client 127\.0\.0\.1:{client_port}\] '
                        + re.escape(LOGGED[stage]), offset)
    # the same answer, and a clean end of the TLS stream (close_notify)
    assert tls[2].end == 'close' and plain[2].end == 'close', (tls, plain)
    assert re.sub(rb'Date: [^\r]*', b'', tls[2].data) == \
        re.sub(rb'Date: [^\r]*', b'', plain[2].data)
    lines = harness.wait_lines(server.access_log, ACCESS[stage], access_offset, count=2)
    assert len(lines) == 2 and lines[0].split('] ')[1] == lines[1].split('] ')[1], lines


# --------------------------------------------------------------------------
# Startup warnings: once per start, once per graceful restart

def test_startup_warnings_once(apache_factory, ca, certs, allow_log):
    """Every warning mod_tls has about a configuration it still serves appears exactly once
    when Apache starts and once more after a graceful restart, never from the pass in which
    Apache only checks its configuration, nor twice from one that serves."""
    port, nolisten = harness.free_port(), harness.free_port()
    certfiles = {'expired': ca.issue(['a.test'], expired=True),
                 'soon': ca.issue(['soon.test'], days=10),
                 'other': ca.issue(['other.test'])}
    crl_ca = cc.Authority(cc.dn(CN='Warnings Client Root'), 'ec', label='warnings')
    stale = crl_ca.stale_crl()
    warnings = {
        'expired': rf"the certificate in '{re.escape(certfiles['expired'][0])}' expired on ",
        'expiring soon': rf"the certificate in '{re.escape(certfiles['soon'][0])}' expires "
                         r"on .*, in \d+ days",
        'names not covered': r'its certificates cover neither ServerName uncovered\.test',
        'cipher not offered': r'TLSCiphersPrefer: TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256 '
                              r'is never offered by mod_tls',
        'TLSEngine without Listen': rf'TLSEngine 127\.0\.0\.1:{nolisten}.* no Listen',
        'TLSProtocol TLSv1.0+': r'TLSProtocol TLSv1\.0\+: TLS 1\.0 and 1\.1 are never offered',
        'default cache without shmcb': r'TLSSessionCache default: .*socache_shmcb',
        'stale CRL': re.escape(stale),
    }
    allow_log(*warnings.values())
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
TLSEngine 127.0.0.1:{nolisten}
TLSSessionCache default
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {certfiles['expired'][0]} {certfiles['expired'][1]}
  TLSProtocol TLSv1.0+
  TLSCiphersPrefer TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256 TLS_AES_128_GCM_SHA256
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName soon.test
  TLSCertificate {certfiles['soon'][0]} {certfiles['soon'][1]}
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName uncovered.test
  TLSCertificate {certfiles['other'][0]} {certfiles['other'][1]}
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName crl.test
  TLSCertificate {certfiles['other'][0]} {certfiles['other'][1]}
  ServerAlias other.test
  TLSClientCertificate optional
  TLSClientCA {crl_ca.cert_path}
  TLSClientCRL {stale}
</VirtualHost>
<VirtualHost 127.0.0.1:{nolisten}>
  ServerName nolisten.test
</VirtualHost>
""", name='warnings')
    # the default session cache wants mod_socache_shmcb, which the base config loads
    shm_load = f'LoadModule socache_shmcb_module {harness.MODULES_DIR}/mod_socache_shmcb.so\n'
    assert shm_load in a.config
    a.config = a.config.replace(shm_load, '')
    harness.write_file(a.conf_path, a.config)

    def counts(text):
        return {name: len([ln for ln in text.splitlines() if re.search(rx, ln)])
                for name, rx in warnings.items()}

    def warn_lines(text):
        return [ln for ln in text.splitlines() if re.search(r'\[(\w+:)?warn\]', ln)]

    a.start()
    first = a.read_log()
    assert counts(first) == dict.fromkeys(warnings, 1), first
    # and no other warning (the same one worded otherwise, say)
    assert len(warn_lines(first)) == len(warnings), first
    # it serves: the expired certificate is still the one a.test gets
    assert harness.s_client(ca, port, 'a.test', verify=False).handshake_ok

    offset = a.log_size()
    os.kill(a.pid, signal.SIGUSR1)
    # AH00489: "... configured -- resuming normal operations", once per configuration cycle
    a.wait_log(r'AH00489', offset, timeout=20)
    again = a.read_log(offset)
    assert counts(again) == dict.fromkeys(warnings, 1), again
    assert len(warn_lines(again)) == len(warnings), again
    assert a.alive() and harness.s_client(ca, port, 'a.test', verify=False).handshake_ok

"""A real browser: Debian's headless Chromium loads the demo's page and a page of several
resources over HTTP/2, trusting the server's certificate through an NSS database that holds
the test CA (as an admin adds a company CA), never by ignoring certificate errors.

What came over which protocol is checked three ways: as Chromium saw it (the DevTools
protocol's response records: protocol h2, TLS 1.3, the certificate's issuer), as the page
shows it (the demo's CGI and a script on the page, which reads the browser's own
nextHopProtocol and a CGI's SSL_PROTOCOL), and as the access log has it (%{SSL_PROTOCOL}x
and %H for every request). A certificate from a CA the browser does not trust is refused.
The screenshots are kept in build/test-output/ (test/README.md).
"""
import json
import os
import re
import shutil
import struct
import zlib

import pytest
from cryptography.x509.oid import NameOID

import browser
import harness

pytestmark = pytest.mark.skipif(browser.missing() is not None,
                                reason=str(browser.missing()))

NAME = 'browser.test'
STRANGER = 'stranger.test'       # served with a certificate from a CA Chromium does not know
# `make test` runs the suite twice at once, the second against the ASan build
OUTPUT = os.path.join(harness.TOP_DIR, 'build', 'test-output')
SUFFIX = '-asan' if harness.SANITIZER_DIR else ''
LOG_FORMAT = '%v %{SSL_PROTOCOL}x %H \\"%r\\" %>s'

PAGE_HTML = """<!doctype html>
<html><head><title>mod_tls in a browser</title>
<link rel="stylesheet" href="style.css">
</head><body>
<h1>mod_tls, HTTP/2, Chromium</h1>
<p><img src="red.png" alt="red" width="60" height="60">
<img src="blue.png" alt="blue" width="60" height="60"></p>
<p id="script">the script did not run</p>
<pre id="report"></pre>
<script src="app.js"></script>
</body></html>
"""

PAGE_CSS = 'body { background: rgb(255, 250, 205); font-family: sans-serif; }\n'

# After the load event: what the browser knows of how each resource came (nextHopProtocol),
# whether the images decoded and the style sheet applied, and what a CGI was told
# (SSL_PROTOCOL, SERVER_PROTOCOL), into #report for the test to read and the screenshot.
PAGE_JS = """document.getElementById('script').textContent = 'the script ran';
window.addEventListener('load', async () => {
  const report = {
    images: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length,
    background: getComputedStyle(document.body).backgroundColor,
  };
  try {
    const env = await (await fetch('/cgi-bin/env.py')).json();
    report.SSL_PROTOCOL = env.SSL_PROTOCOL;
    report.SERVER_PROTOCOL = env.SERVER_PROTOCOL;
  } catch (e) {
    report.error = String(e);
  }
  report.protocols = Object.fromEntries(performance.getEntries()
    .filter(e => e.nextHopProtocol !== undefined)
    .map(e => [new URL(e.name).pathname, e.nextHopProtocol]));
  document.getElementById('report').textContent = JSON.stringify(report, null, 1);
});
"""

RESOURCES = ['/page/', '/page/style.css', '/page/red.png', '/page/blue.png', '/page/app.js']


def png(width, height, rgb):
    """A PNG of one colour."""
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data)))
    rows = b''.join(b'\0' + bytes(rgb) * width for _ in range(height))
    return (b'\x89PNG\r\n\x1a\n'
            + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


def png_size(path):
    """(width, height) of a PNG file whose chunks are all whole and end with IEND; anything
    else fails."""
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', f'{path}: no PNG'
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack('>I', data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack('>I', data[pos + 8 + length:pos + 12 + length])
        assert len(body) == length and crc == zlib.crc32(kind + body), f'{path}: broken'
        kinds.append(kind)
        pos += 12 + length
    assert kinds[0] == b'IHDR' and kinds[-1] == b'IEND' and b'IDAT' in kinds, kinds
    width, height = struct.unpack('>II', data[16:24])
    return width, height


@pytest.fixture(scope='module')
def server(ca, module_path):
    port = harness.free_port()
    cert, key = ca.issue([NAME])
    other_ca = harness.CA('a CA no browser here knows')
    other_cert, other_key = other_ca.issue([STRANGER])
    docroot = harness.make_docroot(os.path.join(harness.mkdtemp('tls-browser-docroot-'),
                                                'htdocs'))
    page = os.path.join(docroot, 'page')
    os.makedirs(page)
    os.chmod(page, 0o755)
    harness.write_file(os.path.join(page, 'index.html'), PAGE_HTML)
    harness.write_file(os.path.join(page, 'style.css'), PAGE_CSS)
    harness.write_file(os.path.join(page, 'app.js'), PAGE_JS)
    harness.write_file(os.path.join(page, 'red.png'), png(60, 60, (220, 30, 30)))
    harness.write_file(os.path.join(page, 'blue.png'), png(60, 60, (30, 60, 220)))
    # the demo's own page, served as make demo serves it
    demo_cgi = os.path.join(docroot, 'cgi-bin', 'demo.cgi')
    shutil.copy(os.path.join(harness.TOP_DIR, 'scripts', 'demo-index.cgi'), demo_cgi)
    os.chmod(demo_cgi, 0o755)
    logs = harness.mkdtemp('tls-browser-logs-')
    a = harness.Apache(f"""
LogFormat "{LOG_FORMAT}" browser
CustomLog "{logs}/browser.log" browser
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
Protocols h2 http/1.1
TLSOptions +StdEnvVars
<VirtualHost 127.0.0.1:{port}>
  ServerName {NAME}
  TLSCertificate {cert} {key}
  ScriptAliasMatch ^/$ "{demo_cgi}"
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName {STRANGER}
  TLSCertificate {other_cert} {other_key}
</VirtualHost>
""", docroot, name='browser')
    a.port = port
    a.browser_log = os.path.join(logs, 'browser.log')
    a.start()
    yield a
    a.stop()


@pytest.fixture(scope='module')
def chromium(ca, server):
    b = browser.Browser([ca.cert_path], {NAME: '127.0.0.1', STRANGER: '127.0.0.1'})
    yield b
    b.close()


def log_size(path):
    return os.path.getsize(path) if os.path.exists(path) else 0


def assert_secure(ca, responses, path):
    """Chromium's record of the response for `path` among `responses` (navigate's): 200 over
    h2 and TLS 1.3, with a certificate for NAME from `ca` that it trusted."""
    by_path = {re.sub(r'^https://[^/]+', '', r['response']['url']): r['response']
               for r in responses}
    assert path in by_path, (path, sorted(by_path))
    response = by_path[path]
    where = f'{path}: {json.dumps(response)[:2000]}'
    assert response['status'] == 200, where
    assert response['protocol'] == 'h2', where
    assert response['securityState'] == 'secure', where
    details = response['securityDetails']
    assert details['protocol'] == 'TLS 1.3', where
    issuer = ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert details['issuer'] == issuer, where
    assert details['subjectName'] == NAME and NAME in details['sanList'], where


def keep_screenshot(chromium, tab, name):
    """The tab as drawn, into OUTPUT: a whole PNG of the page's size in pixels."""
    shot = chromium.screenshot(tab, os.path.join(OUTPUT, f'{name}{SUFFIX}.png'))
    assert png_size(shot) == tuple(chromium.evaluate(
        tab, '[innerWidth * devicePixelRatio, innerHeight * devicePixelRatio]'))


def assert_logged(server, offset, paths):
    """Each of `paths` in the access log since `offset`, once, as a 200 over TLS 1.3 and
    HTTP/2 for NAME. mod_http2 logs a request when it destroys the stream, which can be as
    late as the connection's next event, the KeepAliveTimeout (5 s) with a browser that keeps
    its connection open: so the wait is longer."""
    for path in paths:
        lines = harness.wait_lines(server.browser_log,
                                   rf'^{re.escape(NAME)} TLSv1\.3 HTTP/2\.0 "GET '
                                   rf'{re.escape(path)} HTTP/2\.0" 200$', offset, timeout=30)
        assert len(lines) == 1, lines


def test_demo_page(ca, server, chromium):
    """The demo's page, as `make demo` serves it, shows TLS 1.3 and HTTP/2 in Chromium."""
    offset = log_size(server.browser_log)
    tab = chromium.new_tab()
    error, responses = chromium.navigate(tab, f'https://{NAME}:{server.port}/')
    assert error is None, error
    assert_secure(ca, responses, '/')
    rows = chromium.evaluate(tab, 'Object.fromEntries(Array.from(document.querySelectorAll('
                                  '"tr"), r => Array.from(r.cells, c => c.textContent)))')
    assert rows['Protocol'] == 'TLSv1.3', rows
    assert rows['ALPN / HTTP'] == 'HTTP/2.0', rows
    assert rows['SNI'] == NAME, rows
    assert rows['Cipher'].startswith('TLS_AES_') or rows['Cipher'].startswith('TLS_CHACHA20_'), \
        rows
    assert 'rustls' in rows['TLS library'], rows
    keep_screenshot(chromium, tab, 'browser-demo')
    assert_logged(server, offset, ['/'])


def test_page_with_resources(ca, server, chromium):
    """A page with a style sheet, two images, a script and a fetch: every one of them over h2
    and TLS 1.3, as Chromium, the page and the access log tell."""
    offset = log_size(server.browser_log)
    tab = chromium.new_tab()
    error, responses = chromium.navigate(tab, f'https://{NAME}:{server.port}/page/')
    assert error is None, error
    report = json.loads(chromium.evaluate(tab, """new Promise((ok, fail) => {
      const until = Date.now() + 20000;
      (function poll() {
        const text = document.getElementById('report').textContent;
        if (text) ok(text);
        else if (Date.now() > until) fail(new Error('the page made no report'));
        else setTimeout(poll, 50);
      })();
    })""", timeout=40))
    assert chromium.evaluate(tab, 'document.getElementById("script").textContent') == \
        'the script ran'
    assert report['images'] == 2, report
    assert report['background'] == 'rgb(255, 250, 205)', report
    assert (report.get('SSL_PROTOCOL'), report.get('SERVER_PROTOCOL')) == \
        ('TLSv1.3', 'HTTP/2.0'), report
    for path in RESOURCES + ['/cgi-bin/env.py']:
        assert report['protocols'].get(path) == 'h2', (path, report)
    for path in RESOURCES:
        assert_secure(ca, responses, path)
    keep_screenshot(chromium, tab, 'browser-page')
    assert_logged(server, offset, RESOURCES + ['/cgi-bin/env.py'])


def test_unknown_ca_refused(ca, server, chromium):
    """Trust comes from the NSS database: a certificate from another CA stops the page with
    Chromium's alert, and no request reaches the server."""
    offset = log_size(server.browser_log)
    error_offset = server.log_size()
    tab = chromium.new_tab()
    error, _ = chromium.navigate(tab, f'https://{STRANGER}:{server.port}/page/')
    assert error == 'net::ERR_CERT_AUTHORITY_INVALID', error
    server.wait_log(r'\[tls:info\] .*MTLS00008: .*received fatal alert: CertificateUnknown',
                    error_offset)
    # the browser's own check that the server still serves, on the trusted name
    error, responses = chromium.navigate(tab, f'https://{NAME}:{server.port}/hello.txt')
    assert error is None, error
    assert_secure(ca, responses, '/hello.txt')
    assert_logged(server, offset, ['/hello.txt'])
    assert harness.lines_matching(server.browser_log, re.escape(STRANGER), offset) == []

"""Graceful and full restarts reload the TLS configuration."""
import shutil
import subprocess
import time

import pytest

import harness


def _signal(apache, how):
    p = subprocess.run([harness.HTTPD, '-f', apache.conf_path, '-k', how],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr


def _wait_names(ca, port, names, timeout=10):
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
    _signal(a, how)
    _wait_names(ca, port, ['a.test', 'new.a.test'])
    assert a.read_pid() == pid and a.alive()
    for proto in ('--http1.1', '--http2'):
        r = harness.curl(ca, port, '/hello.txt', args=[proto])
        assert (r.rc, r.status, r.body) == (0, 200, b'Hello, TLS!\n'), r
    # and once more, back to the old one
    shutil.copy(old[0], cert)
    shutil.copy(old[1], key)
    _signal(a, how)
    _wait_names(ca, port, ['a.test'])

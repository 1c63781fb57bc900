"""The harness itself, without mod_tls: a plain-HTTP Apache starts, serves,
passes its config test and stops."""
import harness


def test_plain_apache(docroot):
    port = harness.free_port()
    a = harness.Apache(f'Listen 127.0.0.1:{port}\n', docroot, tls=False, name='plain')
    try:
        assert a.configtest() == (0, 'Syntax OK\n')
        a.start()
        pid = a.pid
        assert a.alive() and a.children()
        assert harness.http_get(port, '/index.html') == (200, harness.INDEX_HTML.encode())
        status, body = harness.http_get(port, '/cgi-bin/sha256.sh')
        assert status == 200
        assert body.strip() == b'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    finally:
        a.stop()
    assert not a.pid_alive(pid)
    assert not a.own_pids()

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


def test_environment_line_is_not_a_test_failure(docroot):
    """A machine with an older libssl3 than mod_ssl was built for logs AH01882: the log
    check reports it as the machine's problem, and still fails on any other warning."""
    a = harness.Apache('', docroot, tls=False, name='envline')
    harness.write_file(a.error_log,
                       '[ssl:warn] [pid 1] AH01882: Init: this version of mod_ssl was '
                       'compiled against a newer library (OpenSSL 3.0.22)\n'
                       '[core:warn] [pid 1] AH00000: something else\n')
    before = dict(harness.ENVIRONMENT_PROBLEMS)
    try:
        bad = a.bad_log_lines()
        assert len(bad) == 1 and 'something else' in bad[0]
        assert 'AH01882' in harness.ENVIRONMENT_PROBLEMS['AH01882']
    finally:
        harness.ENVIRONMENT_PROBLEMS.clear()
        harness.ENVIRONMENT_PROBLEMS.update(before)

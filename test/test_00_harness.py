"""The harness itself, without mod_tls: a plain-HTTP Apache starts, serves,
passes its config test and stops."""
import socket
import struct
import threading
import time

import pytest

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


# -- the raw client helpers: a server that does not close fails the test

def _one_shot_server(behaviour):
    """A listening socket on 127.0.0.1 whose first connection gets `behaviour`:
    'close' (b'hi', then FIN), 'reset' (b'hi', then RST) or 'silent' (b'hi', then nothing
    until the client gives up)."""
    srv = socket.create_server(('127.0.0.1', 0))

    def run():
        conn, _ = srv.accept()
        conn.recv(4096)               # (unread data would turn a close into a reset)
        conn.sendall(b'hi')
        if behaviour == 'reset':
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        elif behaviour == 'silent':
            while conn.recv(4096):     # until the client closes
                pass
        conn.close()
        srv.close()
    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1]


@pytest.mark.parametrize('behaviour', ['close', 'reset'])
def test_exchange_reports_the_end(behaviour):
    got = harness.exchange(_one_shot_server(behaviour), b'hello')
    assert (got.data, got.end) == (b'hi', behaviour)


def test_exchange_without_close_fails():
    start = time.monotonic()
    with pytest.raises(AssertionError, match=r"no close from the server within 1\.0s; "
                                             r"got 2 bytes: b'hi'"):
        harness.exchange(_one_shot_server('silent'), b'hello', timeout=1.0)
    assert time.monotonic() - start < 3


def test_wait_lines(tmp_path):
    log = tmp_path / 'log'
    log.write_text('one\ntwo match\n')
    offset = len('one\n')
    assert harness.wait_lines(str(log), r'match', offset) == ['two match']
    assert harness.lines_matching(str(log), r'one', offset) == []
    with pytest.raises(AssertionError, match=r'1 of 2 lines matching'):
        harness.wait_lines(str(log), r'match', timeout=0.2, count=2)


def test_client_hello_round_trip(ca):
    hello = harness.client_hello(ca, 'a.test')
    head, exts = harness.hello_extensions(hello)
    assert harness.hello_with_extensions(head, exts) == hello
    sni = dict(exts)[0]
    assert sni.endswith(b'\x00\x06a.test'), sni

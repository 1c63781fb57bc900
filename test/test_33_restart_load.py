"""Graceful restarts under load (issue 13): one TLS vhost served by mod_tls and, the same
config through modssl_shim, by mod_ssl, both under h2load (HTTP/2 and HTTP/1.1 at once,
several clients, a small file and a 100 KiB one) while `apache2 -k graceful` comes every
2.5 s. mod_tls may fail no more requests than mod_ssl in the same run (give or take
TOLERANCE); afterwards each parent is the same process, no child crashed, and a plain request
is answered over both protocols.

`make soak` (TLS_TEST_RESTARTS=200) runs the same for 200 restarts per server, and checks
that neither the parent's RSS nor the children's grows with the restarts.

What h2load (1.52) counts, and why mod_ssl fails requests too. A graceful restart ends the
connections of the old generation. Over HTTP/2, mod_http2 sends GOAWAY, ends the streams it
took, refuses those that came after, and closes. h2load never reconnects after a GOAWAY: that
client stops ("Process Request Failure" in its output) and the refused streams count as
failed. How many clients meet that depends on when each old connection notices the restart,
so the raw count swings between 0 and CLIENTS * STREAMS per restart on either server; what
is compared is what the GOAWAYs do not explain: more than STREAMS failures per stopped client.
Over HTTP/1.1 the old generation answers with `Connection: close` and h2load reconnects.
In a timed run (-D) h2load's "failed" is only requests that ended without a 2xx (refused or
reset streams, error statuses): its final arithmetic drops requests lost with their
connection and connections that never opened. So beside h2load, curl fetches the same files
one after the other over each protocol through every restart, as a browser would, and every
transfer that does not end with a 200 and the whole file is a failed request. One exception
is where curl 7.88 falls short of a browser: a request it sends on a kept HTTP/2 connection
just as the server's GOAWAY comes, with a stream id above the GOAWAY's last stream, fails
("Error in the HTTP2 framing layer") instead of going again on a new connection, although
the server says that it did not process it (RFC 9113, 6.8: such a request may be retried).
Both servers meet this, at the same rate (3 of 40 restarts each, with curl -v): the probe
sends such a request once more, as a browser would, counts it as "sent again", and a failed
second try as a failed request. GracefulShutdownTimeout plays no part: it bounds a graceful
stop, not a graceful restart.

Each restart gets fresh h2load and curl runs started before it and ending after it, so the
load does not dwindle to no client at all after the first restart.
"""
import os
import re
import subprocess
import threading
import time

import pytest

import harness

CI_RESTARTS = 7         # per server: two servers, ~45 s in all
SOAK_RESTARTS = int(os.environ.get('TLS_TEST_RESTARTS') or 0)
CYCLE, RESTART_AT = 2.5, 1.0            # seconds of load per restart, the restart that far in
SOAK_CYCLE, SOAK_RESTART_AT = 1.5, 0.6  # 200 restarts on two servers in ~20 minutes
FLAGS = {'h2': '--http2', 'http/1.1': '--http1.1'}   # curl's, per protocol
CLIENTS = 4             # connections per h2load run (one run over h2, one over HTTP/1.1)
STREAMS = 4             # concurrent streams per HTTP/2 connection
PROBE_RATE = 20         # curl transfers per second, for 80% of each cycle
BIG = 100 << 10
FILES = {'/hello.txt': len(b'Hello, TLS!\n'), '/restart-100k.bin': BIG}
# mod_tls' failures may exceed mod_ssl's by this many, for the odd h2load request lost with
# its connection. A systematic failure (a handshake or a cut-off response at every restart)
# is far above it.
TOLERANCE = 2

H2LOAD_REQUESTS = re.compile(r'requests: (\d+) total, (\d+) started, (\d+) done, '
                             r'(\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout')
H2LOAD_STATUS = re.compile(r'status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx')
H2LOAD_PROTO = re.compile(r'Application protocol: (\S+)')
H2LOAD_GOAWAY_STOP = 'Process Request Failure:'
# h2load 1.52 now and then never ends a timed HTTP/1.1 run: its clients go on requesting
# after the duration, at full speed on healthy new-generation connections (a client that
# reconnects after a `Connection: close` around the end of its duration is never stopped).
# In the soak's short cycles about a quarter of the runs, on both servers alike (49 and 46,
# then 45 and 42, of 200).
# Such a run is killed this long after its end and counted as stuck, not in h2load's
# figures; curl still checks that cycle.
STUCK_AFTER = 2
H2LOAD_CONNECT_ERROR = 'client could not connect to host'
# What curl -v says of a transfer over h2 (curl 7.88 spells "recveived"), and of its failure.
CURL_STREAM = re.compile(r'^\* Using Stream ID: (\d+)')
CURL_GOAWAY = re.compile(r'^\* rec\w*ved GOAWAY, error=-?\d+, last_stream=(\d+)')
CURL_FAILED = re.compile(r'^curl: \((\d+)\)')
CURLE_HTTP2 = 16


def _unprocessed(stderr):
    """For each transfer that curl -v reports failed, in order: whether it failed with
    CURLE_HTTP2 on a stream above the last one of a GOAWAY it got meanwhile, which the
    server did not process."""
    out, stream, last = [], None, None
    for line in stderr.splitlines():
        if m := CURL_STREAM.match(line):
            stream, last = int(m.group(1)), None
        elif m := CURL_GOAWAY.match(line):
            last = int(m.group(1))
        elif m := CURL_FAILED.match(line):
            out.append(int(m.group(1)) == CURLE_HTTP2 and None not in (stream, last)
                       and stream > last)
            stream, last = None, None
    return out


class Tally:
    """What h2load and curl saw over the runs against one server with one protocol."""
    FIELDS = ('runs', 'succeeded', 'failed', 'unfinished', 'goaway_stops', 'timeout',
              'connect_errors', 'unexplained', 'h2load_stuck', 'probe_ok', 'probe_again',
              'probe_failed')

    def __init__(self, streams):
        self.streams = streams
        for f in self.FIELDS:
            setattr(self, f, 0)
        self.problems = []
        self.probe_errors = []

    def add_h2load(self, proto, out, err, rc):
        self.runs += 1
        req, status = H2LOAD_REQUESTS.search(out), H2LOAD_STATUS.search(out)
        got = H2LOAD_PROTO.search(out)
        if rc != 0 or not (req and status and got):
            self.problems.append(f'{proto}: h2load rc={rc}: {(out + err).strip()[-400:]}')
            return
        if got.group(1) != proto:
            self.problems.append(f'{proto}: negotiated {got.group(1)}')
        _, started, done, ok, failed, _, timeout = map(int, req.groups())
        if not ok:
            self.problems.append(f'{proto}: a run without one answered request')
        stops = out.count(H2LOAD_GOAWAY_STOP)
        connect_errors = err.count(H2LOAD_CONNECT_ERROR)
        self.succeeded += ok
        self.failed += failed
        # in flight when the run ended, or lost with a connection: h2load cannot tell
        self.unfinished += started - done
        self.goaway_stops += stops
        self.timeout += timeout
        self.connect_errors += connect_errors
        self.unexplained += (max(0, failed - timeout - stops * self.streams) + timeout
                             + connect_errors)

    def add_probe(self, result, paths, again):
        """A curl -v run over `paths`, one transfer each (harness.CurlResult); `again(path)`
        fetches one path anew, on a connection of its own."""
        if len(result.infos) != len(paths):
            self.probe_failed += len(paths)
            self.probe_errors.append(f'curl rc={result.rc} gave {len(result.infos)} of '
                                     f'{len(paths)} transfers: {result.stderr[-300:]}')
            return
        unprocessed = iter(_unprocessed(result.stderr))
        for path, info in zip(paths, result.infos):
            if info.get('exitcode') and next(unprocessed, False):
                self.probe_again += 1
                retry = again(path)
                info = retry.infos[0] if len(retry.infos) == 1 else {'exitcode': retry.rc}
            if (info.get('exitcode'), info.get('http_code'), info.get('size_download')) \
                    == (0, 200, FILES[path]):
                self.probe_ok += 1
            else:
                self.probe_failed += 1
                self.probe_errors.append(f'{path}: curl {info.get("exitcode")} '
                                         f'{info.get("errormsg")!r}, status '
                                         f'{info.get("http_code")}, '
                                         f'{info.get("size_download")} bytes')

    @property
    def lost(self):
        return self.unexplained + self.probe_failed

    def __repr__(self):
        return 'Tally(' + ', '.join(f'{f}={getattr(self, f)}' for f in self.FIELDS) + ')'


def _h2load(port, urifile, proto, seconds):
    argv = ['h2load', '-t', '1', '-c', str(CLIENTS), '--connect-to', f'127.0.0.1:{port}',
            '-D', f'{round(seconds * 1000)}ms', '-i', urifile, '-B', f'https://a.test:{port}']
    argv += ['--h1', '-m', '1'] if proto == 'http/1.1' else ['-m', str(STREAMS)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Site:
    """One Apache under test (mod_tls or mod_ssl) and what happened to it so far."""

    def __init__(self, label, apache, port, urifile, ca):
        self.label = label
        self.apache = apache
        self.port = port
        self.urifile = urifile
        self.ca = ca
        self.pid = apache.pid
        self.tally = {'h2': Tally(STREAMS), 'http/1.1': Tally(1)}
        self.parent_rss = []        # kB, after each restart
        self.children_rss = []

    def cycle(self, seconds, restart_at, sample_rss=False):
        """h2load and curl over h2 and over HTTP/1.1 for `seconds`, a graceful restart
        `restart_at` seconds in."""
        paths = list(FILES) * round(seconds * 0.8 * PROBE_RATE / len(FILES))
        probes = {}

        def probe(proto, flag):
            probes[proto] = harness.curl(self.ca, self.port, urls=[
                f'https://a.test:{self.port}{p}' for p in paths],
                args=[flag, '--rate', f'{PROBE_RATE}/s', '-v'],
                timeout=seconds + 30)

        threads = [threading.Thread(target=probe, args=a)
                   for a in FLAGS.items()]
        runs = {proto: _h2load(self.port, self.urifile, proto, seconds)
                for proto in self.tally}
        for t in threads:
            t.start()
        try:
            time.sleep(restart_at)
            offset = self.apache.log_size()
            self.apache.signal('graceful')
            # AH00489: "... configured -- resuming normal operations", once per cycle
            self.apache.wait_log('AH00489', offset, timeout=20)
            for proto, p in runs.items():
                try:
                    out, err = p.communicate(timeout=seconds + STUCK_AFTER)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.communicate()
                    self.tally[proto].h2load_stuck += 1
                    continue
                self.tally[proto].add_h2load(proto, out, err, p.returncode)
        finally:
            for p in runs.values():
                if p.poll() is None:
                    p.kill()
                    p.communicate()
            for t in threads:
                t.join()
        for proto, result in probes.items():
            self.tally[proto].add_probe(result, paths, lambda path, proto=proto: harness.curl(
                self.ca, self.port, path, args=[FLAGS[proto]]))
        if sample_rss:
            self._sample_rss()

    def _sample_rss(self):
        # The old generation may still be closing its last connections: what is measured is
        # the new one, all of its processes up.
        deadline = time.monotonic() + 10
        while len(self.apache.children()) != PROCESSES and time.monotonic() < deadline:
            time.sleep(0.05)
        self.parent_rss.append(harness.rss_kb(self.pid))
        self.children_rss.append(self.apache.children_rss_kb())

    def count(self, field):
        return sum(getattr(t, field) for t in self.tally.values())

    def check_alive(self):
        """The same parent, no crashed child, and an answer over both protocols."""
        a = self.apache
        assert a.read_pid() == self.pid and a.alive(), f'{self.label}: the parent changed'
        crashed = harness.lines_matching(a.error_log, r'exit signal|Segmentation fault')
        assert not crashed, f'{self.label}: ' + '\n'.join(crashed)
        problems = [p for t in self.tally.values() for p in t.problems]
        assert not problems, f'{self.label}: ' + '\n'.join(problems)
        for proto, version in (('--http1.1', '1.1'), ('--http2', '2')):
            r = harness.curl(self.ca, self.port, '/hello.txt', args=[proto])
            assert (r.rc, r.status, r.http_version, r.body) == \
                (0, 200, version, b'Hello, TLS!\n'), (self.label, r)

    def summary(self):
        return f'{self.label}: ' + '; '.join(
            f'{proto} h2load {t.succeeded} ok, {t.failed} failed ({t.goaway_stops} clients '
            f'stopped by GOAWAY, {t.timeout} timeout, {t.connect_errors} connect errors, '
            f'{t.unexplained} unexplained), {t.unfinished} unfinished, {t.h2load_stuck} runs '
            f'stuck; curl {t.probe_ok} ok ({t.probe_again} sent again after a GOAWAY), '
            f'{t.probe_failed} failed' for proto, t in self.tally.items())

    def probe_errors(self):
        return [e for t in self.tally.values() for e in t.probe_errors][:10]


# Two processes per generation, and room in the scoreboard for the old one while it finishes
# (ServerLimit), so that a restart never waits for a free slot and the children's RSS is
# summed over the same number of processes every time. Keep-alive connections are ended by
# the restarts only: h2load 1.52 never stops a client that reconnects (after a
# `Connection: close`, which MaxKeepAliveRequests 100 sends every 100 requests) just as its
# duration ends; that client goes on requesting and the run never finishes.
PROCESSES = 2
MPM = """
StartServers 2
ServerLimit 4
MinSpareThreads 5
MaxSpareThreads 50
MaxRequestWorkers 50
MaxKeepAliveRequests 0
"""


def _vhost(port, cert, key):
    return f"""{MPM}
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  Protocols h2 http/1.1
  TLSCertificate {cert} {key}
</VirtualHost>
"""


@pytest.fixture
def sites(apache_factory, ca, docroot):
    """The same vhost served by mod_tls and, through modssl_shim, by mod_ssl; both running."""
    harness.make_data_file(docroot, 'restart-100k.bin', BIG)
    urifile = harness.write_file(os.path.join(harness.mkdtemp('tls-uris-'), 'uris'),
                                 '/hello.txt\n/restart-100k.bin\n')
    cert, key = ca.issue(['a.test'])
    made = []
    for label, modssl in (('mod_tls', False), ('mod_ssl', True)):
        port = harness.free_port()
        a = apache_factory(_vhost(port, cert, key), modssl=modssl, cgi=False,
                           name=f'restart-load-{label}')
        a.start()
        made.append(Site(label, a, port, urifile, ca))
    return made


def _run(sites, restarts, seconds, restart_at, sample_rss=False):
    """`restarts` cycles on each site, taking turns so that both see the same machine."""
    for _ in range(restarts):
        for s in sites:
            s.cycle(seconds, restart_at, sample_rss)
    tls, ssl = sites
    report = f'{tls.summary()}\n{ssl.summary()}'
    print(f'\n{restarts} graceful restarts under load each:\n{report}')
    for s in sites:
        if s.probe_errors():
            print(f'{s.label} curl failures (at most 10):\n  ' + '\n  '.join(s.probe_errors()))
    for s in sites:
        s.check_alive()
    assert tls.count('lost') <= ssl.count('lost') + TOLERANCE, report
    return report


def test_graceful_restarts_under_load(sites):
    _run(sites, CI_RESTARTS, CYCLE, RESTART_AT)


# The soak's RSS checks, on mod_tls; mod_ssl's figures are printed beside them. The first
# WARMUP restarts are left out (the heap settles). Measured in two soaks, over the 190
# restarts after those: mod_tls' parent +80 kB both times (24 kB counted with test_30's step
# cap in the second), mod_ssl's +208 and +144 kB (148 and 140 capped). The children, new
# processes at every restart, swing by up to 1.5 MB from one restart to the next; their
# slopes: mod_tls -128 and +159 kB per 100 restarts, mod_ssl +83 and +393. The parent's
# bound is twice mod_tls' whole growth and below the leak test_30 was written for (a page
# every 3 restarts: ~250 kB capped over 190); the children's is 2.5 times mod_tls' steepest
# slope.
WARMUP = 10
PARENT_STEP_CAP_KB, PARENT_MAX_GROWTH_KB = 8, 160
CHILDREN_MAX_SLOPE_KB = 400          # per 100 restarts, summed over the PROCESSES children
TABLE_AT = (10, 50, 100, 200)


def _slope_per_100(samples):
    """Least-squares slope of samples (one per restart), in kB per 100 restarts."""
    n = len(samples)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(samples) / n
    sxy = sum((x - mx) * (y - my) for x, y in enumerate(samples))
    sxx = sum((x - mx) ** 2 for x in range(n))
    return 100 * sxy / sxx


def _rss_table(sites):
    at = [n for n in TABLE_AT if n <= len(sites[0].parent_rss)]
    head = (['server', 'process'] + [f'RSS@{n} kB' for n in at]
            + ['slope kB/100', 'growth kB', 'failed requests'])
    rows = []
    for s in sites:
        failed = (f'h2load {s.count("failed")} ({s.count("unexplained")} unexplained), '
                  f'curl {s.count("probe_failed")}')
        for what, samples in (('parent', s.parent_rss), ('children', s.children_rss)):
            growth, _ = harness.capped_growth_kb(samples[WARMUP:], PARENT_STEP_CAP_KB)
            rows.append([s.label, what] + [str(samples[n - 1]) for n in at]
                        + [f'{_slope_per_100(samples[WARMUP:]):+.0f}',
                           str(growth) if what == 'parent' else '', failed])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    return '\n'.join(' | '.join(c.ljust(w) for c, w in zip(r, widths)) for r in [head] + rows)


@pytest.mark.skipif(not SOAK_RESTARTS, reason='a long check: TLS_TEST_RESTARTS=200 (make soak)')
def test_graceful_restarts_under_load_soak(sites):
    _run(sites, SOAK_RESTARTS, SOAK_CYCLE, SOAK_RESTART_AT, sample_rss=True)
    table = _rss_table(sites)
    print(f'\nRSS after each of {SOAK_RESTARTS} graceful restarts under load:\n{table}')
    out = os.path.join(harness.TOP_DIR, 'build', 'soak')
    os.makedirs(out, exist_ok=True)
    harness.write_file(os.path.join(out, 'rss.txt'), table + '\n')
    if harness.SANITIZER_DIR:
        pytest.skip(harness.SANITIZER_RSS_SKIP)
    tls = sites[0]
    growth, rises = harness.capped_growth_kb(tls.parent_rss[WARMUP:], PARENT_STEP_CAP_KB)
    assert growth < PARENT_MAX_GROWTH_KB, (
        f'mod_tls: the parent grew by {growth} kB in {rises} rises:\n{table}')
    slope = _slope_per_100(tls.children_rss[WARMUP:])
    assert slope < CHILDREN_MAX_SLOPE_KB, (
        f'mod_tls: the children grow by {slope:.0f} kB per 100 restarts:\n{table}')

"""Debian's headless Chromium, driven over the DevTools protocol on a pipe (test_38).

One browser per `Browser`: its own HOME (with an NSS database trusting the CAs given, as an
admin would add a company CA with certutil) and its own profile in a temp dir. The protocol
runs over fds 3 and 4 (--remote-debugging-pipe): JSON messages, each ended by a NUL byte,
so no port is opened. Every wait has a deadline; `close()` ends the browser's whole process
group, which it leads (started in a session of its own).
"""
import base64
import json
import os
import select
import shutil
import signal
import subprocess
import time

import harness

CHROMIUM = '/usr/bin/chromium'
CERTUTIL = '/usr/bin/certutil'
WINDOW = (1024, 768)


def missing():
    """Why the browser tests cannot run here, or None."""
    for path, package in ((CHROMIUM, 'chromium'), (CERTUTIL, 'libnss3-tools')):
        if not os.access(path, os.X_OK):
            return (f'{path} is missing: Debian package {package} '
                    '(`scripts/deps.sh test` installs it, as root)')
    return None


def nss_trust(home, ca_pems):
    """An NSS database in home/.pki/nssdb, where Chromium on Linux looks for the user's own
    trust, with each CA certificate trusted to issue server certificates (C,,)."""
    db = os.path.join(home, '.pki', 'nssdb')
    os.makedirs(db, exist_ok=True)
    certutil = [CERTUTIL, '-d', f'sql:{db}']
    subprocess.run(certutil + ['-N', '--empty-password'], check=True, capture_output=True,
                   timeout=30)
    for i, pem in enumerate(ca_pems):
        subprocess.run(certutil + ['-A', '-t', 'C,,', '-n', f'test CA {i}', '-i', pem],
                       check=True, capture_output=True, timeout=30)
    listed = subprocess.run(certutil + ['-L'], check=True, capture_output=True, text=True,
                            timeout=30).stdout
    assert listed.count('C,,') == len(ca_pems), listed
    return db


class BrowserError(Exception):
    pass


class Browser:
    """A headless Chromium trusting `ca_pems`, with `hosts` ({name: ip}) resolved by its
    own rules instead of DNS."""

    def __init__(self, ca_pems, hosts, timeout=60):
        self.dir = harness.mkdtemp('tls-browser-')
        self.home = os.path.join(self.dir, 'home')
        nss_trust(self.home, ca_pems)
        self.stderr_path = os.path.join(self.dir, 'chromium.stderr')
        rules = ','.join(f'MAP {name} {ip}' for name, ip in hosts.items())
        flags = [
            '--headless',
            # As root (this suite runs as root), Chromium refuses to start with its sandbox;
            # the pages it loads here are the test's own.
            '--no-sandbox',
            '--remote-debugging-pipe',
            f'--user-data-dir={self.dir}/profile',
            f'--host-resolver-rules={rules}',
            '--no-proxy-server',
            # Nothing but the test's server is reachable, and nothing else is wanted: no
            # background requests to Google's services, no updates, no sync, no keyring.
            '--no-first-run', '--disable-background-networking', '--disable-component-update',
            '--disable-sync', '--disable-default-apps', '--password-store=basic',
            # no GPU here: pages are drawn in software
            '--disable-gpu',
            f'--window-size={WINDOW[0]},{WINDOW[1]}',
        ]
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        env = dict(os.environ, HOME=self.home)
        with open(self.stderr_path, 'wb') as err:
            # The protocol's fds must be 3 and 4 in the browser: bash moves them there (dash
            # takes single-digit fds only).
            self.proc = subprocess.Popen(
                ['/bin/bash', '-c', f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} '
                 f'{to_chrome_r}<&- {from_chrome_w}>&-', CHROMIUM, *flags],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                pass_fds=(to_chrome_r, from_chrome_w), start_new_session=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b''
        self._next_id = 0
        self.events = []
        try:
            self.version = self.call('Browser.getVersion', timeout=timeout)
        except Exception:
            self.close()
            raise

    # -- the protocol

    def _send(self, msg):
        data = json.dumps(msg).encode() + b'\0'
        while data:
            n = os.write(self._to_chrome, data)
            data = data[n:]

    def _receive(self, deadline):
        """The next message, or BrowserError at the deadline or when the browser is gone."""
        while b'\0' not in self._buf:
            left = deadline - time.time()
            if left <= 0:
                raise BrowserError(f'no answer from Chromium in time; {self.stderr_tail()}')
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 16)
                if not chunk:
                    raise BrowserError(f'Chromium closed its pipe (exit '
                                       f'{self.proc.poll()}); {self.stderr_tail()}')
                self._buf += chunk
        raw, self._buf = self._buf.split(b'\0', 1)
        return json.loads(raw)

    def call(self, method, params=None, session=None, timeout=30):
        """Send a command and return its result; events that come meanwhile are kept."""
        self._next_id += 1
        msg = {'id': self._next_id, 'method': method, 'params': params or {}}
        if session:
            msg['sessionId'] = session
        self._send(msg)
        deadline = time.time() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get('id') == self._next_id:
                if 'error' in reply:
                    raise BrowserError(f'{method}: {reply["error"]}')
                return reply['result']
            if 'method' in reply:
                self.events.append(reply)

    def wait_event(self, method, session, since=0, timeout=30):
        """The first event `method` of `session` among those from index `since` on."""
        deadline = time.time() + timeout
        while True:
            for ev in self.events[since:]:
                if ev['method'] == method and ev.get('sessionId') == session:
                    return ev['params']
            since = len(self.events)
            reply = self._receive(deadline)
            if 'method' in reply:
                self.events.append(reply)

    # -- pages

    def new_tab(self):
        """A new blank tab with page and network events on; returns its session."""
        target = self.call('Target.createTarget', {'url': 'about:blank'})['targetId']
        session = self.call('Target.attachToTarget',
                            {'targetId': target, 'flatten': True})['sessionId']
        self.call('Page.enable', session=session)
        self.call('Network.enable', session=session)
        # nothing from an earlier visit may answer for this one
        self.call('Network.setCacheDisabled', {'cacheDisabled': True}, session=session)
        return session

    def navigate(self, session, url, timeout=30):
        """Load `url` and wait for its load event. Returns (error, responses): Chromium's
        error text (net::ERR_...) or None, and the Network.responseReceived params of
        this load in order (the document's and every subresource's)."""
        since = len(self.events)
        nav = self.call('Page.navigate', {'url': url}, session=session, timeout=timeout)
        if nav.get('errorText'):
            return nav['errorText'], []
        self.wait_event('Page.loadEventFired', session, since, timeout)
        return None, [ev['params'] for ev in self.events[since:]
                      if ev['method'] == 'Network.responseReceived'
                      and ev.get('sessionId') == session]

    def evaluate(self, session, expression, timeout=30):
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        r = self.call('Runtime.evaluate', {'expression': expression, 'returnByValue': True,
                                           'awaitPromise': True},
                      session=session, timeout=timeout)
        if 'exceptionDetails' in r:
            raise BrowserError(f'{expression}: {r["exceptionDetails"]}')
        return r['result'].get('value')

    def screenshot(self, session, path):
        """The page as Chromium renders it, as a PNG file at `path`."""
        data = self.call('Page.captureScreenshot', {'format': 'png'}, session=session)['data']
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(base64.b64decode(data))
        return path

    # -- the end

    def stderr_tail(self, n=20):
        try:
            with open(self.stderr_path, errors='replace') as f:
                lines = f.readlines()
        except OSError:
            return 'no stderr'
        return 'stderr:\n' + ''.join(lines[-n:])

    def _strays(self):
        """Pids of live processes whose command line names this browser's HOME."""
        pids = []
        needle = self.home.encode() + b'/'
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                with open(f'/proc/{d}/cmdline', 'rb') as f:
                    if needle in f.read() and harness.Apache.pid_alive(int(d)):
                        pids.append(int(d))
            except OSError:
                pass
        return pids

    def close(self, timeout=10):
        """Ask the browser to close, then end what is left of its process group."""
        if self.proc.poll() is None:
            try:
                self._send({'id': 0, 'method': 'Browser.close', 'params': {}})
                self.proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        # The zygote and renderers are in the group the browser leads, whose id is its pid.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        # Its crash handlers leave the group (a session of their own); they end with the
        # browser, and are told from others' by the database path in this HOME.
        deadline = time.time() + timeout
        while self._strays() and time.time() < deadline:
            time.sleep(0.1)
        for pid in self._strays():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        self._to_chrome = self._from_chrome = -1
        if not harness.KEEP_TMP:
            shutil.rmtree(os.path.join(self.dir, 'profile'), ignore_errors=True)

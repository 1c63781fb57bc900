"""An ACME test CA on loopback for the mod_md tests: Debian's `pebble`, with
`pebble-challtestsrv` as the DNS server it asks, so that the test domains resolve to 127.0.0.1
without touching /etc/hosts or resolv.conf.

    pebble = acme.Pebble(ca, http_port, https_port)   # validations go to these ports
    pebble.start()
    pebble.directory      # https://127.0.0.1:PORT/dir, for MDCertificateAuthority
    pebble.trust          # PEM file that verifies pebble's ACME endpoint (MDCACertificateFile)
    pebble.root_pem()     # the root pebble signs issued certificates under (/roots/0)
    pebble.stop()

Pebble's own TLS certificate (for 127.0.0.1 and localhost) is issued by the harness CA `ca` at
test time. Both programs listen on 127.0.0.1 only and are stopped by their pids.
"""
import datetime
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

import harness

PEBBLE = '/usr/bin/pebble'
CHALLTESTSRV = '/usr/bin/pebble-challtestsrv'


def loopback_cert(ca, path_base):
    """A server certificate from the harness CA for 127.0.0.1 (IP SAN) and localhost; returns
    (cert_path, key_path)."""
    key = harness._new_key('ec')
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'pebble')]))
            .issuer_name(ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName('localhost'),
                x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca.key, hashes.SHA256()))
    cert_path = harness.write_file(path_base + '.crt',
                                   cert.public_bytes(serialization.Encoding.PEM))
    key_path = harness.write_file(path_base + '.key', harness._pem_key(key), 0o600)
    return cert_path, key_path


def _tail(path, n=4000):
    try:
        with open(path, errors='replace') as f:
            return f.read()[-n:]
    except OSError as e:
        return f'({e})'


class Pebble:
    """pebble and pebble-challtestsrv (its DNS) on 127.0.0.1, in a temp dir of their own.

    `http_port` and `tls_port` are where pebble's validation authority connects for http-01
    and tls-alpn-01 (the ports of the Apache under test, which MDPortMap maps 80 and 443 to).
    Every name resolves to 127.0.0.1 (challtestsrv's default answer for A queries; AAAA
    queries get no answer, so the validations never try ::1)."""

    def __init__(self, ca, http_port, tls_port):
        self.ca = ca
        self.dir = harness.mkdtemp('tls-pebble-')
        self.port = harness.free_port()
        self.mgmt_port = harness.free_port()
        self.dns_port = harness.free_port()
        self.dns_mgmt_port = harness.free_port()
        self.http_port, self.tls_port = http_port, tls_port
        self.cert, self.key = loopback_cert(ca, os.path.join(self.dir, 'pebble'))
        self.trust = ca.cert_path
        self.config = os.path.join(self.dir, 'pebble-config.json')
        harness.write_file(self.config, json.dumps({'pebble': {
            'listenAddress': f'127.0.0.1:{self.port}',
            'managementListenAddress': f'127.0.0.1:{self.mgmt_port}',
            'certificate': self.cert,
            'privateKey': self.key,
            'httpPort': http_port,
            'tlsPort': tls_port,
            'ocspResponderURL': '',
            'externalAccountBindingRequired': False,
        }}, indent=2))
        self.log = os.path.join(self.dir, 'pebble.log')
        self.dns_log = os.path.join(self.dir, 'challtestsrv.log')
        self.procs = []
        self._root = None

    @property
    def directory(self):
        return f'https://127.0.0.1:{self.port}/dir'

    def _spawn(self, cmd, log, env=None):
        with open(log, 'ab') as out:
            p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, cwd=self.dir, env=env,
                                 start_new_session=True)
        self.procs.append(p)
        return p

    def start(self, timeout=15):
        # only the DNS part of challtestsrv: its own challenge servers would want ports
        # 5001-5003 on every address
        self._spawn([CHALLTESTSRV,
                     '-dns01', f'127.0.0.1:{self.dns_port}',
                     '-http01', '', '-https01', '', '-tlsalpn01', '',
                     '-management', f'127.0.0.1:{self.dns_mgmt_port}',
                     '-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''], self.dns_log)
        env = dict(os.environ)
        env.update({
            'PEBBLE_VA_NOSLEEP': '1',       # validate at once, not after 0-15 s
            'PEBBLE_WFE_NONCEREJECT': '0',  # no deliberately rejected nonces
            'PEBBLE_AUTHZREUSE': '0',       # every order is validated anew
        })
        self._spawn([PEBBLE, '-config', self.config,
                     '-dnsserver', f'127.0.0.1:{self.dns_port}'], self.log, env)
        for port, proc_log in ((self.dns_mgmt_port, self.dns_log), (self.port, self.log),
                               (self.mgmt_port, self.log)):
            if not harness.wait_port('127.0.0.1', port, timeout):
                self.stop()
                raise AssertionError(f'pebble/challtestsrv not listening on {port} within '
                                     f'{timeout}s:\n{_tail(proc_log)}')
        return self

    def add_a(self, host, addr='127.0.0.1'):
        """An explicit A record in challtestsrv (every name already gets 127.0.0.1)."""
        req = urllib.request.Request(
            f'http://127.0.0.1:{self.dns_mgmt_port}/add-a',
            data=json.dumps({'host': host, 'addresses': [addr]}).encode(), method='POST')
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200, r.status

    def _mgmt_get(self, path):
        ctx = ssl.create_default_context(cafile=self.trust)
        with urllib.request.urlopen(f'https://127.0.0.1:{self.mgmt_port}{path}', context=ctx,
                                    timeout=10) as r:
            return r.read()

    def root_pem(self):
        """Pebble's root for issued certificates (made anew at each pebble start)."""
        if self._root is None:
            self._root = self._mgmt_get('/roots/0').decode()
        return self._root

    def root_path(self):
        path = os.path.join(self.dir, 'pebble-root.pem')
        if not os.path.exists(path):
            harness.write_file(path, self.root_pem())
        return path

    def stop(self, timeout=5):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + timeout
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
        self.procs = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

"""A real OCSP responder on 127.0.0.1 for the stapling tests (test_26).

`openssl ocsp -port` would listen on every address, so the HTTP side is a small Python server
bound to 127.0.0.1 only; each request it gets (a POST with a DER body, or a GET with the
base64 request in the path, RFC 6960 A.1) is answered by one run of

    openssl ocsp -index INDEX -CA ca.pem -rsigner ca.pem -rkey ca.key
                 -reqin req.der -respout resp.der -ndays 1      (or -nmin N)

so the answer is OpenSSL's own, signed by the CA, and follows the index file (`openssl ca`
format) as it is at that moment: a test edits the index to turn a certificate revoked.

Run as a script it serves until SIGTERM. `Responder` runs it as a child process (started and
stopped by pid) and writes the index; it also has a switch for a broken responder (HTTP 500,
or 200 with bytes that are no OCSP response, or a signed response that expired an hour
ago), read from a control file on every request.
Every request answered is logged, one line each, so a test can see that a client asked.
"""
import argparse
import base64
import datetime
import http.server
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

MODES = ('ok', 'error500', 'garbage', 'expired')


def index_line(serial, subject, not_after, revoked_at=None):
    """One line of an `openssl ca` index file: status, expiry, revocation date, serial (hex),
    file name ('unknown'), subject. Times are UTCTime, YYMMDDHHMMSSZ."""
    def utc(t):
        return t.astimezone(datetime.timezone.utc).strftime('%y%m%d%H%M%SZ')
    hexserial = f'{serial:X}'
    if len(hexserial) % 2:
        hexserial = '0' + hexserial
    status = 'R' if revoked_at else 'V'
    revoked = utc(revoked_at) if revoked_at else ''
    return '\t'.join([status, utc(not_after), revoked, hexserial, 'unknown', subject]) + '\n'


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = 'test-ocsp'

    def log_message(self, fmt, *args):
        pass   # the request log below is the record

    def do_POST(self):
        n = int(self.headers.get('Content-Length') or 0)
        self.answer(self.rfile.read(n) if n else b'')

    def do_GET(self):
        path = urllib.parse.unquote(self.path.lstrip('/'))
        try:
            req = base64.b64decode(path, validate=False)
        except ValueError:
            req = b''
        self.answer(req)

    def answer(self, req):
        cfg = self.server.cfg
        mode = read_mode(cfg.mode_file)
        if mode == 'error500':
            code, body, ctype = 500, b'responder broken on purpose\n', 'text/plain'
        elif mode == 'garbage':
            code, body, ctype = 200, b'this is not an OCSP response', 'application/ocsp-response'
        elif mode == 'expired':
            code, body = expired_response(cfg, req)
            ctype = 'application/ocsp-response' if code == 200 else 'text/plain'
            mode = f'expired:{code}'
        else:
            code, body = run_openssl(cfg, req)
            ctype = 'application/ocsp-response' if code == 200 else 'text/plain'
            mode = f'ok:{code}'
        # logged before the answer goes out: whoever got it finds the line
        with open(cfg.log, 'a') as f:
            f.write(f'{time.time():.3f} {self.command} {mode} {len(req)}\n')
        self.reply(code, body, ctype)

    def reply(self, code, body, ctype):
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Connection', 'close')
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


def read_mode(path):
    try:
        with open(path) as f:
            mode = f.read().strip()
    except OSError:
        return 'ok'
    return mode if mode in MODES else 'ok'


def run_openssl(cfg, req):
    """(HTTP status, body): openssl's DER response, or 400 with its complaint."""
    with tempfile.TemporaryDirectory(prefix='ocsp-req-', dir=cfg.workdir) as d:
        reqin, respout = os.path.join(d, 'req.der'), os.path.join(d, 'resp.der')
        with open(reqin, 'wb') as f:
            f.write(req)
        cmd = ['openssl', 'ocsp', '-index', cfg.index, '-CA', cfg.ca, '-rsigner', cfg.ca,
               '-rkey', cfg.key, '-reqin', reqin, '-respout', respout]
        cmd += ['-nmin', str(cfg.nmin)] if cfg.nmin else ['-ndays', str(cfg.ndays)]
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=20)
        except subprocess.TimeoutExpired:
            return 500, b'openssl ocsp timed out\n'
        if p.returncode != 0 or not os.path.exists(respout):
            return 400, p.stdout + p.stderr
        with open(respout, 'rb') as f:
            return 200, f.read()


def expired_response(cfg, req):
    """(HTTP status, body): a 'good' response, signed by the CA, whose validity ended an hour
    ago (openssl ocsp cannot date one back). Needs the certificate, which Responder.add
    left in the work dir by serial."""
    try:
        request = ocsp.load_der_ocsp_request(req)
        with open(os.path.join(cfg.workdir, 'certs', f'{request.serial_number:X}.pem'),
                  'rb') as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except (ValueError, OSError) as e:
        return 400, f'{e}\n'.encode()
    with open(cfg.ca, 'rb') as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(cfg.key, 'rb') as f:
        key = serialization.load_pem_private_key(f.read(), None)
    now = datetime.datetime.utcnow()
    resp = (ocsp.OCSPResponseBuilder()
            .add_response(cert=cert, issuer=ca, algorithm=request.hash_algorithm,
                          cert_status=ocsp.OCSPCertStatus.GOOD,
                          this_update=now - datetime.timedelta(hours=2),
                          next_update=now - datetime.timedelta(hours=1),
                          revocation_time=None, revocation_reason=None)
            .responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
            .sign(key, hashes.SHA256()))
    return 200, resp.public_bytes(serialization.Encoding.DER)


def serve(cfg):
    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
    httpd = Server(('127.0.0.1', cfg.port), Handler)
    httpd.cfg = cfg

    def on_term(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, on_term)
    try:
        httpd.serve_forever(poll_interval=0.1)
    finally:
        httpd.server_close()


class Responder:
    """Controls one responder process on 127.0.0.1:`port` for the CA whose certificate and
    key are in files. `ndays` / `nmin` set the responses' nextUpdate (nmin wins when set)."""

    def __init__(self, workdir, port, ca_cert, ca_key, ndays=1, nmin=None):
        self.dir = workdir
        self.port = port
        self.url = f'http://127.0.0.1:{port}/'
        self.ca_cert, self.ca_key = ca_cert, ca_key
        self.ndays, self.nmin = ndays, nmin
        self.index = os.path.join(workdir, 'index.txt')
        self.mode_file = os.path.join(workdir, 'mode')
        self.log = os.path.join(workdir, 'requests.log')
        self.entries = {}      # serial -> (subject, not_after, revoked_at)
        self.proc = None
        # two certificates for one name (one per server under test) are fine here
        with open(self.index + '.attr', 'w') as f:
            f.write('unique_subject = no\n')
        self.write_index()
        self.set_mode('ok')

    # -- the index (openssl ca format)

    def add(self, cert):
        """Enter a cryptography x509 certificate as valid."""
        subject = ''.join(f'/{a.rfc4514_attribute_name}={a.value}' for a in cert.subject)
        not_after = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
        self.entries[cert.serial_number] = (subject, not_after, None)
        self.write_index()
        certs = os.path.join(self.dir, 'certs')     # for the 'expired' mode
        os.makedirs(certs, exist_ok=True)
        with open(os.path.join(certs, f'{cert.serial_number:X}.pem'), 'wb') as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))

    def revoke(self, cert, when=None):
        subject, not_after, _ = self.entries[cert.serial_number]
        when = when or datetime.datetime.now(datetime.timezone.utc)
        self.entries[cert.serial_number] = (subject, not_after, when)
        self.write_index()

    def write_index(self):
        text = ''.join(index_line(serial, subject, not_after, rev)
                       for serial, (subject, not_after, rev) in self.entries.items())
        tmp = self.index + '.tmp'
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, self.index)   # a request in flight reads the old or the new one

    def set_mode(self, mode):
        """'ok', 'error500' (HTTP 500), 'garbage' (200 with no OCSP response in it) or
        'expired' (a signed 'good' response whose nextUpdate is an hour past)."""
        assert mode in MODES, mode
        with open(self.mode_file, 'w') as f:
            f.write(mode + '\n')

    def requests(self):
        """The request log: [(time, method, mode, request length)]."""
        try:
            with open(self.log) as f:
                rows = [line.split() for line in f]
        except OSError:
            return []
        return [(float(t), m, mode, int(n)) for t, m, mode, n in rows]

    # -- the process

    def start(self, timeout=10):
        cmd = [sys.executable, os.path.abspath(__file__), '--port', str(self.port),
               '--index', self.index, '--ca', self.ca_cert, '--key', self.ca_key,
               '--mode-file', self.mode_file, '--log', self.log, '--workdir', self.dir,
               '--ndays', str(self.ndays)]
        if self.nmin:
            cmd += ['--nmin', str(self.nmin)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f'OCSP responder exited with {self.proc.returncode}')
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f'OCSP responder not listening on 127.0.0.1:{self.port} '
                           f'after {timeout}s')

    def stop(self, timeout=10):
        """Ends the process by its pid (SIGTERM, then SIGKILL)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self.proc = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--index', required=True)
    ap.add_argument('--ca', required=True)
    ap.add_argument('--key', required=True)
    ap.add_argument('--mode-file', required=True)
    ap.add_argument('--log', required=True)
    ap.add_argument('--workdir', required=True)
    ap.add_argument('--ndays', type=int, default=1)
    ap.add_argument('--nmin', type=int, default=0)
    serve(ap.parse_args())


if __name__ == '__main__':
    main()

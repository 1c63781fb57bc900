"""A TLS client that sees the server's TLS records one by one (Python ssl over memory BIOs on
a plain socket), and the little HTTP/2 it takes to speak h2 through it.

Record boundaries are what a TLS layer decides and no ordinary client shows: this one feeds
each record alone to ssl, so it knows which records carried application data, how much, and
whether the stream ended with close_notify."""
import hashlib
import hmac
import socket
import ssl
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import harness

REC_HDR = 5
APPDATA = 23


class Record:
    def __init__(self, ctype, length, plain):
        self.type = ctype          # content type in the header (TLS 1.3: 23 for all)
        self.length = length       # bytes after the header
        self.plain = plain         # application data it carried (b'': none)

    def __repr__(self):
        return f'Record(type={self.type}, length={self.length}, plain={len(self.plain)})'


class RecordConn:
    """One TLS connection whose incoming records are taken apart.

    `closed` becomes 'close_notify' when the server ended the TLS stream with it, 'eof' when
    the TCP connection ended without it, 'error: ...' when a record did not decrypt."""

    def __init__(self, ca, port, servername='a.test', timeout=10, keylog=None, **ctx_args):
        ctx = harness.ssl_context(ca, **ctx_args)
        ctx.options &= ~getattr(ssl, 'OP_IGNORE_UNEXPECTED_EOF', 0)
        if keylog:
            ctx.keylog_filename = keylog      # for Tls12Records
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=servername)
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.raw = b''
        self.closed = None
        self.handshake_records = []
        self.server_random = None
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                rec = self._next_raw()
                assert rec is not None, 'the server closed the connection in the handshake'
                self.handshake_records.append(rec[0])
                if self.server_random is None:     # the first record holds the ServerHello
                    self.server_random = rec[1][REC_HDR + 4 + 2:REC_HDR + 4 + 2 + 32]
                self.inc.write(rec[1])
        self._flush()

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _next_raw(self):
        """(Record without plaintext, its bytes) of the next record, None at EOF."""
        while True:
            if len(self.raw) >= REC_HDR:
                ctype, _, length = struct.unpack('!BHH', self.raw[:REC_HDR])
                if len(self.raw) >= REC_HDR + length:
                    data = self.raw[:REC_HDR + length]
                    self.raw = self.raw[REC_HDR + length:]
                    return Record(ctype, length, b''), data
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b''
            if not chunk:
                return None
            self.raw += chunk

    def send(self, data):
        self.tls.write(data)
        self._flush()

    def next_raw(self):
        """The next record's bytes as they came, not given to ssl; None at EOF."""
        got = self._next_raw()
        return got and got[1]

    def next_record(self):
        """The next record, with the application data it carried; None once the stream
        ended (see `closed`)."""
        if self.closed:
            return None
        got = self._next_raw()
        if got is None:
            self.closed = 'eof'
            return None
        rec, data = got
        self.inc.write(data)
        plain = b''
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.closed = 'close_notify'
                break
            except ssl.SSLError as e:
                self.closed = f'error: {e}'
                break
            if not chunk:
                self.closed = 'close_notify'
                break
            plain += chunk
        self._flush()          # a key update or the like wants an answer
        rec.plain = plain
        return rec

    def records_until(self, done, limit=10000):
        """Application data records until done(all plaintext so far) or the stream ends."""
        recs, text = [], b''
        for _ in range(limit):
            rec = self.next_record()
            if rec is None:
                break
            if rec.plain:
                recs.append(rec)
                text += rec.plain
                if done(text):
                    break
        return recs, text

    def close(self):
        self.sock.close()


def tls12_prf(secret, label, seed, length):
    """The TLS 1.2 PRF with SHA-256 (RFC 5246 section 5)."""
    seed, out, a = label + seed, b'', label + seed
    while len(out) < length:
        a = hmac.new(secret, a, hashlib.sha256).digest()
        out += hmac.new(secret, a + seed, hashlib.sha256).digest()
    return out[:length]


class Tls12Records:
    """Takes over a TLS 1.2 RecordConn once its handshake is done, to send what Python's ssl
    will not send inside a session: a ClientHello (renegotiation), records of any length.
    The connection must have negotiated ECDHE-*-AES128-GCM-SHA256 and written its secrets
    to `keylog` (OpenSSL's CLIENT_RANDOM line); ssl must not be used on it any more.
    Records are sealed and opened as RFC 5288 says, the sequence numbers going on from the
    Finished messages (0)."""

    def __init__(self, conn, keylog):
        with open(keylog) as f:
            lines = [line.split() for line in f if line.startswith('CLIENT_RANDOM ')]
        client_random, master = bytes.fromhex(lines[-1][1]), bytes.fromhex(lines[-1][2])
        block = tls12_prf(master, b'key expansion', conn.server_random + client_random, 40)
        self.conn = conn
        self.write_key, self.read_key = AESGCM(block[:16]), AESGCM(block[16:32])
        self.write_iv, self.read_iv = block[32:36], block[36:40]
        self.write_seq = self.read_seq = 1

    def seal(self, typ, plain):
        """One record of content type `typ` carrying `plain` (any length)."""
        seq = self.write_seq.to_bytes(8, 'big')
        self.write_seq += 1
        aad = seq + struct.pack('!BHH', typ, 0x0303, len(plain))
        body = seq + self.write_key.encrypt(self.write_iv + seq, plain, aad)
        return struct.pack('!BHH', typ, 0x0303, len(body)) + body

    def send(self, typ, plain):
        self.conn.sock.sendall(self.seal(typ, plain))

    def recv(self):
        """(content type, plaintext) of the server's next record; None at EOF."""
        data = self.conn.next_raw()
        if data is None:
            return None
        typ, length = data[0], len(data) - REC_HDR - 8 - 16
        seq = self.read_seq.to_bytes(8, 'big')
        self.read_seq += 1
        aad = seq + struct.pack('!BHH', typ, 0x0303, length)
        return typ, self.read_key.decrypt(self.read_iv + data[5:13], data[13:], aad)

    def records_until_close(self):
        records = []
        while (rec := self.recv()) is not None:
            records.append(rec)
        return records


def http1_response_done(text):
    """Whether text holds one whole HTTP/1.1 response with a Content-Length."""
    head, sep, body = text.partition(b'\r\n\r\n')
    if not sep:
        return False
    for line in head.split(b'\r\n')[1:]:
        name, _, value = line.partition(b':')
        if name.strip().lower() == b'content-length':
            return len(body) >= int(value)
    return False


# ---- HTTP/2, as much as the tests need ------------------------------------------------------

H2_PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
H2_DATA, H2_HEADERS, H2_SETTINGS, H2_GOAWAY, H2_WINDOW_UPDATE = 0x0, 0x1, 0x4, 0x7, 0x8
H2_WINDOW_MAX = (1 << 31) - 1
H2_END_STREAM, H2_END_HEADERS, H2_ACK = 0x1, 0x4, 0x1


def h2_frame(ftype, flags, stream, payload=b''):
    return struct.pack('!I', len(payload))[1:] + struct.pack('!BBI', ftype, flags, stream) \
        + payload


def h2_get(stream, path, authority='a.test'):
    """A HEADERS frame for GET https://authority/path, ending the stream. HPACK: indexed
    :method GET (2) and :scheme https (7), literal values for :path (4) and :authority (1)."""
    block = b'\x82\x87' + b'\x04' + bytes([len(path)]) + path.encode() \
        + b'\x01' + bytes([len(authority)]) + authority.encode()
    return h2_frame(H2_HEADERS, H2_END_STREAM | H2_END_HEADERS, stream, block)


class H2Reader:
    """Takes frames out of the plaintext of a RecordConn; acknowledges the server's SETTINGS."""

    def __init__(self, conn):
        self.conn = conn
        self.buf = b''
        self.frames = []          # (type, flags, stream, payload), as they came

    def start(self):
        """The preface, with windows so large that flow control never holds the server."""
        settings = struct.pack('!HI', 0x4, H2_WINDOW_MAX)       # SETTINGS_INITIAL_WINDOW_SIZE
        window = struct.pack('!I', H2_WINDOW_MAX - 65535)
        self.conn.send(H2_PREFACE + h2_frame(H2_SETTINGS, 0, 0, settings)
                       + h2_frame(H2_WINDOW_UPDATE, 0, 0, window))

    def _take(self):
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], 'big')
            if len(self.buf) < 9 + length:
                break
            ftype, flags, stream = struct.unpack('!BBI', self.buf[3:9])
            frame = (ftype, flags, stream & 0x7fffffff, self.buf[9:9 + length])
            self.buf = self.buf[9 + length:]
            self.frames.append(frame)
            if ftype == H2_SETTINGS and not flags & H2_ACK:
                self.conn.send(h2_frame(H2_SETTINGS, H2_ACK, 0))

    def read_until(self, done):
        """Reads records until done(frames) or the stream ends; the records read, in order."""
        recs = []
        while not done(self.frames):
            rec = self.conn.next_record()
            if rec is None:
                break
            recs.append(rec)
            self.buf += rec.plain
            self._take()
        return recs


def h2_stream_ended(stream):
    def done(frames):
        return any(t in (H2_DATA, H2_HEADERS) and s == stream and f & H2_END_STREAM
                   for t, f, s, _ in frames)
    return done

"""A minimal TLS 1.3 client, for tests that send what no real client would.

NOT A SECURE CLIENT. It checks neither the server's certificate nor its CertificateVerify:
it trusts whatever answers. It exists to send hostile input to mod_tls: records of any inner
content type and any length (over 2^14 too), plaintext records at any point, early data that
the server cannot decrypt. It speaks TLS_AES_128_GCM_SHA256 with x25519 only, knows no
HelloRetryRequest, and resumes only with a ticket it was given (`Tls13Client.session()`); a PSK
it offers without one is made up, so the server rejects it and any 0-RTT data.

Built on python3-cryptography (X25519, HKDF-Expand, AES-GCM); the key schedule follows
RFC 8446 section 7.
"""
import hashlib
import hmac
import os
import socket
import struct
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23
CLIENT_HELLO, SERVER_HELLO, NEW_SESSION_TICKET, ENCRYPTED_EXTENSIONS = 1, 2, 4, 8
FINISHED, KEY_UPDATE = 20, 24
EXT_EARLY_DATA, EXT_PRE_SHARED_KEY = 42, 41
BINDERS_LEN = 2 + 1 + 32      # the binders list of one SHA-256 binder, at the hello's end
TLS_AES_128_GCM_SHA256, X25519 = 0x1301, 0x001d
SIG_ALGS = (0x0403, 0x0503, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0807)
HRR_RANDOM = hashlib.sha256(b'HelloRetryRequest').digest()


class TlsAlert(Exception):
    """The server sent an alert while the client expected something else."""

    def __init__(self, level, description):
        super().__init__(f'alert level {level} description {description}')
        self.level, self.description = level, description


def u8(b):
    return struct.pack('!B', len(b)) + b


def u16(b):
    return struct.pack('!H', len(b)) + b


def u24(b):
    return struct.pack('!I', len(b))[1:] + b


def sha256(data):
    return hashlib.sha256(data).digest()


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()      # RFC 5869 section 2.2


def hkdf_expand_label(secret, label, context, length):
    """HKDF-Expand-Label, RFC 8446 section 7.1."""
    info = struct.pack('!H', length) + u8(b'tls13 ' + label) + u8(context)
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def derive_secret(secret, label, transcript):
    return hkdf_expand_label(secret, label, sha256(transcript), 32)


def extension(typ, data):
    return struct.pack('!H', typ) + u16(data)


def client_hello(share=None, server_name='a.test', alpn=None, early_data=False, psk=None,
                 tickets=False):
    """A ClientHello handshake message with x25519 key share `share` (random bytes if None).
    `psk`: (ticket, obfuscated age) to offer, its binder left zero (Tls13Client fills it in);
    `early_data` without a psk offers a made-up one. `tickets`: the psk_key_exchange_modes
    without which a server sends no tickets."""
    share = share or os.urandom(32)
    exts = extension(0, u16(b'\0' + u16(server_name.encode()))) if server_name else b''
    exts += extension(43, u8(struct.pack('!H', 0x0304)))
    exts += extension(10, u16(struct.pack('!H', X25519)))
    exts += extension(13, u16(b''.join(struct.pack('!H', s) for s in SIG_ALGS)))
    exts += extension(51, u16(struct.pack('!H', X25519) + u16(share)))
    if alpn:
        exts += extension(16, u16(b''.join(u8(p.encode()) for p in alpn)))
    if early_data:
        exts += extension(EXT_EARLY_DATA, b'')
    if early_data or psk or tickets:
        exts += extension(45, u8(b'\x01'))                         # psk_dhe_ke
    if early_data or psk:
        # without a ticket: a PSK the server never issued; it must reject it, and with it
        # the 0-RTT data
        ticket, age = psk or (b'made-up ticket ' + os.urandom(16), 12345)
        binder = bytes(32) if psk else os.urandom(32)
        identity = u16(ticket) + struct.pack('!I', age)
        exts += extension(EXT_PRE_SHARED_KEY, u16(identity) + u16(u8(binder)))
    body = (struct.pack('!H', 0x0303) + os.urandom(32) + u8(os.urandom(32))
            + u16(struct.pack('!H', TLS_AES_128_GCM_SHA256)) + u8(b'\0') + u16(exts))
    return bytes([CLIENT_HELLO]) + u24(body)


def extension_types(exts):
    """The types in a list of extensions (without its length)."""
    types = []
    while len(exts) >= 4:
        typ, n = struct.unpack('!HH', exts[:4])
        types.append(typ)
        exts = exts[4 + n:]
    return types


class Protection:
    """One direction's record protection (RFC 8446 section 5.2, 5.3)."""

    def __init__(self, secret):
        self.secret = secret
        self.aead = AESGCM(hkdf_expand_label(secret, b'key', b'', 16))
        self.iv = hkdf_expand_label(secret, b'iv', b'', 12)
        self.seq = 0

    def _nonce(self):
        seq = self.seq.to_bytes(12, 'big')
        self.seq += 1
        return bytes(a ^ b for a, b in zip(self.iv, seq))

    def seal(self, content, typ, padding=0):
        inner = content + bytes([typ]) + bytes(padding)
        header = struct.pack('!BHH', APPLICATION_DATA, 0x0303, len(inner) + 16)
        return header + self.aead.encrypt(self._nonce(), inner, header)

    def open(self, header, body):
        inner = self.aead.decrypt(self._nonce(), body, header).rstrip(b'\0')
        return inner[-1], inner[:-1]

    def updated(self):
        """The protection after a KeyUpdate (RFC 8446 section 7.2)."""
        return Protection(hkdf_expand_label(self.secret, b'traffic upd', b'', 32))


class Tls13Client:
    """One connection. `handshake()` gets it to application traffic keys; then `send()` writes
    one encrypted record of anything, `send_raw()` one plaintext record, and `recv_record()`
    reads one, decrypted where it was encrypted."""

    def __init__(self, port, server_name='a.test', alpn=None, early_data=False,
                 host='127.0.0.1', timeout=10, resume=None, tickets=False):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.server_name, self.alpn, self.early_data = server_name, alpn, early_data
        self.key = X25519PrivateKey.generate()
        self.transcript = b''
        self.read_keys = self.write_keys = None
        self.app_read_secret = self.app_write_secret = None
        self.key_updates_received = 0
        self.resume = resume               # a session() of an earlier connection, or None
        self.want_tickets = tickets
        self.early_secret = hkdf_extract(b'\0' * 32, resume['psk'] if resume else b'\0' * 32)
        self.resumed = self.early_data_accepted = False
        self.tickets = []                  # (NewSessionTicket message, time received)
        self.resumption_secret = None
        self._in = b''

    # -- records

    def send_raw(self, typ, payload, version=0x0303):
        """One plaintext record, exactly as given."""
        self.sock.sendall(struct.pack('!BHH', typ, version, len(payload)) + payload)

    def send(self, content, typ=APPLICATION_DATA, padding=0):
        """One record protected with the current keys: `content` of any length, of inner
        content type `typ`, followed by `padding` zero bytes."""
        self.sock.sendall(self.write_keys.seal(content, typ, padding))

    def _read(self, n):
        while len(self._in) < n:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b''
            if not chunk:
                return None
            self._in += chunk
        data, self._in = self._in[:n], self._in[n:]
        return data

    def recv_record(self):
        """(content type, payload) of the next record, decrypted when protected; None once
        the server closed the connection."""
        header = self._read(5)
        if header is None:
            return None
        typ, _, length = struct.unpack('!BHH', header)
        body = self._read(length)
        if body is None:
            return None
        if typ == APPLICATION_DATA and self.read_keys:
            typ, payload = self.read_keys.open(header, body)
            if typ == HANDSHAKE and self.app_read_secret and payload[0] == KEY_UPDATE:
                # the server's next records use its next keys (it sends KeyUpdate alone)
                self.read_keys = self.read_keys.updated()
                self.key_updates_received += 1
            elif typ == HANDSHAKE and self.app_read_secret and payload[0] == NEW_SESSION_TICKET:
                self.tickets.append((payload, time.monotonic()))
            return typ, payload
        return typ, body

    def key_update(self, request=False):
        """Sends a KeyUpdate (update_requested when `request`) and moves to the next write
        keys; the server's answering KeyUpdate is followed when recv_record reads it."""
        self.send(bytes([KEY_UPDATE]) + u24(bytes([1 if request else 0])), HANDSHAKE)
        self.write_keys = self.write_keys.updated()

    def records_until_close(self):
        records = []
        while (rec := self.recv_record()) is not None:
            records.append(rec)
        return records

    def close(self):
        self.sock.close()

    # -- handshake

    def client_hello(self):
        """The ClientHello handshake message (also the start of the transcript), with the
        binder of the resumed session's PSK (RFC 8446 section 4.2.11.2)."""
        share = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        psk = None
        if self.resume:
            age_ms = int((time.monotonic() - self.resume['received']) * 1000)
            psk = (self.resume['ticket'], (age_ms + self.resume['age_add']) % 2**32)
        hello = client_hello(share, self.server_name, self.alpn, self.early_data, psk,
                             self.want_tickets)
        if self.resume:
            binder_key = derive_secret(self.early_secret, b'res binder', b'')
            key = hkdf_expand_label(binder_key, b'finished', b'', 32)
            truncated = hello[:-BINDERS_LEN]
            hello = truncated + u16(u8(hmac.new(key, sha256(truncated), hashlib.sha256).digest()))
        self.transcript = hello
        return self.transcript

    def send_early_data(self, content, padding=0):
        """After send_hello with a resumed session: one 0-RTT record, sealed with the
        client_early_traffic_secret (as a client that believes in 0-RTT sends it)."""
        early = Protection(derive_secret(self.early_secret, b'c e traffic', self.transcript))
        self.sock.sendall(early.seal(content, APPLICATION_DATA, padding))

    def session(self):
        """The resumable session from the first NewSessionTicket this connection received:
        a dict for Tls13Client(resume=...) (RFC 8446 section 4.6.1)."""
        msg, received = self.tickets[0]
        body = msg[4:]
        age_add = struct.unpack('!I', body[4:8])[0]
        nonce = body[9:9 + body[8]]
        pos = 9 + body[8]
        ticket = body[pos + 2:pos + 2 + struct.unpack('!H', body[pos:pos + 2])[0]]
        psk = hkdf_expand_label(self.resumption_secret, b'resumption', nonce, 32)
        return {'ticket': ticket, 'age_add': age_add, 'psk': psk, 'received': received}

    def send_hello(self):
        self.send_raw(HANDSHAKE, self.client_hello(), version=0x0301)

    def _handshake_messages(self):
        """Yields the server's handshake messages (type, whole message) across records."""
        buf = b''
        while True:
            while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[1:4], 'big'):
                rec = self.recv_record()
                if rec is None:
                    raise ConnectionError('server closed during the handshake')
                typ, payload = rec
                if typ == ALERT:
                    raise TlsAlert(payload[0], payload[1])
                if typ == HANDSHAKE:
                    buf += payload
                elif typ != CHANGE_CIPHER_SPEC:
                    raise ConnectionError(f'unexpected record type {typ} in the handshake')
            n = 4 + int.from_bytes(buf[1:4], 'big')
            yield buf[0], buf[:n]
            buf = buf[n:]

    def finish_handshake(self):
        """After send_hello (and whatever else the test sent): reads the server's flight,
        sends Finished and switches to application traffic keys."""
        msgs = self._handshake_messages()
        typ, sh = next(msgs)
        if typ != SERVER_HELLO or sh[6:38] == HRR_RANDOM:
            raise ConnectionError(f'expected a ServerHello, got handshake type {typ}')
        self.transcript += sh
        pos = 4 + 2 + 32
        pos += 1 + sh[pos] + 3                       # session id, suite, compression
        exts, shared = sh[pos + 2:], None
        while exts:
            etyp, elen = struct.unpack('!HH', exts[:4])
            if etyp == 51:
                peer = X25519PublicKey.from_public_bytes(exts[4 + 4:4 + elen])
                shared = self.key.exchange(peer)
            elif etyp == EXT_PRE_SHARED_KEY:
                self.resumed = True
            exts = exts[4 + elen:]
        if not self.resumed:
            self.early_secret = hkdf_extract(b'\0' * 32, b'\0' * 32)
        hs_secret = hkdf_extract(derive_secret(self.early_secret, b'derived', b''), shared)
        c_hs = derive_secret(hs_secret, b'c hs traffic', self.transcript)
        self.read_keys = Protection(derive_secret(hs_secret, b's hs traffic', self.transcript))
        self.write_keys = Protection(c_hs)
        while True:
            typ, msg = next(msgs)
            if typ == FINISHED:
                key = hkdf_expand_label(self.read_keys.secret, b'finished', b'', 32)
                expected = hmac.new(key, sha256(self.transcript), hashlib.sha256).digest()
                if msg[4:] != expected:
                    raise ConnectionError('server Finished does not verify')
            if typ == ENCRYPTED_EXTENSIONS:
                self.early_data_accepted = EXT_EARLY_DATA in extension_types(msg[6:])
            self.transcript += msg
            if typ == FINISHED:
                break
        master = hkdf_extract(derive_secret(hs_secret, b'derived', b''), b'\0' * 32)
        self.app_read_secret = derive_secret(master, b's ap traffic', self.transcript)
        self.app_write_secret = derive_secret(master, b'c ap traffic', self.transcript)
        key = hkdf_expand_label(c_hs, b'finished', b'', 32)
        verify = hmac.new(key, sha256(self.transcript), hashlib.sha256).digest()
        finished = bytes([FINISHED]) + u24(verify)
        self.send(finished, HANDSHAKE)
        self.resumption_secret = derive_secret(master, b'res master', self.transcript + finished)
        self.read_keys = Protection(self.app_read_secret)
        self.write_keys = Protection(self.app_write_secret)

    def handshake(self):
        self.send_hello()
        self.finish_handshake()
        return self

    # -- HTTP, for checking that a connection works

    def get(self, path='/', host=None):
        """(status, body) of an HTTP/1.1 GET sent in one record, read until the server
        closes; session tickets and close_notify are skipped, a fatal alert raises."""
        host = host or self.server_name or 'localhost'
        try:
            self.send(f'GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n'.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass                     # the server gave up already: its alert may be there
        records = self.records_until_close()
        for typ, payload in records:
            if typ == ALERT and payload[0] == 2:
                raise TlsAlert(payload[0], payload[1])
        data = b''.join(p for t, p in records if t == APPLICATION_DATA)
        head, _, body = data.partition(b'\r\n\r\n')
        status = int(head.split(b' ', 2)[1]) if head.startswith(b'HTTP/') else None
        return status, body


def alert_record(description, level=2):
    """The 7 bytes of a plaintext alert record, as a server sends one before any keys."""
    return struct.pack('!BHHBB', ALERT, 0x0303, 2, level, description)

"""Certificate authorities and client certificates for the client
certificate tests (test_15, test_16).

Keys and certificates are made with `cryptography` at test time into temp
dirs; revocation lists are made the way an admin would, with `openssl ca`
(-revoke, -gencrl) on an index file in each authority's own dir. Nothing
secret is ever written outside those temp dirs.
"""
import datetime
import json
import os
import socket
import ssl
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import harness

DAY = datetime.timedelta(days=1)

# DN attributes by the short names used in the tests, in the order they are
# written into a certificate (most general first, as is usual).
_ATTRS = [('C', NameOID.COUNTRY_NAME), ('ST', NameOID.STATE_OR_PROVINCE_NAME),
          ('L', NameOID.LOCALITY_NAME), ('O', NameOID.ORGANIZATION_NAME),
          ('OU', NameOID.ORGANIZATIONAL_UNIT_NAME), ('CN', NameOID.COMMON_NAME),
          ('emailAddress', NameOID.EMAIL_ADDRESS)]

CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def dn(**parts):
    """An x509.Name from short names: dn(C='DE', O='Example', CN='alice').
    Values may also be lists (several attributes of one type) or
    x509.NameAttribute / x509.RelativeDistinguishedName objects given
    as `extra=[...]`, appended last."""
    extra = parts.pop('extra', [])
    rdns = []
    for short, oid in _ATTRS:
        if short not in parts:
            continue
        values = parts.pop(short)
        for v in values if isinstance(values, (list, tuple)) else [values]:
            rdns.append(x509.RelativeDistinguishedName([x509.NameAttribute(oid, v)]))
    if parts:
        raise ValueError(f'unknown DN parts {sorted(parts)}')
    for e in extra:
        if isinstance(e, x509.NameAttribute):
            e = x509.RelativeDistinguishedName([e])
        rdns.append(e)
    return x509.Name(rdns)


def new_key(key_type):
    if key_type == 'rsa':
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == 'ec':
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == 'ec384':
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == 'ed25519':
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(key_type)


def _sig_hash(key):
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _der(tag, content):
    n = len(content)
    size = bytes([n]) if n < 0x80 else bytes([0x80 | len(n.to_bytes(4, 'big').lstrip(b'\0'))]) \
        + n.to_bytes(4, 'big').lstrip(b'\0')
    return bytes([tag]) + size + content


def raw_san_der(dns=(), email=()):
    """A SubjectAltName extension value (GeneralNames) with the names as
    given, as latin-1 bytes: dNSName [2] and rfc822Name [1] IA5Strings."""
    return _der(0x30, b''.join([_der(0x82, n.encode('latin-1')) for n in dns]
                               + [_der(0x81, m.encode('latin-1')) for m in email]))


class Issued:
    """A certificate and its key on disk. `chain_path` holds the certificate
    followed by the issuing intermediates (what a client sends)."""

    def __init__(self, cert, key, cert_path, key_path, chain_path):
        self.cert = cert
        self.key = key
        self.cert_path = cert_path
        self.key_path = key_path
        self.chain_path = chain_path

    @property
    def pem(self):
        return cert_pem(self.cert).decode()

    @property
    def serial_hex(self):
        """The serial as OpenSSL's i2a_ASN1_INTEGER prints it (mod_ssl's
        SSL_*_M_SERIAL): upper case hex, whole bytes."""
        n = self.cert.serial_number
        h = f'{n:X}'
        return h if len(h) % 2 == 0 else '0' + h

    def curl_args(self, chain=True):
        return ['--cert', self.chain_path if chain else self.cert_path,
                '--key', self.key_path]


class Authority:
    """A CA (root, or intermediate when `parent` is given) with its own temp
    dir and an `openssl ca` setup for revocation lists."""

    def __init__(self, subject, key_type='rsa', parent=None, base_dir=None,
                 label='ca'):
        self.dir = os.path.join(base_dir, label) if base_dir else harness.mkdtemp('tls-pki-')
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.label = label
        self.parent = parent
        self.key = new_key(key_type)
        self.subject = subject
        self._n = 0
        t = now()
        signer = parent.key if parent else self.key
        issuer = parent.cert.subject if parent else subject
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        b = (x509.CertificateBuilder()
             .subject_name(subject).issuer_name(issuer)
             .public_key(self.key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(t - 2 * DAY)
             .not_valid_after(t + 3650 * DAY)
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(
                 digital_signature=True, key_cert_sign=True, crl_sign=True,
                 content_commitment=False, key_encipherment=False,
                 data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False), critical=True)
             .add_extension(ski, critical=False))
        if parent:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                parent.key.public_key()), critical=False)
        self.cert = b.sign(signer, _sig_hash(signer))
        self.cert_path = harness.write_file(os.path.join(self.dir, 'ca.pem'), cert_pem(self.cert))
        self.key_path = harness.write_file(os.path.join(self.dir, 'ca.key'), key_pem(self.key),
                                           0o600)
        self._openssl_ca_setup()

    # -- openssl ca

    def _openssl_ca_setup(self):
        d = self.dir
        harness.write_file(os.path.join(d, 'index.txt'), '')
        harness.write_file(os.path.join(d, 'index.txt.attr'), 'unique_subject = no\n')
        harness.write_file(os.path.join(d, 'crlnumber'), '1000\n')
        harness.write_file(os.path.join(d, 'serial'), '01\n')
        os.makedirs(os.path.join(d, 'newcerts'), exist_ok=True)
        self.ca_conf = harness.write_file(os.path.join(d, 'openssl-ca.cnf'), f"""
[ ca ]
default_ca = this_ca

[ this_ca ]
dir = {d}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 30
policy = any_policy
unique_subject = no
crl_extensions = crl_ext

[ any_policy ]
commonName = optional

[ crl_ext ]
authorityKeyIdentifier = keyid:always
""")

    def _openssl_ca(self, *args):
        cmd = ['openssl', 'ca', '-batch', '-config', self.ca_conf] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f'{" ".join(cmd)} failed:\n{p.stdout}{p.stderr}')
        return p.stdout + p.stderr

    def revoke(self, issued_or_cert_path, reason='keyCompromise'):
        """Enter a certificate this CA issued as revoked in its index."""
        path = getattr(issued_or_cert_path, 'cert_path', issued_or_cert_path)
        self._openssl_ca('-revoke', path, '-crl_reason', reason)

    def gen_crl(self, name=None, days=30):
        """A fresh CRL (PEM) of everything revoked so far; returns its path."""
        path = os.path.join(self.dir, name or f'{self.label}.crl.pem')
        self._openssl_ca('-gencrl', '-crldays', str(days), '-out', path)
        os.chmod(path, 0o644)
        return path

    def stale_crl(self, revoked=(), name=None):
        """A CRL whose nextUpdate has passed (yesterday), listing `revoked`.
        `openssl ca` only makes lists that start now, so this one is
        signed directly."""
        t = now()
        b = (x509.CertificateRevocationListBuilder()
             .issuer_name(self.cert.subject)
             .last_update(t - 10 * DAY)
             .next_update(t - DAY)
             .add_extension(x509.CRLNumber(7), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.key.public_key()), critical=False))
        for item in revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(item.cert.serial_number)
                .revocation_date(t - 5 * DAY).build())
        crl = b.sign(self.key, _sig_hash(self.key))
        path = os.path.join(self.dir, name or f'{self.label}.stale.crl.pem')
        return harness.write_file(path, crl.public_bytes(serialization.Encoding.PEM))

    # -- issuing

    def issue(self, subject, key_type='ec', eku=(CLIENT_AUTH,), san_dns=(), san_email=(),
              not_before=None, not_after=None, serial=None, label=None, raw_san=False):
        """Issue a leaf certificate. `eku` None leaves the extension out.
        Dates default to valid from yesterday for a year (plus half a day,
        so that day counts are not on a boundary). `raw_san` writes the SANs
        byte for byte, unchecked (cryptography refuses e.g. a newline in an
        e-mail address): for hostile names."""
        t = now()
        key = new_key(key_type)
        self._n += 1
        label = label or f'leaf{self._n:02d}'
        b = (x509.CertificateBuilder()
             .subject_name(subject).issuer_name(self.cert.subject)
             .public_key(key.public_key())
             .serial_number(serial or x509.random_serial_number())
             .not_valid_before(not_before or t - DAY)
             .not_valid_after(not_after or t + 365 * DAY + DAY / 2)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                            critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.key.public_key()), critical=False))
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        if raw_san:
            b = b.add_extension(x509.UnrecognizedExtension(
                x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
                raw_san_der(san_dns, san_email)), critical=False)
        elif san_dns or san_email:
            names = ([x509.DNSName(n) for n in san_dns]
                     + [x509.RFC822Name(m) for m in san_email])
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = b.sign(self.key, _sig_hash(self.key))
        base = os.path.join(self.dir, label)
        cert_path = harness.write_file(base + '.crt', cert_pem(cert))
        key_path = harness.write_file(base + '.key', key_pem(key), 0o600)
        chain = cert_pem(cert)
        ca = self
        while ca.parent:  # intermediates, not the root
            chain += cert_pem(ca.cert)
            ca = ca.parent
        chain_path = harness.write_file(base + '.chain.pem', chain)
        return Issued(cert, key, cert_path, key_path, chain_path)

    def bundle(self, *others, name='bundle.pem'):
        """A PEM file with this CA's certificate and the others'."""
        data = cert_pem(self.cert) + b''.join(cert_pem(o.cert) for o in others)
        return harness.write_file(os.path.join(self.dir, name), data)


# --------------------------------------------------------------------------
# Clients presenting certificates

class Outcome:
    """What a client saw: ok (a HTTP response came back) with status and
    body, or refused with the error."""

    def __init__(self, ok, status=None, body=b'', error='', headers=None):
        self.ok = ok
        self.status = status
        self.body = body
        self.error = error
        self.headers = headers or {}

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return (f'Outcome(ok={self.ok}, status={self.status}, '
                f'error={self.error!r}, body={self.body[:200]!r})')


TLS_VERSIONS = {'tls12': ssl.TLSVersion.TLSv1_2, 'tls13': ssl.TLSVersion.TLSv1_3}
CURL_TLS = {'tls12': ['--tlsv1.2', '--tls-max', '1.2'], 'tls13': ['--tlsv1.3'], None: []}


def py_get(trust, port, path='/', sni='a.test', host=None, client=None, tls=None,
           chain=True, timeout=15):
    """One HTTP/1.1 GET with Python's ssl, presenting `client` (an Issued)
    if given. `sni` None sends no SNI; `host` is the Host header (default:
    the SNI name). A failed handshake, or an alert / reset instead of a
    response (TLS 1.3 rejects client certificates after the client's
    handshake is done), is a refusal, its error says which; a server that
    neither answers nor closes within `timeout` fails the test."""
    ctx = harness.ssl_context(trust, check_hostname=bool(sni))
    if tls:
        ctx.minimum_version = ctx.maximum_version = TLS_VERSIONS[tls]
    if client:
        ctx.load_cert_chain(client.chain_path if chain else client.cert_path,
                            client.key_path)
    host = host or sni or '127.0.0.1'
    raw = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    try:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            s.sendall(f'GET {path} HTTP/1.1\r\nHost: {host}\r\n'
                      'Connection: close\r\n\r\n'.encode())
            got = harness.read_until_close(s, timeout)
    except TimeoutError as e:
        raise AssertionError(f'no handshake with 127.0.0.1:{port} within {timeout}s: {e}')
    except (ssl.SSLError, ConnectionError) as e:
        return Outcome(False, error=f'{type(e).__name__}: {e}')
    finally:
        raw.close()
    if got.end in ('alert', 'reset'):
        return Outcome(False, error=f'{got.end} after {len(got.data)} bytes: {got.error}')
    data = got.data
    if not data:
        return Outcome(False, error='connection closed without a response')
    head, _, body = data.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(':')
        headers[k.strip().lower()] = v.strip()
    if headers.get('transfer-encoding', '').lower() == 'chunked':
        body = _dechunk(body)
    return Outcome(True, status, body, headers=headers)


def _dechunk(data):
    out = b''
    while data:
        size_line, _, data = data.partition(b'\r\n')
        size = int(size_line.split(b';')[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


def curl_get(trust, port, path='/', host='a.test', client=None, tls=None,
             args=(), chain=True):
    """One GET with curl (HTTP/1.1 unless `args` say otherwise)."""
    extra = list(args) or ['--http1.1']
    if client:
        extra += client.curl_args(chain)
    r = harness.curl(trust, port, path, host=host, args=extra + CURL_TLS[tls])
    # (28: curl's timeout, which is no refusal)
    assert r.rc != 28, f'curl timed out: {r}'
    if r.rc != 0:
        return Outcome(False, error=f'curl rc={r.rc}: {r.stderr.strip()}')
    return Outcome(True, int(r.status), r.body, headers={'http_version': r.http_version})


def get(how, trust, port, path='/', host='a.test', client=None, tls=None, chain=True):
    if how == 'curl':
        return curl_get(trust, port, path, host=host, client=client, tls=tls, chain=chain)
    return py_get(trust, port, path, sni=host, client=client, tls=tls, chain=chain)

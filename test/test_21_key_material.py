"""Private keys: once loaded, no copy of the secret key material stays in Apache's memory
outside the key object itself (freed buffers and stack included), in the parent or in its
children, whatever the key type and whether the key has its own file."""
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import harness


def _secret_bytes(key_path):
    """A run of bytes that only the private key holds, as they stand in its DER: part of
    RSA's private exponent, or the whole EC scalar."""
    with open(key_path, 'rb') as f:
        key = serialization.load_pem_private_key(f.read(), None)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.private_numbers().d.to_bytes(256, 'big')[100:148]
    return key.private_numbers().private_value.to_bytes(32, 'big')


def _copies(pid, needle):
    """How often needle stands in the readable memory of process pid."""
    n = 0
    with open(f'/proc/{pid}/maps') as f:
        regions = [line.split() for line in f]
    with open(f'/proc/{pid}/mem', 'rb', 0) as mem:
        for r in regions:
            lo, hi = (int(x, 16) for x in r[0].split('-'))
            if not r[1].startswith('r') or hi - lo > 1 << 30:
                continue
            try:
                mem.seek(lo)
                n += mem.read(hi - lo).count(needle)
            except OSError:
                pass   # a region that went away or cannot be read ([vvar])
    return n


@pytest.mark.parametrize('key_type', ['rsa', 'ec'])
@pytest.mark.parametrize('combined', [False, True], ids=['key-file', 'key-in-cert-file'])
def test_no_stray_key_copies(ca, apache_factory, key_type, combined):
    cert, key = ca.issue(['a.test'], key_type=key_type, tag='keycopies')
    with open(key, 'rb') as f:
        b64_lines = [line for line in f.read().split(b'\n') if line and b'-----' not in line]
    # the secret as DER bytes, and a line of the key file's base64 text
    needles = [_secret_bytes(key), b64_lines[len(b64_lines) // 2]]
    files = f'{cert} {key}'
    if combined:
        both = os.path.join(harness.mkdtemp('tls-keycopies-'), 'both.pem')
        harness.write_file(both, open(cert).read() + open(key).read(), 0o600)
        files = both
    port = harness.free_port()
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {files}
</VirtualHost>
""", http2=False, cgi=False)
    a.start()
    # the key works: a handshake signs with it
    assert harness.tls_info(ca, port)['cn'] == 'a.test'
    # The scan must see what is there: the certificate, which the server keeps, is found.
    with open(cert, 'rb') as f:
        cert_der = x509.load_pem_x509_certificate(f.read()).public_bytes(
            serialization.Encoding.DER)
    assert _copies(a.pid, cert_der[-64:]) > 0, 'the memory scan finds not even the certificate'
    found = {(pid, i): _copies(pid, needle) for pid in [a.pid] + a.children()
             for i, needle in enumerate(needles)}
    assert not any(found.values()), \
        f'copies of the private key per (process, 0: DER / 1: base64): {found}'


@pytest.mark.parametrize('key_type,fmt', [('rsa', 'TraditionalOpenSSL'), ('ec', 'TraditionalOpenSSL'),
                                          ('rsa', 'PKCS8')],
                         ids=['rsa-pkcs1', 'ec-sec1', 'rsa-pkcs8'])
def test_key_formats(ca, apache_factory, key_type, fmt):
    """The bridge reads the key's PEM itself: PKCS#1 ("RSA PRIVATE KEY"), SEC1
    ("EC PRIVATE KEY") and PKCS#8 ("PRIVATE KEY") all serve."""
    cert, key = ca.issue(['a.test'], key_type=key_type, tag='formats')
    with open(key, 'rb') as f:
        k = serialization.load_pem_private_key(f.read(), None)
    path = os.path.join(harness.mkdtemp('tls-keyformats-'), f'{key_type}-{fmt}.key')
    harness.write_file(path, k.private_bytes(serialization.Encoding.PEM,
                                             getattr(serialization.PrivateFormat, fmt),
                                             serialization.NoEncryption()), 0o600)
    port = harness.free_port()
    a = apache_factory(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName a.test
  TLSCertificate {cert} {path}
</VirtualHost>
""", http2=False, cgi=False)
    a.start()
    status, _, body = harness.https_get(ca, port, '/hello.txt')
    assert (status, body) == (200, b'Hello, TLS!\n')

"""Whether a fuzz input carries a private key or a whole certificate: such inputs are made at
run time and must not be committed (fuzz/run.py leaves them out of a merge, test_31_build.py
fails on any in fuzz/corpus/). Certificates are looked for as OpenSSL reads them (d2i_X509,
PEM_read_X509: what `openssl x509 -inform DER/PEM` does), in process, so that a corpus of
thousands of files is checked in a second."""

import re

from OpenSSL import crypto

PEM_CERT = re.compile(rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----.*?-----END [A-Z0-9 ]*-----",
                      re.S)
# A certificate is a SEQUENCE with a length in one or two bytes (127 bytes to 64 KiB).
DER_START = re.compile(rb"\x30(?:\x81|\x82)", re.S)


def is_certificate(data, kind):
    try:
        crypto.load_certificate(kind, data)
        return True
    except (crypto.Error, ValueError):
        return False


def carries_secret(data):
    if b"PRIVATE KEY" in data:
        return True
    for m in PEM_CERT.finditer(data):
        if is_certificate(m.group(0), crypto.FILETYPE_PEM):
            return True
    for m in DER_START.finditer(data):
        at = m.start()
        if data[at + 1] == 0x81:
            end = at + 3 + data[at + 2] if at + 2 < len(data) else len(data) + 1
        else:
            end = at + 4 + (data[at + 2] << 8 | data[at + 3]) if at + 3 < len(data) else len(data) + 1
        if end <= len(data) and is_certificate(data[at:end], crypto.FILETYPE_ASN1):
            return True
    return False

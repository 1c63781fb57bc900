#!/usr/bin/python3
"""Makes what the fuzz targets start from and must not be committed: the test certificates and
keys (BUILD/certs, read by the targets at startup) and the seeds made with them
(BUILD/seeds/<target>): PEM chains, keys, CRLs and an OCSP response for fuzz_certs, DER
certificates of many shapes for fuzz_x509, real ClientHellos (Python's ssl, which is
OpenSSL's) and handshakes recorded between bridge clients and bridge servers for
fuzz_handshake, policy lines for fuzz_policy. Everything is new on every run."""

import argparse
import os
import shutil
import ssl
import subprocess
import sys
import time

SEP = b"\n=|mtls|=\n"          # fuzz_util.h's FUZZ_SEP


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def read(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


def write(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def make_certs(d):
    """A CA, server certificates (ECDSA and RSA) valid for *.test, a client certificate with
    every DN part the variables know, a CRL and an OCSP response; the chains in NAME.pem."""
    ext = "ext.cnf"
    with open(os.path.join(d, ext), "w") as f:
        f.write("[server]\nsubjectAltName=DNS:server.test,DNS:rsa.test,DNS:strict.test,DNS:other.test,"
                "DNS:refuse.test,DNS:*.x.test\n"
                "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\n"
                "[client]\nsubjectAltName=email:client@x.test,email:second@x.test,"
                "DNS:client.test,IP:127.0.0.1,URI:https://x.test/\n"
                "extendedKeyUsage=clientAuth\nauthorityKeyIdentifier=keyid\n"
                "[odd]\nsubjectAltName=DNS:a.test,DNS:b.test,DNS:c.test,email:o@x.test,"
                "otherName:1.2.3.4;UTF8:other,dirName:dir_sect,RID:1.2.3.4\n"
                "[dir_sect]\nCN=in a SAN\nO=dir\n"
                "[v3]\nsubjectKeyIdentifier=hash\n")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=d)
    openssl("req", "-new", "-x509", "-key", "ca.key", "-subj", "/O=mtls fuzz/CN=mtls fuzz CA",
            "-days", "30", "-addext", "basicConstraints=critical,CA:true",
            "-addext", "keyUsage=keyCertSign,cRLSign", "-out", "ca.pem", cwd=d)

    serials = iter(range(0x1001, 0x2000))

    def leaf(name, keygen, subj, section, days="30"):
        openssl(*keygen, "-out", name + ".key", cwd=d)
        openssl("req", "-new", "-key", name + ".key", "-subj", subj, "-out", name + ".csr", cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-set_serial", str(next(serials)), "-days", days, "-extfile", ext,
                "-extensions", section, "-out", name + ".crt", cwd=d)
        write(d, name + ".pem", read(d, name + ".crt") + read(d, "ca.pem"))

    ec = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    leaf("ec", ec, "/CN=server.test/O=mtls fuzz", "server")
    leaf("rsa", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
         "/CN=server.test/O=mtls fuzz", "server")
    leaf("client", ec, "/C=DE/ST=Berlin/L=Mitte/O=mtls fuzz/OU=one/OU=two/CN=client"
         "/emailAddress=client@x.test/UID=42/DC=test/title=T/GN=G/SN=S/description=D", "client")
    leaf("revoked", ec, "/CN=revoked", "client")
    leaf("ed", ["genpkey", "-algorithm", "ED25519"], "/CN=ed.test/O=\\00nul\\0Dcr", "odd", "9000")
    leaf("p384", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
         "/CN=p384.test/OU=a/OU=b/OU=c", "v3")

    # the CRL revokes one client certificate, through `openssl ca`'s little database
    os.makedirs(os.path.join(d, "db"), exist_ok=True)
    write(d, "db/index.txt", b"")
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca=fz\n[fz]\ndatabase=db/index.txt\ndefault_md=sha256\n"
                "crlnumber=db/crlnumber\ndefault_crl_days=30\n")
    write(d, "db/crlnumber", b"01\n")
    openssl("ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem",
            "-revoke", "revoked.crt", cwd=d)
    openssl("ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem", "-gencrl",
            "-out", "crl.pem", cwd=d)

    # an OCSP response (status unknown to this responder, which is still a response)
    openssl("ocsp", "-issuer", "ca.pem", "-cert", "ec.crt", "-no_nonce", "-reqout", "ocsp.req",
            cwd=d)
    openssl("ocsp", "-index", "db/index.txt", "-rsigner", "ca.pem", "-rkey", "ca.key", "-CA",
            "ca.pem", "-reqin", "ocsp.req", "-respout", "ocsp.der", "-ndays", "1", cwd=d)
    # keys in the other encodings the loader reads, and one it must refuse
    openssl("ec", "-in", "ec.key", "-out", "ec-sec1.key", cwd=d)
    openssl("rsa", "-in", "rsa.key", "-traditional", "-out", "rsa-pkcs1.key", cwd=d)
    openssl("pkcs8", "-topk8", "-in", "ec.key", "-passout", "pass:x", "-out", "ec-enc.key", cwd=d)
    for name in ("ec", "rsa", "client", "ed", "p384", "ca", "revoked"):
        pem = read(d, name + (".crt" if name != "ca" else ".pem"))
        write(d, name + ".der", ssl.PEM_cert_to_DER_cert(pem.decode()))
    # fuzz_handshake's clock: recorded handshakes replay at the time they were recorded at,
    # within the certificates' validity
    write(d, "clock", b"%d\n" % (time.time() + 60))


def certs_seeds(d, out):
    ocsp = read(d, "ocsp.der")
    seeds = {
        "load-ec": b"\x00" + read(d, "ec.pem") + SEP + read(d, "ec.key") + SEP + ocsp,
        "load-ec-sec1": b"\x00" + read(d, "ec.pem") + SEP + read(d, "ec-sec1.key"),
        "load-rsa": b"\x00" + read(d, "rsa.pem") + SEP + read(d, "rsa.key") + SEP + ocsp,
        "load-rsa-pkcs1": b"\x00" + read(d, "rsa.crt") + SEP + read(d, "rsa-pkcs1.key"),
        "load-ed": b"\x00" + read(d, "ed.crt") + read(d, "ed.key"),
        "load-p384": b"\x00" + read(d, "p384.pem") + SEP + read(d, "p384.key"),
        "load-encrypted": b"\x00" + read(d, "ec.pem") + SEP + read(d, "ec-enc.key"),
        "load-mismatch": b"\x00" + read(d, "ec.pem") + SEP + read(d, "rsa.key"),
        "ca-strict": b"\x09" + read(d, "ca.pem") + read(d, "p384.crt"),
        "ca-bundle": b"\x01" + read(d, "ca.pem") + read(d, "ec.crt") + read(d, "ed.crt"),
        "clientauth": b"\x02" + read(d, "ca.pem") + SEP + read(d, "crl.pem"),
        "clientauth-required": b"\x0a" + read(d, "ca.pem") + read(d, "ec.crt") + SEP
        + read(d, "crl.pem") + read(d, "crl.pem"),
        "ocsp": b"\x03" + ocsp,
    }
    for name, data in seeds.items():
        write(out, name, data)


def x509_seeds(d, out):
    for name in ("ec", "rsa", "client", "ed", "p384", "ca", "revoked"):
        for head in (b"\x00\x00", b"\xfd\x0a", b"\x01\x20", b"\x02\x21"):
            write(out, "%s-%s" % (name, head.hex()), head + read(d, name + ".der"))


def hello_seeds(out):
    """Real ClientHellos: what Python's ssl (OpenSSL) sends with different settings, for the
    server side (first byte 0), in one piece and cut into small reads (first byte 0x30)."""
    variants = [
        ("tls13-sni-alpn", "server.test", ["h2", "http/1.1"], ssl.TLSVersion.TLSv1_3, None, 0),
        ("tls12-sni", "rsa.test", None, ssl.TLSVersion.TLSv1_2, None, 0),
        ("tls12-noticket", "other.test", ["http/1.1"], ssl.TLSVersion.TLSv1_2, None,
         ssl.OP_NO_TICKET),
        ("any-strict", "strict.test", ["acme-tls/1"], None, None, 0),
        ("any-refuse", "refuse.test", None, None, None, 0),
        ("nosni-chacha", None, ["x" * 200, "h2"], None, "ECDHE-ECDSA-CHACHA20-POLY1305", 0),
        ("tls12-cbc", "server.test", None, ssl.TLSVersion.TLSv1_2, "AES128-SHA:ECDHE-RSA-AES256-SHA",
         0),
    ]
    for name, sni, alpn, version, ciphers, options in variants:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.options |= options
        if version:
            ctx.minimum_version = ctx.maximum_version = version
        if alpn:
            ctx.set_alpn_protocols(alpn)
        if ciphers:
            ctx.set_ciphers(ciphers)
        inc, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        conn = ctx.wrap_bio(inc, outb, server_hostname=sni)
        try:
            conn.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = outb.read()
        write(out, "py-" + name, b"\x00" + hello)
        write(out, "py-" + name + "-cut", b"\x30" + hello)


def handshake_seeds(build, out):
    hello_seeds(out)
    env = dict(os.environ, MTLS_FUZZ_RECORD=out, MTLS_FUZZ_CERTS=os.path.join(build, "certs"))
    subprocess.run([os.path.join(build, "bin", "fuzz_handshake")], env=env, check=True)


def policy_seeds(out):
    lines = ["default", "TLSv1.2+", "tlsv1.3+", "TLSv0x0304+", "TLSv1.0+", "v1.1+",
             "TLS_AES_128_GCM_SHA256 TLS13_CHACHA20_POLY1305_SHA256",
             "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:TLS_CIPHER_0xC02B",
             "TLS_RSA_WITH_RC4_128_SHA NULL-SHA\tEXP-RC4-MD5", "tls_cipher_0x1303", "TLS13_AEGIS_256_SHA512"]
    for i, line in enumerate(lines):
        write(out, "line-%d" % i, line.encode())


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", required=True, help="build/fuzz")
    ap.add_argument("--targets", default="handshake certs x509 policy")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    certs = os.path.join(args.build, "certs")
    seeds = os.path.join(args.build, "seeds")
    for d in (certs, seeds):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    try:
        make_certs(certs)
    except subprocess.CalledProcessError as e:
        sys.exit("seeds: %s failed: %s" % (" ".join(e.cmd), e.stderr.decode(errors="replace")))
    makers = {
        "certs": lambda o: certs_seeds(certs, o),
        "x509": lambda o: x509_seeds(certs, o),
        "handshake": lambda o: handshake_seeds(args.build, o),
        "policy": policy_seeds,
    }
    for t in args.targets.split():
        os.makedirs(os.path.join(seeds, t))
        makers[t](os.path.join(seeds, t))
        print("seeds: %s: %d" % (t, len(os.listdir(os.path.join(seeds, t)))))


if __name__ == "__main__":
    main()

//! For the unit tests: keys and certificates made at test time with the openssl command, never
//! committed: a self-signed one (O=mtls, CN=mtls test, SANs a.test and b.test), and one for the
//! same names issued by a CA of its own, for verifying peers.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub(crate) struct TestCert {
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) cert_der: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
    pub(crate) key_der: Vec<u8>,
}

fn openssl(dir: &PathBuf, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The same key and certificate for every test of the run.
pub(crate) fn test_cert() -> &'static TestCert {
    static CERT: OnceLock<TestCert> = OnceLock::new();
    CERT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mtls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        openssl(&dir, &[
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "key.pem", "-out", "cert.pem", "-days", "30", "-subj", "/O=mtls/CN=mtls test",
            "-addext", "subjectAltName=DNS:a.test,DNS:b.test",
        ]);
        let read = |name: &str| std::fs::read(dir.join(name)).expect("openssl wrote it");
        let made = TestCert {
            cert_pem: read("cert.pem"),
            cert_der: openssl(&dir, &["x509", "-in", "cert.pem", "-outform", "DER"]),
            key_pem: read("key.pem"),
            key_der: openssl(&dir, &["pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER"]),
        };
        let _ = std::fs::remove_dir_all(&dir);
        made
    })
}

/// A CA (PEM) and a certificate it issued, for a.test and b.test, with its key.
pub(crate) struct TestIssued {
    pub(crate) ca_pem: Vec<u8>,
    pub(crate) ca_key_pem: Vec<u8>,
    pub(crate) leaf: TestCert,
}

/// An OCSP response (DER) from the test CA for the issued certificate, good or revoked, with a
/// nextUpdate `days` ahead (none for 0), made by `openssl ocsp` at test time.
pub(crate) fn test_ocsp_response(revoked: bool, days: u32) -> Vec<u8> {
    let t = test_issued();
    let dir = std::env::temp_dir().join(format!("mtls-test-ocsp-{}-{revoked}-{days}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let write = |name: &str, data: &[u8]| std::fs::write(dir.join(name), data).expect("written");
    write("ca.pem", &t.ca_pem);
    write("ca.key", &t.ca_key_pem);
    write("cert.pem", &t.leaf.cert_pem);
    let serial = String::from_utf8(openssl(&dir, &["x509", "-in", "cert.pem", "-noout", "-serial"])).expect("text");
    let serial = serial.trim().trim_start_matches("serial=");
    let status = if revoked { "R\t300101000000Z\t240101000000Z" } else { "V\t300101000000Z\t" };
    write("index.txt", format!("{status}\t{serial}\tunknown\t/O=mtls/CN=mtls test leaf\n").as_bytes());
    openssl(&dir, &["ocsp", "-issuer", "ca.pem", "-cert", "cert.pem", "-no_nonce", "-reqout", "req.der"]);
    let mut args = vec!["ocsp", "-index", "index.txt", "-CA", "ca.pem", "-rsigner", "ca.pem", "-rkey", "ca.key",
        "-reqin", "req.der", "-respout", "resp.der"];
    let ndays = days.to_string();
    if days > 0 {
        args.extend(["-ndays", ndays.as_str()]);
    }
    openssl(&dir, &args);
    let der = std::fs::read(dir.join("resp.der")).expect("openssl wrote it");
    let _ = std::fs::remove_dir_all(&dir);
    der
}

/// The same CA and issued certificate for every test of the run.
pub(crate) fn test_issued() -> &'static TestIssued {
    static ISSUED: OnceLock<TestIssued> = OnceLock::new();
    ISSUED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mtls-test-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        openssl(&dir, &[&["req", "-x509"][..], &ec, &["-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
            "-subj", "/O=mtls/CN=mtls test CA"]].concat());
        openssl(&dir, &[&["req", "-new"][..], &ec, &["-keyout", "key.pem", "-out", "leaf.csr",
            "-subj", "/O=mtls/CN=mtls test leaf"]].concat());
        std::fs::write(dir.join("ext"), "subjectAltName=DNS:a.test,DNS:b.test\nbasicConstraints=CA:FALSE\n")
            .expect("the extensions file");
        openssl(&dir, &["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "30", "-extfile", "ext", "-out", "cert.pem"]);
        let read = |name: &str| std::fs::read(dir.join(name)).expect("openssl wrote it");
        let made = TestIssued {
            ca_pem: read("ca.pem"),
            ca_key_pem: read("ca.key"),
            leaf: TestCert {
                cert_pem: read("cert.pem"),
                cert_der: openssl(&dir, &["x509", "-in", "cert.pem", "-outform", "DER"]),
                key_pem: read("key.pem"),
                key_der: openssl(&dir, &["pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER"]),
            },
        };
        let _ = std::fs::remove_dir_all(&dir);
        made
    })
}

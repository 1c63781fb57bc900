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
    pub(crate) leaf: TestCert,
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

//! For the unit tests: a key and a self-signed certificate made at test time with the openssl
//! command (O=mtls, CN=mtls test, SANs a.test and b.test), never committed.

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

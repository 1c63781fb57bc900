//! Records the rustls version cargo resolved, so SSL_VERSION_LIBRARY names the exact library
//! the module was built with (the crates come from whatever Debian offers at fetch time).

use std::env;
use std::fs;
use std::path::Path;

/// The `version` of the `rustls` package in a Cargo.lock, read line by line.
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == name_line {
            let version = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(version.to_owned());
        }
    }
    None
}

fn main() {
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let lock_path = Path::new(&dir).join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    // cargo writes the lock file before it runs build scripts.
    let lock = fs::read_to_string(&lock_path).expect("Cargo.lock next to Cargo.toml");
    let version = locked_version(&lock, "rustls").expect("rustls in Cargo.lock");
    println!("cargo:rustc-env=MTLS_RUSTLS_VERSION={version}");
}

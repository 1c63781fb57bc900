//! mtls: the thin C bridge between mod_tls and rustls.
//!
//! Only opaque handles cross the boundary. Every exported function catches panics, so a bug in
//! here becomes a result code (or a neutral value) and never unwinds into httpd. Nothing here
//! knows about Apache; the C header is `mtls.h` next to this crate.

#![allow(non_camel_case_types)]

mod certkey;
mod config;
mod conn;
mod hello;
mod result;
mod session;
mod x509;

pub use certkey::*;
pub use config::*;
pub use conn::*;
pub use result::*;
pub use session::*;
pub use x509::*;

use std::os::raw::c_char;

/// Runs an exported function body; a panic becomes `$on_panic` instead of unwinding into C.
macro_rules! ffi_guard {
    ($on_panic:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => $on_panic,
        }
    };
}
pub(crate) use ffi_guard;

/// Turns a C pointer into a shared reference or returns `MTLS_NULL_PARAM` from the function.
macro_rules! try_ref {
    ($p:expr) => {
        match unsafe { $p.as_ref() } {
            Some(r) => r,
            None => return $crate::result::mtls_result::MTLS_NULL_PARAM,
        }
    };
}
pub(crate) use try_ref;

/// Turns a C pointer into a mutable reference or returns `MTLS_NULL_PARAM` from the function.
macro_rules! try_mut {
    ($p:expr) => {
        match unsafe { $p.as_mut() } {
            Some(r) => r,
            None => return $crate::result::mtls_result::MTLS_NULL_PARAM,
        }
    };
}
pub(crate) use try_mut;

/// Borrows `len` bytes at `p`; a NULL pointer is only allowed for an empty slice.
pub(crate) fn slice_from<'a>(p: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        Some(&[])
    } else if p.is_null() {
        None
    } else {
        Some(unsafe { std::slice::from_raw_parts(p, len) })
    }
}

/// Mutable counterpart of `slice_from`.
pub(crate) fn slice_from_mut<'a>(p: *mut u8, len: usize) -> Option<&'a mut [u8]> {
    if len == 0 {
        Some(&mut [])
    } else if p.is_null() {
        None
    } else {
        Some(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }
}

/// Copies `msg` NUL-terminated into the caller's buffer, truncated to fit.
pub(crate) fn write_cstr(msg: &str, buf: *mut c_char, len: usize) {
    if buf.is_null() || len == 0 {
        return;
    }
    let n = msg.len().min(len - 1);
    unsafe {
        std::ptr::copy_nonoverlapping(msg.as_ptr(), buf as *mut u8, n);
        *buf.add(n) = 0;
    }
}

/// As cargo resolved it for this build (build.rs reads Cargo.lock).
static VERSION: &str = concat!("rustls/", env!("MTLS_RUSTLS_VERSION"), "\0");

/// The TLS library's name and version, for SSL_VERSION_LIBRARY. Static, never freed.
#[no_mangle]
pub extern "C" fn mtls_version() -> *const c_char {
    ffi_guard!(b"rustls\0".as_ptr() as *const c_char, { VERSION.as_ptr() as *const c_char })
}

#[cfg(test)]
mod tests {
    /// The sources of every module that exports functions.
    const SOURCES: &[(&str, &str)] = &[
        ("lib.rs", include_str!("lib.rs")),
        ("certkey.rs", include_str!("certkey.rs")),
        ("config.rs", include_str!("config.rs")),
        ("conn.rs", include_str!("conn.rs")),
        ("result.rs", include_str!("result.rs")),
        ("session.rs", include_str!("session.rs")),
        ("x509.rs", include_str!("x509.rs")),
    ];

    /// The body of the function whose `fn` keyword is at the start of `s`, between its braces
    /// (counted: the bodies' strings hold balanced braces only, as in "{e}").
    fn body(s: &str) -> &str {
        let start = s.find('{').expect("a body");
        let mut depth = 0;
        for (i, ch) in s[start..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return &s[start + 1..start + i];
                    }
                }
                _ => {}
            }
        }
        panic!("unbalanced braces")
    }

    /// Every exported function's whole body is one `ffi_guard!`, so no panic unwinds into C.
    #[test]
    fn every_export_is_behind_the_panic_guard() {
        // spelled in pieces, so that this test's own text holds neither
        let attribute = concat!("#[no_", "mangle]");
        let marker = concat!("#[no_", "mangle]\npub extern ", "\"C\" fn ");
        let (mut attributes, mut exports) = (0, 0);
        for (file, src) in SOURCES {
            attributes += src.matches(attribute).count();
            for (at, _) in src.match_indices(marker) {
                let rest = &src[at + marker.len()..];
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let b = body(rest).trim();
                assert!(b.starts_with("ffi_guard!(") && b.ends_with(')'), "{file}: {name} is not all in ffi_guard!");
                exports += 1;
            }
        }
        // every export is written the one way this test reads
        assert_eq!(exports, attributes);
        assert!(exports >= 50, "found only {exports} exports");
    }
}

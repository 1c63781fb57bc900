//! mtls: the thin C bridge between mod_tls and rustls.
//!
//! Only opaque handles cross the boundary. Every exported function catches panics, so a bug in
//! here becomes a result code (or a neutral value) and never unwinds into httpd. Nothing here
//! knows about Apache; the C header is `mtls.h` next to this crate.

#![allow(non_camel_case_types)]
// The exported functions take raw pointers from C and are still safe `extern "C" fn`s, which
// clippy flags (not_unsafe_ptr_arg_deref): marking them `unsafe` would change nothing for C,
// their only caller, and would turn each whole body into an unsafe context. Instead every
// pointer is checked for NULL where it is used, the contract C must keep for it (valid, for
// how long, borrowed or owned) is in the function's doc comment and so in mtls.h, and each
// dereference is an `unsafe` block of its own whose `// SAFETY:` comment names that contract
// (clippy enforces the comments: undocumented_unsafe_blocks).
#![allow(clippy::not_unsafe_ptr_arg_deref)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod result;
mod certkey;
mod config;
mod session;
mod conn;
mod hello;
mod x509;

pub use certkey::*;
pub use config::*;
pub use conn::*;
pub use result::*;
pub use session::*;
pub use x509::*;

use std::os::raw::c_char;

/// Runs an exported function body; a panic becomes `$on_panic` instead of unwinding into C.
/// The body runs in a closure: `return` in it (as in `try_ref!`) returns from the function.
macro_rules! ffi_guard {
    ($on_panic:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => $on_panic,
        }
    };
}
pub(crate) use ffi_guard;

/// Turns a pointer C passed in into a shared reference, or returns from the function:
/// `MTLS_NULL_PARAM`, or the neutral value given second (`()`: plain `return`).
macro_rules! try_ref {
    ($p:expr) => {
        $crate::try_ref!($p, $crate::result::mtls_result::MTLS_NULL_PARAM)
    };
    ($p:expr, ()) => {
        match $crate::ref_from($p) {
            Some(r) => r,
            None => return,
        }
    };
    ($p:expr, $on_null:expr) => {
        match $crate::ref_from($p) {
            Some(r) => r,
            None => return $on_null,
        }
    };
}
pub(crate) use try_ref;

/// Turns a pointer C passed in into a mutable reference, or returns from the function:
/// `MTLS_NULL_PARAM`, or the neutral value given second (`()`: plain `return`). For handles
/// and for out-parameters, which are only ever assigned through it.
macro_rules! try_mut {
    ($p:expr) => {
        $crate::try_mut!($p, $crate::result::mtls_result::MTLS_NULL_PARAM)
    };
    ($p:expr, ()) => {
        match $crate::mut_from($p) {
            Some(r) => r,
            None => return,
        }
    };
    ($p:expr, $on_null:expr) => {
        match $crate::mut_from($p) {
            Some(r) => r,
            None => return $on_null,
        }
    };
}
pub(crate) use try_mut;

/// What `try_ref!` borrows: None for NULL. Only for pointers C passed into the current call.
pub(crate) fn ref_from<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: mtls.h's contract for every pointer argument: NULL, or valid, aligned and
    // initialised for the type, and not changed by anyone else during the call; for a handle,
    // one this crate handed out and C has not freed. The reference does not outlive the call.
    unsafe { p.as_ref() }
}

/// What `try_mut!` borrows: None for NULL. Only for pointers C passed into the current call.
pub(crate) fn mut_from<'a, T>(p: *mut T) -> Option<&'a mut T> {
    // SAFETY: mtls.h's contract for every pointer argument: NULL, or valid and aligned for the
    // type, and used by nothing else during the call (a handle C owns and has not freed, an
    // out-parameter C set aside for the answer). An out-parameter may be uninitialised: it is
    // only assigned (an integer or a pointer, nothing to drop), never read. The reference does
    // not outlive the call.
    unsafe { p.as_mut() }
}

/// Borrows `len` items at `p` for the call; a NULL pointer is only allowed for an empty slice.
pub(crate) fn slice_from<'a, T>(p: *const T, len: usize) -> Option<&'a [T]> {
    if len == 0 {
        Some(&[])
    } else if p.is_null() {
        None
    } else {
        // SAFETY: mtls.h's contract for a buffer argument: `p` points to `len` initialised
        // items that nothing changes during the call, and every function that takes one says
        // so next to its size.
        Some(unsafe { std::slice::from_raw_parts(p, len) })
    }
}

/// Mutable counterpart of `slice_from`, for buffers C gives to be written.
pub(crate) fn slice_from_mut<'a>(p: *mut u8, len: usize) -> Option<&'a mut [u8]> {
    if len == 0 {
        Some(&mut [])
    } else if p.is_null() {
        None
    } else {
        // SAFETY: mtls.h's contract for an output buffer: `p` points to `len` writable bytes
        // used by nothing else during the call. Bytes (u8) have no invalid values, so a buffer
        // C did not initialise is still a valid slice.
        Some(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }
}

/// Copies `msg` NUL-terminated into the caller's buffer (`len` bytes), truncated to fit;
/// nothing when `buf` is NULL or `len` 0.
pub(crate) fn write_cstr(msg: &str, buf: *mut c_char, len: usize) {
    if buf.is_null() || len == 0 {
        return;
    }
    let n = msg.len().min(len - 1);
    // SAFETY: mtls.h's contract for a text buffer: `buf` points to `len` writable bytes, which
    // cannot overlap `msg` (ours). n + 1 <= len bytes are written.
    unsafe {
        std::ptr::copy_nonoverlapping(msg.as_ptr(), buf as *mut u8, n);
        *buf.add(n) = 0;
    }
}

/// As cargo resolved it for this build (build.rs reads Cargo.lock).
static VERSION: &str = concat!("rustls/", env!("MTLS_RUSTLS_VERSION"), "\0");

/// "rustls/" and the exact rustls version this module was built with, as cargo resolved it
/// (e.g. "rustls/0.23.26"), for SSL_VERSION_LIBRARY. NUL-terminated and static: never freed,
/// valid while the module is loaded. NULL only after a caught panic.
#[no_mangle]
pub extern "C" fn mtls_version() -> *const c_char {
    ffi_guard!(std::ptr::null(), { VERSION.as_ptr() as *const c_char })
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

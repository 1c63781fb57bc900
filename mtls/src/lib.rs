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
    VERSION.as_ptr() as *const c_char
}

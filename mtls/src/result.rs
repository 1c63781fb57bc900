//! Result codes: stable numbers the C side can switch on without parsing text.

use std::os::raw::c_char;

use rustls::Error;

#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mtls_result {
    MTLS_OK = 0,
    /// More TLS input is needed (or no plaintext is available yet).
    MTLS_WOULD_BLOCK = 7001,
    /// The peer closed the TLS stream cleanly with close_notify.
    MTLS_EOF = 7002,
    MTLS_NULL_PARAM = 7003,
    MTLS_PANIC = 7004,
    /// An argument was out of range (e.g. an unknown protocol version).
    MTLS_INVALID = 7005,
    /// The ClientHello has been read: choose a config and call mtls_conn_start.
    MTLS_HELLO = 7006,
    /// The call does not fit the connection's phase (a bug on the caller's side).
    MTLS_WRONG_PHASE = 7007,
    /// Not newer than what is already there (ticket keys of an older generation): nothing
    /// changed, which is not an error.
    MTLS_STALE = 7008,

    /// Certificate and key loading: the admin's fault.
    MTLS_CERT_NONE = 7100,
    MTLS_CERT_BAD = 7101,
    MTLS_KEY_NONE = 7102,
    MTLS_KEY_ENCRYPTED = 7103,
    MTLS_KEY_UNSUPPORTED = 7104,
    MTLS_KEY_MISMATCH = 7105,
    MTLS_CONFIG = 7106,

    /// The peer's fault: garbage, bad records, alerts, nothing in common, a cut connection.
    MTLS_PEER_INVALID = 7200,
    MTLS_PEER_INCOMPATIBLE = 7201,
    MTLS_PEER_MISBEHAVED = 7202,
    MTLS_PEER_ALERT = 7203,
    MTLS_PEER_UNEXPECTED_EOF = 7204,
    MTLS_PEER_CERT = 7205,

    /// Anything else rustls reported.
    MTLS_ERROR = 7300,
}

use mtls_result::*;

impl mtls_result {
    pub(crate) fn from_rustls(e: &Error) -> Self {
        match e {
            Error::InappropriateMessage { .. }
            | Error::InappropriateHandshakeMessage { .. }
            | Error::InvalidMessage(_)
            | Error::DecryptError => MTLS_PEER_INVALID,
            Error::PeerIncompatible(_) => MTLS_PEER_INCOMPATIBLE,
            Error::PeerMisbehaved(_) => MTLS_PEER_MISBEHAVED,
            Error::AlertReceived(_) => MTLS_PEER_ALERT,
            Error::NoCertificatesPresented | Error::InvalidCertificate(_) => MTLS_PEER_CERT,
            // What rustls says when none of our certificates suits the client's algorithms.
            Error::General(m) if m == "no server certificate chain resolved" => MTLS_PEER_INCOMPATIBLE,
            _ => MTLS_ERROR,
        }
    }
}

/// Whether a result blames the peer (log quietly) rather than this server (log loudly).
#[no_mangle]
pub extern "C" fn mtls_result_is_peer_fault(r: mtls_result) -> bool {
    (r as u32) >= 7200 && (r as u32) < 7300
}

/// A short generic description of a result code, written NUL-terminated into buf.
#[no_mangle]
pub extern "C" fn mtls_result_text(r: mtls_result, buf: *mut c_char, len: usize) {
    let text = match r {
        MTLS_OK => "ok",
        MTLS_WOULD_BLOCK => "more data needed",
        MTLS_EOF => "closed by peer",
        MTLS_NULL_PARAM => "NULL parameter",
        MTLS_PANIC => "internal error (panic caught in TLS bridge)",
        MTLS_INVALID => "invalid argument",
        MTLS_HELLO => "ClientHello received",
        MTLS_WRONG_PHASE => "call not valid in this connection phase",
        MTLS_STALE => "not newer than what is in place; nothing changed",
        MTLS_CERT_NONE => "no certificate found",
        MTLS_CERT_BAD => "certificate could not be parsed",
        MTLS_KEY_NONE => "no private key found",
        MTLS_KEY_ENCRYPTED => "private key is encrypted",
        MTLS_KEY_UNSUPPORTED => "private key type not supported",
        MTLS_KEY_MISMATCH => "private key does not match the certificate",
        MTLS_CONFIG => "invalid TLS configuration",
        MTLS_PEER_INVALID => "peer sent invalid TLS data",
        MTLS_PEER_INCOMPATIBLE => "peer has no TLS version or cipher in common",
        MTLS_PEER_MISBEHAVED => "peer violated the TLS protocol",
        MTLS_PEER_ALERT => "peer sent a fatal alert",
        MTLS_PEER_UNEXPECTED_EOF => "peer closed the connection without close_notify",
        MTLS_PEER_CERT => "peer certificate invalid",
        MTLS_ERROR => "TLS error",
    };
    crate::write_cstr(text, buf, len);
}

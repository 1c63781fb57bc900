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
    /// The ClientHello's server name is not a DNS host name (e.g. "host:port"); the name is
    /// in mtls_conn_refused_sni.
    MTLS_PEER_BAD_SNI = 7206,

    /// Anything else rustls reported.
    MTLS_ERROR = 7300,
}

use mtls_result::*;

impl mtls_result {
    /// Every error a peer can cause is one of the peer classes, so that a client can never
    /// write a line above `info` into the error log at will.
    pub(crate) fn from_rustls(e: &Error) -> Self {
        match e {
            Error::InappropriateMessage { .. }
            | Error::InappropriateHandshakeMessage { .. }
            | Error::InvalidMessage(_)
            | Error::InvalidEncryptedClientHello(_)
            | Error::UnsupportedNameType
            | Error::PeerSentOversizedRecord
            | Error::DecryptError => MTLS_PEER_INVALID,
            Error::PeerIncompatible(_) | Error::NoApplicationProtocol => MTLS_PEER_INCOMPATIBLE,
            Error::PeerMisbehaved(_) => MTLS_PEER_MISBEHAVED,
            Error::AlertReceived(_) => MTLS_PEER_ALERT,
            Error::NoCertificatesPresented | Error::InvalidCertificate(_) => MTLS_PEER_CERT,
            // Ours: settings, keys, the clock, the random source, or a bug.
            Error::EncryptError
            | Error::InvalidCertRevocationList(_)
            | Error::General(_)
            | Error::FailedToGetCurrentTime
            | Error::FailedToGetRandomBytes
            | Error::HandshakeNotComplete
            | Error::BadMaxFragmentSize
            | Error::InconsistentKeys(_)
            | Error::Other(_) => MTLS_ERROR,
            _ => MTLS_ERROR,
        }
    }
}

/// Whether a result blames the peer (log quietly) rather than this server (log loudly).
#[no_mangle]
pub extern "C" fn mtls_result_is_peer_fault(r: u32) -> bool {
    (7200..7300).contains(&r)
}

/// A short generic description of a result code, written NUL-terminated into buf. The code
/// comes as a plain number: a value C made up must not become an invalid Rust enum.
#[no_mangle]
pub extern "C" fn mtls_result_text(r: u32, buf: *mut c_char, len: usize) {
    crate::ffi_guard!((), {
        crate::write_cstr(result_text(r), buf, len);
    })
}

fn result_text(r: u32) -> &'static str {
    const ALL: [mtls_result; 22] = [
        MTLS_OK, MTLS_WOULD_BLOCK, MTLS_EOF, MTLS_NULL_PARAM, MTLS_PANIC, MTLS_INVALID, MTLS_HELLO,
        MTLS_WRONG_PHASE, MTLS_CERT_NONE, MTLS_CERT_BAD, MTLS_KEY_NONE, MTLS_KEY_ENCRYPTED,
        MTLS_KEY_UNSUPPORTED, MTLS_KEY_MISMATCH, MTLS_CONFIG, MTLS_PEER_INVALID, MTLS_PEER_INCOMPATIBLE,
        MTLS_PEER_MISBEHAVED, MTLS_PEER_ALERT, MTLS_PEER_UNEXPECTED_EOF, MTLS_PEER_CERT, MTLS_ERROR,
    ];
    let Some(r) = ALL.into_iter().find(|k| *k as u32 == r) else {
        return "unknown result code";
    };
    match r {
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
        MTLS_PEER_BAD_SNI => "peer sent a server name (SNI) that is not a DNS host name",
        MTLS_ERROR => "TLS error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{AlertDescription, InvalidMessage, PeerIncompatible, PeerMisbehaved};

    #[test]
    fn peer_errors_are_peer_faults() {
        let peer = [
            Error::PeerSentOversizedRecord,
            Error::DecryptError,
            Error::UnsupportedNameType,
            Error::InvalidMessage(InvalidMessage::MessageTooLarge),
            Error::NoApplicationProtocol,
            Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon),
            Error::PeerMisbehaved(PeerMisbehaved::TooMuchEarlyDataReceived),
            Error::AlertReceived(AlertDescription::UnknownCA),
            Error::NoCertificatesPresented,
        ];
        for e in &peer {
            let r = mtls_result::from_rustls(e);
            assert!(mtls_result_is_peer_fault(r as u32), "{e:?} -> {r:?}");
        }
        for e in [Error::FailedToGetRandomBytes, Error::General("x".into()), Error::EncryptError] {
            assert!(!mtls_result_is_peer_fault(mtls_result::from_rustls(&e) as u32), "{e:?}");
        }
    }
}

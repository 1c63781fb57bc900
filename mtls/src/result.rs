//! Result codes: stable numbers the C side can switch on without parsing text.

use std::os::raw::{c_char, c_uint};

use rustls::Error;

use crate::{ffi_guard, write_cstr};

/// What every fallible call returns. The numbers are stable, and grouped by whose fault a
/// failure is, so that C can choose a log level or an HTTP status by range without parsing
/// text:
///
/// - 0: success;
/// - 7001-7099: flow and usage: more data needed, closed, a NULL or bad argument, a caught
///   panic, a call in the wrong phase, a buffer too small;
/// - 7100-7199: this server's admin: certificates, keys, settings;
/// - 7200-7299: the peer (mtls_result_is_peer_fault);
/// - 7300: anything else rustls reported.
///
/// Codes go back into the bridge (mtls_result_text, mtls_result_is_peer_fault) as plain numbers
/// (unsigned int), never as this type, so any value C holds is safe to pass.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mtls_result {
    /// Success.
    MTLS_OK = 0,
    /// More TLS input is needed, or no plaintext is available yet.
    MTLS_WOULD_BLOCK = 7001,
    /// The peer closed the TLS stream cleanly with close_notify.
    MTLS_EOF = 7002,
    /// A pointer argument that must not be NULL was NULL (a bug on the caller's side).
    MTLS_NULL_PARAM = 7003,
    /// A panic in the bridge or in rustls was caught instead of unwinding into C: a bug. The
    /// object it happened on is best given up.
    MTLS_PANIC = 7004,
    /// An argument was out of range (an unknown protocol version or field, an index past the
    /// end), or what was asked for is not there.
    MTLS_INVALID = 7005,
    /// The ClientHello has been read: choose a config and call mtls_conn_start (or refuse with
    /// mtls_conn_refuse).
    MTLS_HELLO = 7006,
    /// The call does not fit the connection's phase (a bug on the caller's side).
    MTLS_WRONG_PHASE = 7007,
    /// Not newer than what is already there (ticket keys of an older generation): nothing
    /// changed, which is not an error.
    MTLS_STALE = 7008,
    /// The caller's buffer is too small for the answer; the function tells the size needed (the
    /// only out-parameter written on a failure).
    MTLS_BUFFER_TOO_SMALL = 7009,

    /// No PEM certificate found (7100-7199: the admin's fault).
    MTLS_CERT_NONE = 7100,
    /// A certificate or revocation list does not parse.
    MTLS_CERT_BAD = 7101,
    /// No PEM private key found.
    MTLS_KEY_NONE = 7102,
    /// The private key is encrypted with a passphrase, which is not supported.
    MTLS_KEY_ENCRYPTED = 7103,
    /// The private key's type is not supported (RSA, ECDSA P-256/P-384 and Ed25519 are).
    MTLS_KEY_UNSUPPORTED = 7104,
    /// The private key does not match the certificate.
    MTLS_KEY_MISMATCH = 7105,
    /// The settings do not make a working config; the call's error buffer says why.
    MTLS_CONFIG = 7106,

    /// The peer sent data that is no valid TLS: garbage, bad records, a message that does not
    /// decode (7200-7299: the peer's fault).
    MTLS_PEER_INVALID = 7200,
    /// The peer has no protocol version, cipher suite or ALPN protocol in common with this
    /// server.
    MTLS_PEER_INCOMPATIBLE = 7201,
    /// The peer violated the TLS protocol.
    MTLS_PEER_MISBEHAVED = 7202,
    /// The peer sent a fatal alert.
    MTLS_PEER_ALERT = 7203,
    /// The transport ended without close_notify (the data may be cut short).
    MTLS_PEER_UNEXPECTED_EOF = 7204,
    /// The peer presented no certificate where one is required, or an invalid one (a client
    /// to this server, or a server to this client).
    MTLS_PEER_CERT = 7205,
    /// The ClientHello's server name is not a DNS host name (e.g. "host:port");
    /// mtls_conn_refused_sni tells what it was.
    MTLS_PEER_BAD_SNI = 7206,

    /// Anything else rustls reported (mtls_conn_error has the detail).
    MTLS_ERROR = 7300,
}

use mtls_result::*;

impl mtls_result {
    /// Every error a peer can cause is one of the peer classes, so that a client can never
    /// write a line above `info` into the error log at will.
    /// rustls' words (0.23) when the certificate's key can sign with none of the schemes a
    /// TLS 1.2 client offered: the peer's incompatibility, though rustls calls it General.
    pub(crate) fn is_incompatible_key(e: &Error) -> bool {
        matches!(e, Error::General(m) if m == "incompatible signing key")
    }

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
            e if Self::is_incompatible_key(e) => MTLS_PEER_INCOMPATIBLE,
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

    /// The result a number C passes in stands for, None for a number that is none. Codes
    /// cross from C as plain numbers: a value C made up must never become a Rust enum value
    /// outside its variants (that would be undefined behaviour).
    pub(crate) fn from_code(r: c_uint) -> Option<Self> {
        Some(match r {
            0 => MTLS_OK,
            7001 => MTLS_WOULD_BLOCK,
            7002 => MTLS_EOF,
            7003 => MTLS_NULL_PARAM,
            7004 => MTLS_PANIC,
            7005 => MTLS_INVALID,
            7006 => MTLS_HELLO,
            7007 => MTLS_WRONG_PHASE,
            7008 => MTLS_STALE,
            7009 => MTLS_BUFFER_TOO_SMALL,
            7100 => MTLS_CERT_NONE,
            7101 => MTLS_CERT_BAD,
            7102 => MTLS_KEY_NONE,
            7103 => MTLS_KEY_ENCRYPTED,
            7104 => MTLS_KEY_UNSUPPORTED,
            7105 => MTLS_KEY_MISMATCH,
            7106 => MTLS_CONFIG,
            7200 => MTLS_PEER_INVALID,
            7201 => MTLS_PEER_INCOMPATIBLE,
            7202 => MTLS_PEER_MISBEHAVED,
            7203 => MTLS_PEER_ALERT,
            7204 => MTLS_PEER_UNEXPECTED_EOF,
            7205 => MTLS_PEER_CERT,
            7206 => MTLS_PEER_BAD_SNI,
            7300 => MTLS_ERROR,
            _ => return None,
        })
    }
}

/// Whether result `r` blames the peer (worth an info line at most) rather than this server
/// (worth an error). Every rustls error a peer can cause is in the peer range, 7200-7299.
/// `r` is a plain number: any value is safe to pass, and one that is no result is no peer
/// fault.
#[no_mangle]
pub extern "C" fn mtls_result_is_peer_fault(r: c_uint) -> bool {
    ffi_guard!(false, { (7200..7300).contains(&r) })
}

/// Writes a short generic description of result `r` into `buf` (`len` bytes), NUL-terminated
/// and truncated to fit; nothing when `buf` is NULL or `len` is 0. `r` is a plain number: any
/// value is safe to pass ("unknown result code").
#[no_mangle]
pub extern "C" fn mtls_result_text(r: c_uint, buf: *mut c_char, len: usize) {
    ffi_guard!((), {
        write_cstr(result_text(r), buf, len);
    })
}

fn result_text(r: c_uint) -> &'static str {
    let Some(r) = mtls_result::from_code(r) else {
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
        MTLS_BUFFER_TOO_SMALL => "buffer too small",
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

    /// Every code the header names, as (name, number).
    fn header_codes() -> Vec<(String, u32)> {
        let header = include_str!("../include/mtls.h");
        let mut codes = Vec::new();
        for line in header.lines() {
            let line = line.trim();
            let Some((name, rest)) = line.split_once(" = ") else { continue };
            if !name.starts_with("MTLS_") {
                continue;
            }
            let number: String = rest.chars().take_while(char::is_ascii_digit).collect();
            codes.push((name.to_owned(), number.parse().expect(line)));
        }
        codes
    }

    #[test]
    fn every_code_in_the_header_is_known_and_has_a_text() {
        let codes = header_codes();
        assert!(codes.len() >= 24, "{codes:?}");
        for (name, n) in codes {
            let r = mtls_result::from_code(n).unwrap_or_else(|| panic!("{name} = {n} unknown"));
            assert_eq!(r as u32, n, "{name}");
            assert_eq!(format!("{r:?}"), name);
            assert_ne!(result_text(n), "unknown result code", "{name}");
        }
    }

    #[test]
    fn made_up_codes_are_safe() {
        let mut buf = [0x55 as c_char; 32];
        for n in [1, 7000, 7010, 7099, 7299, 7301, u32::MAX] {
            assert_eq!(mtls_result::from_code(n), None, "{n}");
            mtls_result_text(n, buf.as_mut_ptr(), buf.len());
            // SAFETY: mtls_result_text NUL-terminated the text within buf.
            let text = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
            assert_eq!(text.to_str().unwrap(), "unknown result code");
        }
        assert!(mtls_result_is_peer_fault(7299));
        assert!(!mtls_result_is_peer_fault(7300));
        assert!(!mtls_result_is_peer_fault(u32::MAX));
        mtls_result_text(MTLS_OK as u32, std::ptr::null_mut(), 10);
        mtls_result_text(MTLS_OK as u32, buf.as_mut_ptr(), 0);
    }

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

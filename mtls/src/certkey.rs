//! A certificate chain with its private key, loaded from PEM once at startup.

use std::os::raw::c_char;
use std::sync::Arc;

use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer, ServerName,
};
use zeroize::{Zeroize, Zeroizing};
use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};
use x509_parser::certificate::X509CertificateParser;
use x509_parser::nom::Parser;

use crate::ocsp::{now_secs, valid_until, Served};
use crate::result::mtls_result::{self, *};
use crate::{ffi_guard, slice_from, try_mut, try_ref, write_cstr};

/// A certificate chain with its private key, loaded once at startup. Opaque. Configs built from
/// it share the key (they keep their own reference), and with it the OCSP response stapled to
/// it (mtls_certkey_set_ocsp); C frees its own handle once, with mtls_certkey_free, whenever it
/// likes.
pub struct mtls_certkey {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) served: Arc<Served>,
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The sections of a PEM text: (label, the whole section from BEGIN to END, its base64 body).
pub(crate) fn pem_sections(pem: &[u8]) -> Vec<(&[u8], &[u8], &[u8])> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const DASHES: &[u8] = b"-----";
    let mut found = Vec::new();
    let mut rest = pem;
    while let Some(at) = find(rest, BEGIN) {
        let section = &rest[at..];
        let after = &section[BEGIN.len()..];
        let Some(label_len) = find(after, DASHES) else { break };
        let label = &after[..label_len];
        let body_at = BEGIN.len() + label_len + DASHES.len();
        let end_line = [b"-----END ".as_slice(), label, DASHES].concat();
        let Some(end_at) = find(&section[body_at..], &end_line) else { break };
        let whole = body_at + end_at + end_line.len();
        found.push((label, &section[..whole], &section[body_at..body_at + end_at]));
        rest = &section[whole..];
    }
    found
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a base64 body into a buffer sized once and zeroed when dropped: what pki-types'
/// PEM reader would leave behind (its growing copy of the text, the DER) is the private key.
fn decode_secret(body: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(body.len() / 4 * 3 + 3));
    let (mut acc, mut bits, mut pad) = (0u32, 0u32, 0usize);
    for &c in body.iter().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            _ => return None,
        };
        if pad > 0 {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    acc.zeroize();
    (pad <= 2 && !out.is_empty()).then_some(out)
}

fn load(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, (mtls_result, String)> {
    let mut chain = Vec::new();
    // Certificates only: a key in the same file is never decoded here.
    for (_, section, _) in pem_sections(cert_pem).into_iter().filter(|(l, _, _)| *l == b"CERTIFICATE") {
        match CertificateDer::from_pem_slice(section) {
            Ok(c) => chain.push(c),
            Err(e) => return Err((MTLS_CERT_BAD, format!("bad PEM certificate data: {e}"))),
        }
    }
    if chain.is_empty() {
        return Err((MTLS_CERT_NONE, "no PEM 'CERTIFICATE' block found".into()));
    }
    // Encrypted keys would need a passphrase at every start; say so instead of "no key".
    if contains(key_pem, b"ENCRYPTED PRIVATE KEY") || contains(key_pem, b"Proc-Type: 4,ENCRYPTED") {
        return Err((
            MTLS_KEY_ENCRYPTED,
            "the private key is encrypted with a passphrase; store it unencrypted \
             (e.g. 'openssl pkey -in key.pem -out key-plain.pem') and protect it by file permissions"
                .into(),
        ));
    }
    // The DER lives in a buffer zeroed when dropped and is lent to the key parser, so no copy
    // of the private key outlives the load here (ring's own key object is beyond reach).
    let Some((label, body)) = pem_sections(key_pem)
        .into_iter()
        .map(|(label, _, body)| (label, body))
        .find(|(label, _)| matches!(*label, b"PRIVATE KEY" | b"RSA PRIVATE KEY" | b"EC PRIVATE KEY"))
    else {
        return Err((MTLS_KEY_NONE, "no PEM private key block found".into()));
    };
    let Some(der) = decode_secret(body) else {
        return Err((MTLS_KEY_NONE, "the PEM private key block is not valid base64".into()));
    };
    let der: PrivateKeyDer<'_> = match label {
        b"RSA PRIVATE KEY" => PrivatePkcs1KeyDer::from(&der[..]).into(),
        b"EC PRIVATE KEY" => PrivateSec1KeyDer::from(&der[..]).into(),
        _ => PrivatePkcs8KeyDer::from(&der[..]).into(),
    };
    let signer = any_supported_type(&der).map_err(|e| {
        (MTLS_KEY_UNSUPPORTED, format!("private key not usable: {e} (RSA, ECDSA P-256/P-384 and Ed25519 are)"))
    })?;
    let ck = CertifiedKey::new(chain, signer);
    // Compared here rather than by rustls' keys_match, which parses the certificate with webpki:
    // that refuses a critical extension it does not know, such as the acmeIdentifier every
    // tls-alpn-01 challenge certificate has (RFC 8737). Serving does not parse it at all.
    let Some(leaf_spki) = ck.cert.first().and_then(|c| tbs_field(c.as_ref(), TBS_SPKI)) else {
        return Err((MTLS_CERT_BAD, "the certificate does not parse".into()));
    };
    match ck.key.public_key() {
        Some(spki) if spki.as_ref() != leaf_spki => {
            Err((MTLS_KEY_MISMATCH, "the private key does not match the certificate".into()))
        }
        // None: the key cannot tell its public half (rare); nothing to compare, clients check.
        _ => Ok(ck),
    }
}

/// TBSCertificate fields by their place after the optional version (RFC 5280 4.1).
pub(crate) const TBS_ISSUER: usize = 2;
pub(crate) const TBS_SPKI: usize = 5;

/// Field `index` of a DER certificate's TBSCertificate, as DER (header included): serial (0),
/// signature algorithm, issuer, validity, subject, subjectPublicKeyInfo (5). Read from the
/// head of the TBS, not by x509-parser's whole parse: that builds a lazy table of extension
/// parsers, and this runs in the Apache parent, which loads the module afresh at every restart
/// and would lose the table each time (see crl_next_update in config.rs).
pub(crate) fn tbs_field(der: &[u8], index: usize) -> Option<&[u8]> {
    let (_, cert) = Any::from_der(der).ok()?;
    let (_, tbs) = Any::from_der(cert.data).ok()?;
    if cert.tag() != Tag::Sequence || tbs.tag() != Tag::Sequence {
        return None;
    }
    let mut rest = tbs.data;
    let (after, first) = Any::from_der(rest).ok()?;
    if first.class() == Class::ContextSpecific && first.tag() == Tag(0) {
        rest = after; // the version
    }
    for _ in 0..index {
        let (after, _) = Any::from_der(rest).ok()?;
        rest = after;
    }
    let (after, _) = Any::from_der(rest).ok()?;
    Some(&rest[..rest.len() - after.len()])
}

/// Overwrites the stack below the caller, where parsing the key left copies of secret
/// bytes (ring works on the key material in stack buffers). Startup only, so the cost does not
/// matter.
#[inline(never)]
fn scrub_stack() {
    let mut below = [0u8; 64 * 1024];
    below.zeroize();
    std::hint::black_box(&below);
}

/// Loads a PEM chain (`cert_pem`, `cert_len` bytes: the leaf first, then its chain) and its PEM
/// private key (`key_pem`, `key_len` bytes: PKCS#8, PKCS#1 RSA or SEC1 EC, unencrypted). Both
/// are borrowed for the call: C may zero the key's buffer right after.
///
/// On MTLS_OK, `*out` is a new handle C owns (mtls_certkey_free). On failure, a sentence for
/// the admin goes NUL-terminated into `err` (`err_len` bytes, truncated to fit; `err` may be
/// NULL), and the result says what went wrong: MTLS_CERT_NONE, MTLS_CERT_BAD, MTLS_KEY_NONE,
/// MTLS_KEY_ENCRYPTED, MTLS_KEY_UNSUPPORTED or MTLS_KEY_MISMATCH.
#[no_mangle]
pub extern "C" fn mtls_certkey_load(
    cert_pem: *const u8,
    cert_len: usize,
    key_pem: *const u8,
    key_len: usize,
    out: *mut *mut mtls_certkey,
    err: *mut c_char,
    err_len: usize,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let (Some(cert), Some(key)) = (slice_from(cert_pem, cert_len), slice_from(key_pem, key_len)) else {
            return MTLS_NULL_PARAM;
        };
        let out = try_mut!(out);
        let loaded = load(cert, key);
        scrub_stack();
        match loaded {
            Ok(ck) => {
                let key = Arc::new(ck);
                let served = Arc::new(Served::new(key.clone()));
                *out = Box::into_raw(Box::new(mtls_certkey { key, served }));
                MTLS_OK
            }
            Err((code, msg)) => {
                write_cstr(&msg, err, err_len);
                code
            }
        }
    })
}

/// Frees a handle from mtls_certkey_load; NULL is allowed, twice is not. Configs built from it
/// stay valid.
#[no_mangle]
pub extern "C" fn mtls_certkey_free(ck: *mut mtls_certkey) {
    ffi_guard!((), {
        // SAFETY: mtls.h: `ck` is NULL or comes from mtls_certkey_load (Box::into_raw), and C frees
        // it once; configs hold their own Arc of the key, not this box.
        unsafe { crate::free_handle(ck) }
    })
}

/// Whether the leaf certificate is valid for DNS name `name` (NUL-terminated, borrowed for the
/// call). false when either is NULL, and for a name that is no DNS name.
#[no_mangle]
pub extern "C" fn mtls_certkey_covers_name(ck: *const mtls_certkey, name: *const c_char) -> bool {
    ffi_guard!(false, {
        let ck = try_ref!(ck, false);
        if name.is_null() {
            return false;
        }
        // SAFETY: mtls.h: `name` is a NUL-terminated string, not changed during the call.
        let Ok(name) = unsafe { std::ffi::CStr::from_ptr(name) }.to_str() else {
            return false;
        };
        let Ok(sn) = ServerName::try_from(name) else {
            return false;
        };
        let Some(leaf) = ck.key.cert.first() else {
            return false;
        };
        match webpki::EndEntityCert::try_from(leaf) {
            Ok(ee) => ee.verify_is_valid_for_subject_name(&sn).is_ok(),
            Err(_) => false,
        }
    })
}

/// Borrows the leaf certificate's DER: on MTLS_OK, `*der` points to `*der_len` bytes, valid
/// until `ck` is freed. MTLS_CERT_NONE: there is no certificate.
#[no_mangle]
pub extern "C" fn mtls_certkey_leaf_der(
    ck: *const mtls_certkey,
    der: *mut *const u8,
    der_len: *mut usize,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let ck = try_ref!(ck);
        let (der, der_len) = (try_mut!(der), try_mut!(der_len));
        let Some(leaf) = ck.key.cert.first() else {
            return MTLS_CERT_NONE;
        };
        *der = leaf.as_ref().as_ptr();
        *der_len = leaf.as_ref().len();
        MTLS_OK
    })
}

/// The leaf certificate's notAfter, in seconds since the Unix epoch, into `*secs` on MTLS_OK.
/// MTLS_CERT_BAD: the leaf does not parse.
#[no_mangle]
pub extern "C" fn mtls_certkey_not_after(ck: *const mtls_certkey, secs: *mut i64) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let ck = try_ref!(ck);
        let secs = try_mut!(secs);
        let Some(leaf) = ck.key.cert.first() else {
            return MTLS_CERT_NONE;
        };
        // Extensions left unparsed: x509-parser keeps its extension parsers in a lazy table,
        // and this runs in the Apache parent, where statics do not outlive a restart (see
        // crl_next_update in config.rs).
        match X509CertificateParser::new().with_deep_parse_extensions(false).parse(leaf.as_ref()) {
            Ok((_, cert)) => {
                *secs = cert.validity().not_after.timestamp();
                MTLS_OK
            }
            Err(_) => MTLS_CERT_BAD,
        }
    })
}

/// Staples the OCSP response `der` (`len` bytes of DER, borrowed for the call; copied) to the
/// certificate in every config made with it, from the next handshake on, until the response's
/// nextUpdate (a day after its thisUpdate when it has none); afterwards handshakes go without.
/// On MTLS_OK, `*until` (may be NULL) gets that time in Unix seconds. `len` 0: no staple from
/// now on (MTLS_OK, `*until` 0). MTLS_INVALID: `der` is no successful response of one
/// certificate's status, or it has expired: then nothing is stapled either.
#[no_mangle]
pub extern "C" fn mtls_certkey_set_ocsp(ck: *const mtls_certkey, der: *const u8, len: usize, until: *mut i64) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let ck = try_ref!(ck);
        let Some(der) = slice_from(der, len) else {
            return MTLS_NULL_PARAM;
        };
        let valid = if der.is_empty() { Some(0) } else { valid_until(der).filter(|t| *t > now_secs()) };
        let Some(t) = valid else {
            ck.served.set(None);
            return MTLS_INVALID;
        };
        ck.served.set((t > 0).then(|| (der.to_vec(), t)));
        if !until.is_null() {
            *try_mut!(until) = t;
        }
        MTLS_OK
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_ocsp_response_is_stapled_until_it_expires_or_is_replaced() {
        use crate::testutil::{test_issued, test_ocsp_response};
        let t = &test_issued().leaf;
        let mut ck = std::ptr::null_mut();
        let rr = mtls_certkey_load(t.cert_pem.as_ptr(), t.cert_pem.len(), t.key_pem.as_ptr(), t.key_pem.len(),
                                   &mut ck, std::ptr::null_mut(), 0);
        assert_eq!(rr, MTLS_OK);
        // SAFETY: `ck` is a live handle from mtls_certkey_load.
        let served = unsafe { &*ck }.served.clone();
        let resp = test_ocsp_response(false, 1);
        let mut until = 0;
        assert_eq!(mtls_certkey_set_ocsp(ck, resp.as_ptr(), resp.len(), &mut until), MTLS_OK);
        assert!(until > now_secs());
        assert_eq!(served.current().ocsp.as_deref(), Some(&resp[..]));
        let garbage = b"no OCSP response";
        assert_eq!(mtls_certkey_set_ocsp(ck, garbage.as_ptr(), garbage.len(), &mut until), MTLS_INVALID);
        assert_eq!(served.current().ocsp, None, "an invalid response takes the old one away");
        assert_eq!(mtls_certkey_set_ocsp(ck, resp.as_ptr(), resp.len(), std::ptr::null_mut()), MTLS_OK);
        assert_eq!(mtls_certkey_set_ocsp(ck, std::ptr::null(), 0, &mut until), MTLS_OK);
        assert_eq!((served.current().ocsp.clone(), until), (None, 0));
        // expired: stapled until a time already past, it is served without
        served.set(Some((resp.clone(), now_secs() - 1)));
        assert_eq!(served.current().ocsp, None);
        mtls_certkey_free(ck);
    }

    use super::*;

    #[test]
    fn pem_sections_and_base64() {
        let made = crate::testutil::test_cert();
        let both = [made.cert_pem.as_slice(), made.key_pem.as_slice()].concat();
        let found = pem_sections(&both);
        let labels: Vec<&[u8]> = found.iter().map(|(l, _, _)| *l).collect();
        assert_eq!(labels, [b"CERTIFICATE".as_slice(), b"PRIVATE KEY".as_slice()]);
        assert_eq!(decode_secret(found[0].2).as_deref(), Some(&made.cert_der));
        assert_eq!(decode_secret(found[1].2).as_deref(), Some(&made.key_der));
        assert_eq!(decode_secret(b"aGVs\nbG8=").as_deref().map(Vec::as_slice), Some(&b"hello"[..]));
        assert!(decode_secret(b"aGV*").is_none());
        assert!(decode_secret(b"aG=V").is_none());
        assert!(pem_sections(b"-----BEGIN X-----\nno end").is_empty());
        // the whole load, the key in the certificate's file as well
        assert!(load(&made.cert_pem, &made.key_pem).is_ok());
        assert!(load(&both, &both).is_ok());
    }
}


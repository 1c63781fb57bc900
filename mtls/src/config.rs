//! Server configs: built once per vhost at startup, shared by all its connections.

use std::cell::Cell;
use std::os::raw::c_char;
use std::sync::Arc;

use rustls::crypto::ring;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SignatureScheme, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use x509_parser::asn1_rs::{Any, FromDer, Tag};
use x509_parser::time::ASN1Time;

use crate::certkey::mtls_certkey;
use crate::keylog::{mtls_keylog, FileKeyLog};
use crate::ocsp::Served;
use crate::session::{
    mtls_session_get_cb, mtls_session_put_cb, mtls_session_remove_cb, mtls_ticketer, CallbackStore, Ticketer,
};
use crate::result::mtls_result::{self, *};
use crate::{ffi_guard, slice_from, try_mut, try_ref, write_cstr};

/// Picks the first certificate whose key can sign with a scheme the client offered, so one
/// vhost can serve RSA and ECDSA clients alike.
#[derive(Debug)]
struct BySignatureScheme {
    keys: Vec<Arc<Served>>,
}

impl BySignatureScheme {
    /// The index and the key, with its current staple, of the first that suits.
    fn pick(&self, offered: &[SignatureScheme]) -> Option<(usize, Arc<CertifiedKey>)> {
        self.keys.iter().map(|k| k.current()).enumerate().find(|(_, k)| k.key.choose_scheme(offered).is_some())
    }
}

thread_local! {
    /// The index the resolver picked in this thread's last call. rustls resolves the
    /// certificate synchronously inside `Accepted::into_connection`, so `conn.rs` reads it
    /// right after: what rustls really sent, with the schemes as rustls filtered them.
    pub(crate) static PICKED: Cell<Option<usize>> = const { Cell::new(None) };
}

impl ResolvesServerCert for BySignatureScheme {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // When no key suits the client, the first one goes on anyway: rustls then fails the
        // handshake where the mismatch is (no suite or signature scheme in common) with
        // handshake_failure, as TLS says; returning none would make it send access_denied.
        let picked = self.pick(hello.signature_schemes()).or_else(|| self.keys.first().map(|k| (0, k.current())));
        PICKED.with(|p| p.set(picked.as_ref().map(|(i, _)| *i)));
        picked.map(|(_, k)| k)
    }
}

/// A server config: immutable once built, shared by every connection started with it. Opaque.
/// From mtls_server_config_builder_build or mtls_server_config_with_alpn, freed with
/// mtls_server_config_free; connections keep what they need of it alive on their own.
pub struct mtls_server_config {
    pub(crate) config: Arc<ServerConfig>,
}

/// Collects a server config's settings. Opaque. From mtls_server_config_builder_new; consumed
/// by mtls_server_config_builder_build (also when that fails), or freed with
/// mtls_server_config_builder_free when it is never built.
pub struct mtls_server_config_builder {
    keys: Vec<Arc<Served>>,
    policy: Policy,
    honor_client_order: bool,
    /// None: rustls' per-process memory cache; Some(None): no server-side state at all.
    store: Option<Option<Arc<CallbackStore>>>,
    ticketer: Option<Arc<Ticketer>>,
    client_auth: Option<ClientAuth>,
    key_log: Option<Arc<FileKeyLog>>,
}

/// Trust anchors and revocation lists for client certificates.
struct ClientAuth {
    roots: RootCertStore,
    crls: Vec<CertificateRevocationListDer<'static>>,
    required: bool,
}

/// The cipher suites rustls offers here, in its default preference order.
fn provider_suites() -> Vec<SupportedCipherSuite> {
    ring::default_provider().cipher_suites
}

/// The protocol versions and cipher suites a config allows: the part of the settings that
/// server and client configs (TLSProtocol and TLSProxyProtocol, ...) have in common.
#[derive(Default)]
pub(crate) struct Policy {
    tls13_only: bool,
    /// None: every supported suite, in rustls' order.
    suites: Option<Vec<u16>>,
}

impl Policy {
    /// 0x0303 (TLS 1.2 and 1.3) or 0x0304 (TLS 1.3 only); MTLS_INVALID for any other value.
    pub(crate) fn set_min_version(&mut self, version: u16) -> mtls_result {
        match version {
            0x0303 => self.tls13_only = false,
            0x0304 => self.tls13_only = true,
            _ => return MTLS_INVALID,
        }
        MTLS_OK
    }

    /// IANA ids in preference order, each one this build supports; otherwise MTLS_INVALID and
    /// nothing changes.
    pub(crate) fn set_suites(&mut self, ids: &[u16]) -> mtls_result {
        let known = provider_suites();
        if ids.iter().any(|id| !known.iter().any(|s| u16::from(s.suite()) == *id)) {
            return MTLS_INVALID;
        }
        self.suites = Some(ids.to_vec());
        MTLS_OK
    }

    /// The ring provider with the allowed suites, in the order given.
    pub(crate) fn provider(&self) -> Arc<rustls::crypto::CryptoProvider> {
        let mut provider = ring::default_provider();
        if let Some(ids) = &self.suites {
            let all = provider.cipher_suites.clone();
            provider.cipher_suites = ids
                .iter()
                .filter_map(|id| all.iter().find(|s| u16::from(s.suite()) == *id).copied())
                .collect();
        }
        Arc::new(provider)
    }

    pub(crate) fn versions(&self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        static BOTH: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
        if self.tls13_only {
            TLS13_ONLY
        } else {
            BOTH
        }
    }
}

/// Number of cipher suites this build supports (mtls_suite_id gives their ids).
#[no_mangle]
pub extern "C" fn mtls_suites_count() -> usize {
    ffi_guard!(0, { provider_suites().len() })
}

/// The IANA id of supported cipher suite `i` (from 0), in rustls' default preference order; 0
/// when `i` is out of range.
#[no_mangle]
pub extern "C" fn mtls_suite_id(i: usize) -> u16 {
    ffi_guard!(0, { provider_suites().get(i).map(|s| u16::from(s.suite())).unwrap_or(0) })
}

/// A new builder, owned by C, with the defaults: TLS 1.2 and 1.3, every supported suite in
/// rustls' order, the client's preference order honoured, no client certificates, rustls' small
/// session cache in each process, no tickets. NULL only after a caught panic.
#[no_mangle]
pub extern "C" fn mtls_server_config_builder_new() -> *mut mtls_server_config_builder {
    ffi_guard!(std::ptr::null_mut(), {
        Box::into_raw(Box::new(mtls_server_config_builder {
            keys: Vec::new(),
            policy: Policy::default(),
            honor_client_order: true,
            store: None,
            ticketer: None,
            client_auth: None,
            key_log: None,
        }))
    })
}

/// Adds a certificate with its key; the builder keeps its own reference, C keeps its handle. A
/// client gets the first one, in the order added, whose key can sign with a scheme it offers
/// (mtls_conn_certkey_index tells which), or the first one when none can.
#[no_mangle]
pub extern "C" fn mtls_server_config_builder_add_certkey(
    b: *mut mtls_server_config_builder,
    ck: *const mtls_certkey,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let b = try_mut!(b);
        let ck = try_ref!(ck);
        b.keys.push(ck.served.clone());
        MTLS_OK
    })
}

/// The lowest protocol version allowed: 0x0303 (TLS 1.2 and 1.3, the default) or 0x0304 (TLS
/// 1.3 only). MTLS_INVALID for any other value.
#[no_mangle]
pub extern "C" fn mtls_server_config_builder_set_min_version(
    b: *mut mtls_server_config_builder,
    version: u16,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, { try_mut!(b).policy.set_min_version(version) })
}

/// The cipher suites to offer: `n` IANA ids at `ids` (borrowed for the call), in server
/// preference order. Every id must be one this build supports (mtls_suite_id): otherwise
/// MTLS_INVALID and nothing changes, so the caller filters them first.
#[no_mangle]
pub extern "C" fn mtls_server_config_builder_set_suites(
    b: *mut mtls_server_config_builder,
    ids: *const u16,
    n: usize,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let b = try_mut!(b);
        let Some(ids) = slice_from(ids, n) else {
            return MTLS_NULL_PARAM;
        };
        b.policy.set_suites(ids)
    })
}

/// Whose preference order picks the cipher suite: true (the default), the client's; false, the
/// server's (the order given to mtls_server_config_builder_set_suites).
#[no_mangle]
pub extern "C" fn mtls_server_config_builder_set_honor_client_order(
    b: *mut mtls_server_config_builder,
    honor: bool,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        try_mut!(b).honor_client_order = honor;
        MTLS_OK
    })
}

/// Keeps server-side session state (TLS 1.2 session ids, TLS 1.3 stateful resumption) through
/// C's callbacks, which get the userdata given to mtls_conn_set_userdata. All three NULL: no
/// server-side state at all. Some NULL but not all: MTLS_NULL_PARAM. Without this call, rustls
/// keeps a small cache in each process.
#[no_mangle]
pub extern "C" fn mtls_server_config_builder_set_session_store(
    b: *mut mtls_server_config_builder,
    get: Option<mtls_session_get_cb>,
    put: Option<mtls_session_put_cb>,
    remove: Option<mtls_session_remove_cb>,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let b = try_mut!(b);
        b.store = match (get, put, remove) {
            (Some(get), Some(put), Some(remove)) => Some(Some(Arc::new(CallbackStore { get, put, remove }))),
            (None, None, None) => Some(None),
            _ => return MTLS_NULL_PARAM,
        };
        MTLS_OK
    })
}

/// Issues and accepts session tickets sealed by `t`. The config keeps its own reference to the
/// ticketer, so C may free its handle whenever it likes. Without this call: no tickets.
#[no_mangle]
pub extern "C" fn mtls_server_config_builder_set_ticketer(
    b: *mut mtls_server_config_builder,
    t: *const mtls_ticketer,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let b = try_mut!(b);
        b.ticketer = Some(try_ref!(t).inner.clone());
        MTLS_OK
    })
}

/// Writes the secrets of every connection made with the config to `k` (SSLKEYLOGFILE). The
/// config keeps its own reference to the log, so C may free its handle whenever it likes.
/// Without this call nothing is logged.
#[no_mangle]
pub extern "C" fn mtls_server_config_builder_set_keylog(
    b: *mut mtls_server_config_builder,
    k: *const mtls_keylog,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let b = try_mut!(b);
        b.key_log = Some(try_ref!(k).inner.clone());
        MTLS_OK
    })
}

fn client_auth(ca_pem: &[u8], crl_pem: &[u8], required: bool) -> Result<ClientAuth, String> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        let c = c.map_err(|e| format!("bad PEM in the CA file: {e}"))?;
        roots.add(c).map_err(|e| format!("a CA certificate is not usable: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA file holds no PEM 'CERTIFICATE' block".into());
    }
    let mut crls = Vec::new();
    for c in CertificateRevocationListDer::pem_slice_iter(crl_pem) {
        let c = c.map_err(|e| format!("bad PEM in a CRL file: {e}"))?;
        webpki::BorrowedCertRevocationList::from_der(c.as_ref())
            .map_err(|e| format!("a CRL does not parse: {e}"))?;
        crls.push(c);
    }
    if !crl_pem.is_empty() && crls.is_empty() {
        return Err("the CRL file holds no PEM 'X509 CRL' block".into());
    }
    Ok(ClientAuth { roots, crls, required })
}

/// Asks clients for a certificate, verified for the whole chain against the CAs in `ca_pem`
/// (`ca_len` bytes of PEM certificates, at least one) and the revocation lists in `crl_pem`
/// (`crl_len` bytes of PEM CRLs; may be empty, and NULL when empty). A certificate that no
/// given CRL speaks for (e.g. the root's own) is not refused for that. `required` false: a
/// client without a certificate is let in, one with an invalid certificate is not. Both buffers
/// are borrowed for the call.
///
/// MTLS_CONFIG: a CA or CRL is not usable; a sentence for the admin goes NUL-terminated into
/// `err` (`err_len` bytes, truncated to fit; `err` may be NULL).
#[no_mangle]
pub extern "C" fn mtls_server_config_builder_set_client_auth(
    b: *mut mtls_server_config_builder,
    ca_pem: *const u8,
    ca_len: usize,
    crl_pem: *const u8,
    crl_len: usize,
    required: bool,
    err: *mut c_char,
    err_len: usize,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let b = try_mut!(b);
        let (Some(ca), Some(crl)) = (slice_from(ca_pem, ca_len), slice_from(crl_pem, crl_len)) else {
            return MTLS_NULL_PARAM;
        };
        match client_auth(ca, crl, required) {
            Ok(a) => {
                b.client_auth = Some(a);
                MTLS_OK
            }
            Err(msg) => {
                write_cstr(&msg, err, err_len);
                MTLS_CONFIG
            }
        }
    })
}

/// A CRL's nextUpdate (Unix seconds), read from the head of its TBSCertList (version,
/// signature, issuer, thisUpdate, nextUpdate). Not with x509-parser's whole-CRL parse: that
/// builds a lazy table of extension parsers on first use, and this runs in the Apache parent,
/// which unloads the module at every restart and loads it afresh, statics and all: the table
/// was built again each time and the old one lost (1.3 KB per restart). Whether the CRL is
/// valid is webpki's to say, as it is webpki that enforces it.
fn crl_next_update(der: &[u8]) -> Option<i64> {
    let (_, list) = Any::from_der(der).ok()?;
    let (_, tbs) = Any::from_der(list.data).ok()?;
    if list.tag() != Tag::Sequence || tbs.tag() != Tag::Sequence {
        return None;
    }
    let mut rest = tbs.data;
    let (after, first) = Any::from_der(rest).ok()?;
    if first.tag() == Tag::Integer {
        rest = after; // the version
    }
    for _ in 0..2 {
        // the signature algorithm and the issuer
        let (after, seq) = Any::from_der(rest).ok()?;
        if seq.tag() != Tag::Sequence {
            return None;
        }
        rest = after;
    }
    let (rest, _this_update) = ASN1Time::from_der(rest).ok()?;
    let (_, next_update) = ASN1Time::from_der(rest).ok()?;
    Some(next_update.timestamp())
}

/// The earliest nextUpdate (Unix seconds) of the CRLs in `crl_pem` (`crl_len` bytes of PEM,
/// borrowed for the call), to warn about stale lists: into `*secs` on MTLS_OK, 0 when `crl_pem`
/// holds no CRL. webpki requires every CRL to have a nextUpdate: MTLS_CERT_BAD when a CRL does
/// not parse or has none.
#[no_mangle]
pub extern "C" fn mtls_crl_next_update(crl_pem: *const u8, crl_len: usize, secs: *mut i64) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let Some(pem) = slice_from(crl_pem, crl_len) else {
            return MTLS_NULL_PARAM;
        };
        let secs = try_mut!(secs);
        let mut earliest: Option<i64> = None;
        for c in CertificateRevocationListDer::pem_slice_iter(pem) {
            let Ok(c) = c else {
                return MTLS_CERT_BAD;
            };
            if webpki::BorrowedCertRevocationList::from_der(c.as_ref()).is_err() {
                return MTLS_CERT_BAD;
            }
            let Some(t) = crl_next_update(c.as_ref()) else {
                return MTLS_CERT_BAD;
            };
            earliest = Some(earliest.map_or(t, |e| e.min(t)));
        }
        *secs = earliest.unwrap_or(0);
        MTLS_OK
    })
}

/// Frees a builder that is never built (mtls_server_config_builder_build frees its own); NULL
/// is allowed, twice is not.
#[no_mangle]
pub extern "C" fn mtls_server_config_builder_free(b: *mut mtls_server_config_builder) {
    ffi_guard!((), {
        // SAFETY: mtls.h: `b` is NULL or comes from mtls_server_config_builder_new, was not given to mtls_server_config_builder_build
        // (which frees it), and C frees it once.
        unsafe { crate::free_handle(b) }
    })
}

fn build(b: mtls_server_config_builder) -> Result<mtls_server_config, String> {
    if b.keys.is_empty() {
        return Err("no certificate given".into());
    }
    let provider = b.policy.provider();
    let with_versions = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(b.policy.versions())
        .map_err(|e| format!("{e} (do the allowed ciphers cover the allowed protocol versions?)"))?;
    let with_verifier = match b.client_auth {
        None => with_versions.with_no_client_auth(),
        Some(a) => {
            // Revocation is checked for the whole chain; a certificate no given CRL speaks
            // for (e.g. the root's own) is not thereby refused.
            let mut vb = WebPkiClientVerifier::builder_with_provider(Arc::new(a.roots), provider)
                .with_crls(a.crls)
                .allow_unknown_revocation_status();
            if !a.required {
                vb = vb.allow_unauthenticated();
            }
            with_versions.with_client_cert_verifier(vb.build().map_err(|e| format!("client certificates: {e}"))?)
        }
    };
    let mut config = with_verifier.with_cert_resolver(Arc::new(BySignatureScheme { keys: b.keys }));
    config.ignore_client_order = !b.honor_client_order;
    match b.store {
        Some(Some(store)) => config.session_storage = store,
        Some(None) => config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {}),
        None => {}
    }
    if let Some(t) = b.ticketer {
        config.ticketer = t;
    }
    if let Some(k) = b.key_log {
        config.key_log = k;
    }
    Ok(mtls_server_config { config: Arc::new(config) })
}

/// Builds a config and consumes `b`, also on failure: C must neither use nor free `b`
/// afterwards. On MTLS_OK, `*out` is a new config C owns (mtls_server_config_free).
///
/// MTLS_CONFIG: the settings do not make a config (no certificate, no cipher suite for an
/// allowed version, unusable client CAs); a sentence for the admin goes NUL-terminated into
/// `err` (`err_len` bytes, truncated to fit; `err` may be NULL).
#[no_mangle]
pub extern "C" fn mtls_server_config_builder_build(
    b: *mut mtls_server_config_builder,
    out: *mut *const mtls_server_config,
    err: *mut c_char,
    err_len: usize,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        // SAFETY: mtls.h: `b` is NULL or comes from mtls_server_config_builder_new and this call takes it
        // over, whatever it returns; `out` and `err` as the header says.
        unsafe { crate::build_handle(b, out, err, err_len, build) }
    })
}

/// A copy of `base` that agrees on ALPN protocol `proto` (`proto_len` bytes, borrowed for the
/// call; 0 bytes: no ALPN at all): on MTLS_OK, `*out` is a new config C owns
/// (mtls_server_config_free), independent of `base`. Made at startup for each protocol a vhost
/// allows, so that connections pick a prebuilt config once Apache chose.
#[no_mangle]
pub extern "C" fn mtls_server_config_with_alpn(
    base: *const mtls_server_config,
    proto: *const u8,
    proto_len: usize,
    out: *mut *const mtls_server_config,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let base = try_ref!(base);
        let Some(proto) = slice_from(proto, proto_len) else {
            return MTLS_NULL_PARAM;
        };
        let out = try_mut!(out);
        let mut config = (*base.config).clone();
        config.alpn_protocols = if proto.is_empty() { vec![] } else { vec![proto.to_vec()] };
        *out = Box::into_raw(Box::new(mtls_server_config { config: Arc::new(config) }));
        MTLS_OK
    })
}

/// Frees a config handle; NULL is allowed, twice is not. Connections started with the config
/// keep their own reference, so it may be freed while they live; C treats its own pointer as
/// gone.
#[no_mangle]
pub extern "C" fn mtls_server_config_free(c: *const mtls_server_config) {
    ffi_guard!((), {
        // SAFETY: mtls.h: `c` is NULL or comes from mtls_server_config_builder_build or
        // mtls_server_config_with_alpn (Box::into_raw), and C frees it once. Connections hold their own
        // Arc of the rustls config.
        unsafe { crate::free_handle(c) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crl_next_update_writes_only_on_success() {
        let mut secs = -1i64;
        let bad = b"-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n";
        assert_eq!(mtls_crl_next_update(bad.as_ptr(), bad.len(), &mut secs), MTLS_CERT_BAD);
        assert_eq!(secs, -1);
        assert_eq!(mtls_crl_next_update(std::ptr::null(), 0, &mut secs), MTLS_OK);
        assert_eq!(secs, 0);
    }
}

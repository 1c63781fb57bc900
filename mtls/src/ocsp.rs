//! OCSP stapling: the response C fetched (from mod_md) for a certificate, served with it in
//! every handshake until it expires. C changes it while the configs live; the certificate
//! resolvers read it at each handshake, under a read lock.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;
use x509_parser::asn1_rs::{Any, Class, FromDer, GeneralizedTime, Tag};

/// How long a response without nextUpdate is stapled after its thisUpdate: RFC 6960 lets a
/// responder leave it out ("newer information is always available"); a day keeps it fresh.
const NO_NEXT_UPDATE_SECS: i64 = 24 * 3600;

/// A certificate as configs serve it: as loaded, and with the current OCSP response stapled,
/// until that response's nextUpdate.
#[derive(Debug)]
pub(crate) struct Served {
    plain: Arc<CertifiedKey>,
    stapled: RwLock<Option<(Arc<CertifiedKey>, i64)>>,
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Served {
    pub(crate) fn new(plain: Arc<CertifiedKey>) -> Self {
        Served { plain, stapled: RwLock::new(None) }
    }

    /// What a handshake now serves: with the staple while it is valid, without it otherwise.
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        let stapled = self.stapled.read().unwrap_or_else(|e| e.into_inner());
        match &*stapled {
            Some((key, until)) if now_secs() < *until => key.clone(),
            _ => self.plain.clone(),
        }
    }

    /// Staples `response` until `until` (Unix seconds); None: no staple.
    pub(crate) fn set(&self, response: Option<(Vec<u8>, i64)>) {
        let next = response.map(|(der, until)| {
            let mut key = (*self.plain).clone();
            key.ocsp = Some(der);
            (Arc::new(key), until)
        });
        *self.stapled.write().unwrap_or_else(|e| e.into_inner()) = next;
    }
}

/// Reads one element with the tag (and class) wanted; its contents and what follows.
fn element<'a>(der: &'a [u8], class: Class, tag: Tag) -> Option<(Any<'a>, &'a [u8])> {
    let (rest, any) = Any::from_der(der).ok()?;
    (any.class() == class && any.tag() == tag).then_some((any, rest))
}

fn universal<'a>(der: &'a [u8], tag: Tag) -> Option<(Any<'a>, &'a [u8])> {
    element(der, Class::Universal, tag)
}

fn time_of(any: &Any<'_>) -> Option<i64> {
    GeneralizedTime::try_from(any.clone()).ok().and_then(|t| t.utc_datetime().ok().map(|d| d.unix_timestamp()))
}

/// Until when (Unix seconds) an OCSP response (RFC 6960, DER) may be stapled: its single
/// response's nextUpdate, or thisUpdate plus a day without one. None when it is no successful
/// response of a single certificate's status. Whether the status is good or revoked is the
/// client's to read: a revoked one is stapled as well.
pub(crate) fn valid_until(der: &[u8]) -> Option<i64> {
    // OCSPResponse: responseStatus ENUMERATED (0: successful), responseBytes [0] EXPLICIT
    let (resp, _) = universal(der, Tag::Sequence)?;
    let (status, rest) = universal(resp.data, Tag::Enumerated)?;
    if status.data != [0] {
        return None;
    }
    let (bytes, _) = element(rest, Class::ContextSpecific, Tag(0))?;
    // ResponseBytes: responseType OID, response OCTET STRING (a BasicOCSPResponse)
    let (bytes, _) = universal(bytes.data, Tag::Sequence)?;
    let (_, rest) = universal(bytes.data, Tag::Oid)?;
    let (basic, _) = universal(rest, Tag::OctetString)?;
    // BasicOCSPResponse: tbsResponseData ResponseData, ...
    let (basic, _) = universal(basic.data, Tag::Sequence)?;
    let (data, _) = universal(basic.data, Tag::Sequence)?;
    // ResponseData: version [0] OPTIONAL, responderID ([1] or [2]), producedAt, responses
    let mut rest = data.data;
    if let Some((_, after)) = element(rest, Class::ContextSpecific, Tag(0)) {
        rest = after;
    }
    let (after, _) = Any::from_der(rest).ok()?; // responderID
    let (_, after) = universal(after, Tag::GeneralizedTime)?; // producedAt
    let (responses, _) = universal(after, Tag::Sequence)?;
    // SingleResponse: certID, certStatus, thisUpdate, nextUpdate [0] EXPLICIT OPTIONAL
    let (single, more) = universal(responses.data, Tag::Sequence)?;
    if !more.is_empty() {
        return None;
    }
    let (_, after) = universal(single.data, Tag::Sequence)?; // certID
    let (after, _) = Any::from_der(after).ok()?; // certStatus
    let (this_update, after) = universal(after, Tag::GeneralizedTime)?;
    match element(after, Class::ContextSpecific, Tag(0)) {
        Some((next, _)) => time_of(&Any::from_der(next.data).ok()?.1),
        None => time_of(&this_update).map(|t| t + NO_NEXT_UPDATE_SECS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::test_ocsp_response;

    #[test]
    fn a_response_is_valid_until_its_next_update() {
        let now = now_secs();
        for revoked in [false, true] {
            let until = valid_until(&test_ocsp_response(revoked, 2)).expect("a valid response");
            assert!((until - (now + 2 * 86400)).abs() < 600, "{until} vs {now}");
        }
        let until = valid_until(&test_ocsp_response(false, 0)).expect("a valid response");
        assert!((until - (now + NO_NEXT_UPDATE_SECS)).abs() < 600, "without nextUpdate: {until}");
        for bad in [&b""[..], b"\x30\x03\x0a\x01\x01", b"\x30\x03\x0a\x01\x00", b"garbage"] {
            assert_eq!(valid_until(bad), None, "{bad:?}");
        }
    }
}

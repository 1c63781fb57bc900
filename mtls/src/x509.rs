//! Certificate fields for the SSL_CLIENT_* / SSL_SERVER_* variables, formatted the way
//! mod_ssl formats them so that existing configurations keep working. Parsing is x509-parser's.

use std::borrow::Cow;
use std::os::raw::c_char;

use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid::Oid;
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid2sn, oid_registry};
use x509_parser::time::ASN1Time;
use x509_parser::der_parser::asn1_rs::Any;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::result::mtls_result::{self, *};
use crate::{ffi_guard, slice_from, try_mut};

/// DN components as mod_ssl names them in variables (SSL_CLIENT_S_DN_<name>), with their OIDs.
/// Where two names share an OID (ST, SP), the first is the one mod_ssl exports.
const DN_PARTS: &[(&str, &str)] = &[
    ("C", "2.5.4.6"),
    ("ST", "2.5.4.8"),
    ("SP", "2.5.4.8"),
    ("L", "2.5.4.7"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("CN", "2.5.4.3"),
    ("T", "2.5.4.12"),
    ("I", "2.5.4.43"),
    ("G", "2.5.4.42"),
    ("S", "2.5.4.4"),
    ("D", "2.5.4.13"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("Email", "1.2.840.113549.1.9.1"),
    ("SerialNumber", "2.5.4.5"),
];

/// OpenSSL's short names of DN attributes, as RFC 2253 output shows them. Attributes not
/// named here print as their OID with the DER value in hex, as OpenSSL does for unknown ones.
const ATTR_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "title"),
    ("2.5.4.13", "description"),
    ("2.5.4.15", "businessCategory"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.41", "name"),
    ("2.5.4.42", "GN"),
    ("2.5.4.43", "initials"),
    ("2.5.4.44", "generationQualifier"),
    ("2.5.4.46", "dnQualifier"),
    ("2.5.4.65", "pseudonym"),
    ("2.5.4.72", "role"),
    ("2.5.4.97", "organizationIdentifier"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
    ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
    ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
];

/// OpenSSL's long names of key and signature algorithms (A_KEY, A_SIG), where x509-parser's
/// registry spells them otherwise or not at all.
const ALGORITHM_NAMES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.1", "rsaEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.113549.1.1.10", "rsassaPss"),
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption"),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption"),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption"),
    ("1.2.840.10045.2.1", "id-ecPublicKey"),
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256"),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384"),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512"),
    ("1.3.101.112", "ED25519"),
    ("1.3.101.113", "ED448"),
];

fn lookup<'t>(table: &'t [(&'t str, &'t str)], oid: &Oid) -> Option<&'t str> {
    let id = oid.to_id_string();
    table.iter().find(|(k, _)| *k == id).map(|(_, v)| *v)
}

/// A string value as text: UTF-8, the ASCII types, T61 (as Latin-1), BMP (UTF-16) and
/// Universal (UCS-4) strings. None for other types.
fn decode(any: &Any) -> Option<String> {
    let data = any.data;
    match any.header.tag().0 {
        12 | 18 | 19 | 22 | 26 | 27 => std::str::from_utf8(data).ok().map(str::to_string),
        20 => Some(data.iter().map(|&b| b as char).collect()),
        30 => {
            let units: Vec<u16> = data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok()
        }
        28 => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// "#" and the value's DER in hex, as OpenSSL prints what it cannot show as text.
fn der_hex(any: &Any) -> String {
    let h = &any.header;
    let first = ((h.class() as u8) << 6) | (u8::from(h.is_constructed()) << 5) | (h.tag().0 as u8 & 0x1f);
    let len = any.data.len();
    let mut der = vec![first];
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().copied().skip_while(|&b| b == 0).collect();
        der.push(0x80 | bytes.len() as u8);
        der.extend(bytes);
    }
    der.extend_from_slice(any.data);
    let mut out = String::from("#");
    for b in der {
        out.push_str(&format!("{b:02X}"));
    }
    out
}

fn is_ctrl(ch: char) -> bool {
    (ch as u32) < 0x20 || ch as u32 == 0x7f
}

/// A control character as OpenSSL's ASN1_STRFLGS_ESC_CTRL writes it: `\00` for a NUL, `\0A`
/// for a newline, `\7F` for DEL.
fn push_ctrl(out: &mut String, ch: char) {
    out.push_str(&format!("\\{:02X}", ch as u32));
}

/// Escapes backslashes and control characters, as OpenSSL's ASN1_STRFLGS_ESC_CTRL does (mod_ssl
/// prints every name with it); `rfc2253` adds the characters RFC 2253 reserves. What comes out
/// has no NUL, tab or newline: a C string of it is all of it, and an "ENV" line stays one line.
fn escape(v: &str, rfc2253: bool) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, ch) in v.chars().enumerate() {
        if is_ctrl(ch) {
            push_ctrl(&mut out, ch);
            continue;
        }
        let special = ch == '\\'
            || (rfc2253
                && (matches!(ch, ',' | '+' | '"' | '<' | '>' | ';')
                    || (i == 0 && (ch == '#' || ch == ' '))
                    || (i == last && ch == ' ')));
        if special {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Control characters escaped, and nothing else: the last guard before a value leaves this
/// file. Values built above are escaped already, and for them this changes nothing.
fn escape_ctrl(v: &str) -> Cow<'_, str> {
    if !v.chars().any(is_ctrl) {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 8);
    for ch in v.chars() {
        if is_ctrl(ch) {
            push_ctrl(&mut out, ch);
        } else {
            out.push(ch);
        }
    }
    Cow::Owned(out)
}

/// The DN as mod_ssl prints it: RFC 2253, everything in reverse order (most specific first,
/// and the attributes of a multi-valued RDN reversed too), OpenSSL's short names.
fn dn_string(name: &X509Name) -> String {
    let attrs: Vec<(usize, &AttributeTypeAndValue)> =
        name.iter_rdn().enumerate().flat_map(|(i, rdn)| rdn.iter().map(move |a| (i, a))).collect();
    let mut out = String::new();
    let mut prev_rdn = None;
    for (rdn, a) in attrs.into_iter().rev() {
        if let Some(p) = prev_rdn {
            out.push(if p == rdn { '+' } else { ',' });
        }
        prev_rdn = Some(rdn);
        match (lookup(ATTR_NAMES, a.attr_type()), decode(a.attr_value())) {
            (Some(n), Some(v)) => out.push_str(&format!("{n}={}", escape(&v, true))),
            (Some(n), None) => out.push_str(&format!("{n}={}", der_hex(a.attr_value()))),
            (None, _) => out.push_str(&format!("{}={}", a.attr_type().to_id_string(), der_hex(a.attr_value()))),
        }
    }
    out
}

/// The DN's components as mod_ssl exports them: ("CN", value), ("OU", ...), ("OU_1", ...)
/// for a second OU, in certificate order.
fn dn_parts(name: &X509Name) -> Vec<(String, String)> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for a in name.iter_attributes() {
        let id = a.attr_type().to_id_string();
        let Some((key, _)) = DN_PARTS.iter().find(|(_, o)| *o == id) else {
            continue;
        };
        let Some(v) = decode(a.attr_value()) else {
            continue;
        };
        let n = seen.iter().filter(|k| *k == key).count();
        seen.push(key);
        let var = if n == 0 { key.to_string() } else { format!("{key}_{n}") };
        out.push((var, escape(&v, false)));
    }
    out
}

/// One DN component: `part` like "CN" or "OU_1" (the second OU); "SP" is ST by another name.
fn dn_part(name: &X509Name, part: &str) -> Option<String> {
    let want = if part == "SP" { "ST" } else { part };
    dn_parts(name).into_iter().find(|(k, _)| k == want).map(|(_, v)| v)
}

/// Fields exported to the environment besides the DN components and SANs.
const ENV_FIELDS: &[&str] = &["M_VERSION", "M_SERIAL", "V_START", "V_END", "V_REMAIN", "A_SIG", "A_KEY", "S_DN", "I_DN"];

/// Everything mod_ssl exports of a certificate with StdEnvVars, as "NAME\tvalue" lines, from
/// one parse: the fields, every DN component present, every DNS and e-mail SAN.
fn env_lines(cert: &X509Certificate, now: i64) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| {
        // values come escaped: a tab or newline in one cannot start a field or a line
        out.push_str(&format!("{k}\t{}\n", escape_ctrl(v)));
    };
    for f in ENV_FIELDS {
        if let Some(v) = field(cert, f, now) {
            line(f, &v);
        }
    }
    for (prefix, name) in [("S_DN_", cert.subject()), ("I_DN_", cert.issuer())] {
        for (k, v) in dn_parts(name) {
            line(&format!("{prefix}{k}"), &v);
        }
    }
    for (prefix, email) in [("SAN_DNS_", false), ("SAN_Email_", true)] {
        for i in 0.. {
            let Some(v) = san(cert, email, i) else {
                break;
            };
            line(&format!("{prefix}{i}"), &v);
        }
    }
    out
}

/// The serial as OpenSSL prints it: whole bytes in hex, without DER's sign padding.
fn serial_string(cert: &X509Certificate) -> String {
    let raw = cert.raw_serial();
    let raw = match raw {
        [0, next, ..] if next & 0x80 != 0 => &raw[1..],
        _ => raw,
    };
    raw.iter().map(|b| format!("{b:02X}")).collect()
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// OpenSSL's ASN1_TIME_print format: "Nov  6 08:15:00 2026 GMT".
fn time_string(t: &ASN1Time) -> String {
    let d = t.to_datetime();
    format!(
        "{} {:2} {:02}:{:02}:{:02} {} GMT",
        MONTHS[d.month() as usize - 1],
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.year()
    )
}

fn algorithm_name(oid: &Oid) -> String {
    lookup(ALGORITHM_NAMES, oid)
        .map(str::to_string)
        .or_else(|| oid2sn(oid, oid_registry()).ok().map(str::to_string))
        .unwrap_or_else(|| oid.to_id_string())
}

/// The idx-th DNS or e-mail SAN, escaped as mod_ssl escapes it: the IA5String may hold a NUL
/// (`alice@example.org\0.mallory.test` must not reach C as `alice@example.org`).
fn san(cert: &X509Certificate, email: bool, idx: usize) -> Option<String> {
    let ext = cert.subject_alternative_name().ok()??;
    ext.value
        .general_names
        .iter()
        .filter_map(|g| match (g, email) {
            (GeneralName::DNSName(d), false) => Some(escape(d, false)),
            (GeneralName::RFC822Name(m), true) => Some(escape(m, false)),
            _ => None,
        })
        .nth(idx)
}

fn field(cert: &X509Certificate, name: &str, now: i64) -> Option<String> {
    match name {
        "M_VERSION" => Some((cert.version().0 + 1).to_string()),
        "M_SERIAL" => Some(serial_string(cert)),
        "V_START" => Some(time_string(&cert.validity().not_before)),
        "V_END" => Some(time_string(&cert.validity().not_after)),
        "V_REMAIN" => Some(((cert.validity().not_after.timestamp() - now) / 86400).max(0).to_string()),
        "A_SIG" => Some(algorithm_name(&cert.signature_algorithm.algorithm)),
        "A_KEY" => Some(algorithm_name(&cert.public_key().algorithm.algorithm)),
        "S_DN" => Some(dn_string(cert.subject())),
        "I_DN" => Some(dn_string(cert.issuer())),
        "ENV" => Some(env_lines(cert, now)),
        _ => {
            if let Some(part) = name.strip_prefix("S_DN_") {
                dn_part(cert.subject(), part)
            } else if let Some(part) = name.strip_prefix("I_DN_") {
                dn_part(cert.issuer(), part)
            } else if let Some(n) = name.strip_prefix("SAN_DNS_") {
                san(cert, false, n.parse().ok()?)
            } else if let Some(n) = name.strip_prefix("SAN_Email_") {
                san(cert, true, n.parse().ok()?)
            } else {
                None
            }
        }
    }
}

/// A field of the certificate `der` (`der_len` bytes of DER, borrowed for the call), by its
/// variable name without the SSL_CLIENT_/SSL_SERVER_ prefix (`name`, NUL-terminated): "S_DN",
/// "S_DN_CN", "I_DN_O", "M_SERIAL", "M_VERSION", "V_START", "V_END", "V_REMAIN", "A_SIG",
/// "A_KEY", "SAN_DNS_0", "SAN_Email_0", ... "ENV" gives all that mod_ssl's StdEnvVars exports,
/// as "NAME\tvalue\n" lines. `now` (Unix seconds) is for V_REMAIN.
///
/// The value is formatted as mod_ssl formats it and escaped as mod_ssl escapes names: a control
/// character as "\\XX" (a NUL is "\\00", a newline "\\0A"), a backslash doubled; so none holds
/// a NUL, tab or newline, and on MTLS_OK it is in `buf` NUL-terminated with `*out_len` ==
/// strlen(buf).
///
/// MTLS_BUFFER_TOO_SMALL: `buf_len` bytes do not hold the value and its NUL; `*out_len` is the
/// value's length (the one out-parameter written on a failure), so a buffer of `*out_len` + 1
/// bytes will do. MTLS_INVALID: no such field, or not in this certificate. MTLS_CERT_BAD: the
/// DER does not parse. `*out_len` is left alone on these.
#[no_mangle]
pub extern "C" fn mtls_x509_field(
    der: *const u8,
    der_len: usize,
    name: *const c_char,
    now: i64,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let Some(der) = slice_from(der, der_len) else {
            return MTLS_NULL_PARAM;
        };
        let out_len = try_mut!(out_len);
        if name.is_null() || buf.is_null() {
            return MTLS_NULL_PARAM;
        }
        // SAFETY: mtls.h: `name` is a NUL-terminated string, not changed during the call.
        let Ok(name) = unsafe { std::ffi::CStr::from_ptr(name) }.to_str() else {
            return MTLS_INVALID;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return MTLS_CERT_BAD;
        };
        let Some(value) = field(&cert, name, now) else {
            return MTLS_INVALID;
        };
        // "ENV" escaped each value and needs its tabs and newlines; everything else has none
        let value = if name == "ENV" { value } else { escape_ctrl(&value).into_owned() };
        *out_len = value.len();
        if value.len() >= buf_len {
            return MTLS_BUFFER_TOO_SMALL;
        }
        crate::write_cstr(&value, buf, buf_len);
        MTLS_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;


    /// `mtls_x509_field` into a buffer of `size` bytes: the result, `*out_len` (usize::MAX when
    /// left alone) and the text up to the NUL.
    fn field_into(name: &str, size: usize) -> (mtls_result, usize, String) {
        let name = std::ffi::CString::new(name).unwrap();
        let mut buf = vec![0x55 as c_char; size.max(1)];
        let mut out_len = usize::MAX;
        // A self-signed P-256 certificate: O=mtls, CN=mtls test, SANs a.test and b.test.
        let cert = &crate::testutil::test_cert().cert_der;
        let rr = mtls_x509_field(cert.as_ptr(), cert.len(), name.as_ptr(), 0, buf.as_mut_ptr(), size, &mut out_len);
        let text = if rr == MTLS_OK {
            // SAFETY: on MTLS_OK the value was written NUL-terminated within buf.
            unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap().to_owned()
        } else {
            String::new()
        };
        (rr, out_len, text)
    }

    #[test]
    fn fields_as_mod_ssl_writes_them() {
        assert_eq!(field_into("S_DN", 64), (MTLS_OK, 19, "CN=mtls test,O=mtls".into()));
        assert_eq!(field_into("S_DN_CN", 64), (MTLS_OK, 9, "mtls test".into()));
        assert_eq!(field_into("SAN_DNS_1", 64), (MTLS_OK, 6, "b.test".into()));
    }

    #[test]
    fn a_small_buffer_gets_the_size_needed_and_nothing_else() {
        // The value and its NUL must fit: 9 bytes are one too few for "mtls test".
        for size in [0, 1, 9] {
            assert_eq!(field_into("S_DN_CN", size), (MTLS_BUFFER_TOO_SMALL, 9, String::new()), "{size}");
        }
        assert_eq!(field_into("S_DN_CN", 10), (MTLS_OK, 9, "mtls test".into()));
    }

    #[test]
    fn out_len_is_left_alone_on_failure() {
        assert_eq!(field_into("SAN_DNS_2", 64).0, MTLS_INVALID);
        assert_eq!(field_into("SAN_DNS_2", 64).1, usize::MAX);
        assert_eq!(field_into("NO_SUCH_FIELD", 64).1, usize::MAX);
    }
}

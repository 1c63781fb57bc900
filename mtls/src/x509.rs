//! Certificate fields for the SSL_CLIENT_* / SSL_SERVER_* variables, formatted the way
//! mod_ssl formats them so that existing configurations keep working. Parsing is x509-parser's.

use std::os::raw::c_char;

use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid::Oid;
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid2sn, oid_registry};
use x509_parser::time::ASN1Time;
use x509_parser::x509::X509Name;

use crate::result::mtls_result::{self, *};
use crate::{ffi_guard, slice_from};

/// DN component names as mod_ssl spells them in variable names, with their OIDs.
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
];

/// OpenSSL's short names for DN attributes, as in RFC 2253 output.
fn attr_name(oid: &Oid) -> String {
    match oid.to_id_string().as_str() {
        "2.5.4.3" => "CN".into(),
        "2.5.4.6" => "C".into(),
        "2.5.4.7" => "L".into(),
        "2.5.4.8" => "ST".into(),
        "2.5.4.10" => "O".into(),
        "2.5.4.11" => "OU".into(),
        "2.5.4.12" => "title".into(),
        "2.5.4.4" => "SN".into(),
        "2.5.4.42" => "GN".into(),
        "2.5.4.43" => "initials".into(),
        "2.5.4.5" => "serialNumber".into(),
        "2.5.4.9" => "street".into(),
        "2.5.4.13" => "description".into(),
        "0.9.2342.19200300.100.1.1" => "UID".into(),
        "0.9.2342.19200300.100.1.25" => "DC".into(),
        "1.2.840.113549.1.9.1" => "emailAddress".into(),
        other => other.to_string(),
    }
}

/// RFC 2253 escaping, as OpenSSL does it (multi-byte UTF-8 left as is).
fn escape_2253(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, ch) in v.chars().enumerate() {
        let special = matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (ch == '#' || ch == ' '))
            || (i == last && ch == ' ');
        if special {
            out.push('\\');
            out.push(ch);
        } else if (ch as u32) < 0x20 || ch as u32 == 0x7f {
            out.push_str(&format!("\\{:02X}", ch as u32));
        } else {
            out.push(ch);
        }
    }
    out
}

fn attr_value(attr: &x509_parser::x509::AttributeTypeAndValue) -> String {
    match attr.as_str() {
        Ok(s) => s.to_string(),
        // BMPString and friends: best effort, as text where the bytes are UTF-8.
        Err(_) => String::from_utf8_lossy(attr.as_slice()).into_owned(),
    }
}

/// The DN as mod_ssl prints it: RFC 2253, most specific RDN first.
fn dn_string(name: &X509Name) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|a| format!("{}={}", attr_name(a.attr_type()), escape_2253(&attr_value(a))))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// One DN component: `part` like "CN" or "OU_1" (the second OU).
fn dn_part(name: &X509Name, part: &str) -> Option<String> {
    let (key, idx) = match part.rsplit_once('_') {
        Some((k, n)) if n.chars().all(|c| c.is_ascii_digit()) => (k, n.parse::<usize>().ok()?),
        _ => (part, 0),
    };
    let oid_str = DN_PARTS.iter().find(|(k, _)| *k == key)?.1;
    name.iter_attributes()
        .filter(|a| a.attr_type().to_id_string() == oid_str)
        .nth(idx)
        .map(attr_value)
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
    oid2sn(oid, oid_registry()).map(str::to_string).unwrap_or_else(|_| oid.to_id_string())
}

fn san(cert: &X509Certificate, email: bool, idx: usize) -> Option<String> {
    let ext = cert.subject_alternative_name().ok()??;
    ext.value
        .general_names
        .iter()
        .filter_map(|g| match (g, email) {
            (GeneralName::DNSName(d), false) => Some(d.to_string()),
            (GeneralName::RFC822Name(m), true) => Some(m.to_string()),
            _ => None,
        })
        .nth(idx)
}

fn field(cert: &X509Certificate, name: &str, now: i64) -> Option<String> {
    match name {
        "M_VERSION" => Some((cert.version().0 + 1).to_string()),
        "M_SERIAL" => Some(format!("{:X}", cert.serial)),
        "V_START" => Some(time_string(&cert.validity().not_before)),
        "V_END" => Some(time_string(&cert.validity().not_after)),
        "V_REMAIN" => Some(((cert.validity().not_after.timestamp() - now) / 86400).max(0).to_string()),
        "A_SIG" => Some(algorithm_name(&cert.signature_algorithm.algorithm)),
        "A_KEY" => Some(algorithm_name(&cert.public_key().algorithm.algorithm)),
        "S_DN" => Some(dn_string(cert.subject())),
        "I_DN" => Some(dn_string(cert.issuer())),
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

/// A certificate field by its variable name without the SSL_CLIENT_/SSL_SERVER_ prefix
/// ("S_DN", "S_DN_CN", "M_SERIAL", "V_END", "SAN_DNS_0", ...), formatted as mod_ssl does,
/// NUL-terminated into `buf`. `now` (Unix seconds) is for V_REMAIN. MTLS_INVALID: no such
/// field or not in this certificate; MTLS_CERT_BAD: the DER does not parse.
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
        if name.is_null() || buf.is_null() || out_len.is_null() {
            return MTLS_NULL_PARAM;
        }
        let Ok(name) = unsafe { std::ffi::CStr::from_ptr(name) }.to_str() else {
            return MTLS_INVALID;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return MTLS_CERT_BAD;
        };
        let Some(value) = field(&cert, name, now) else {
            return MTLS_INVALID;
        };
        unsafe { *out_len = value.len() };
        if value.len() >= buf_len {
            return MTLS_INVALID;
        }
        crate::write_cstr(&value, buf, buf_len);
        MTLS_OK
    })
}

//! One TLS connection. An incoming one has first the ClientHello phase (an Acceptor, so the
//! caller can pick a vhost config from SNI and ALPN), then a rustls ServerConnection; the
//! hello is read once, and rustls keeps the buffered bytes and continues with the chosen
//! config. An outgoing one (to a backend) is a rustls ClientConnection from the start. Both
//! move bytes through the same calls.

use std::io::{ErrorKind, IoSlice, Read, Write};
use std::os::raw::{c_char, c_void};

use rustls::server::{Accepted, Acceptor};
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, ClientConnection, Connection, ContentType, HandshakeKind, InvalidMessage};

use crate::client::{mtls_client_config, with_port};
use crate::config::{mtls_server_config, PICKED};
use crate::hello::refused_server_name;
use crate::result::mtls_result::{self, *};
use crate::session::with_userdata;
use crate::{ffi_guard, slice_from, slice_from_mut, try_mut, try_ref, write_cstr};

/// The most of the ClientHello's bytes kept: one full record. Hellos take a few hundred bytes
/// to 2 KiB; one that is larger and names its server late goes without its name in the log.
const HELLO_KEPT_MAX: usize = 5 + 16384;

/// A plaintext fatal alert record (type 21, version TLS 1.2, length 2, level 2), for refusals
/// before any key is agreed, where rustls has no call to send one.
fn alert_record(description: u8) -> [u8; 7] {
    [21, 3, 3, 0, 2, 2, description]
}

/// The alert for a first message rustls' Acceptor refused without queueing one itself. It
/// queues none when that message is of another type than ClientHello (another handshake
/// type, a record of another content type), nor when the handshake framing fails before a
/// message is read (a length over 64 KiB, another record type between a message's pieces).
/// A client's own alert is not answered (RFC 8446 section 6); our own faults get none either.
fn hello_refusal_alert(e: &rustls::Error) -> Option<u8> {
    use rustls::Error as E;
    let description = match e {
        E::InappropriateMessage { got_type: ContentType::Alert, .. } => return None,
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } | E::PeerMisbehaved(_) => {
            AlertDescription::UnexpectedMessage
        }
        E::InvalidMessage(_) => AlertDescription::DecodeError,
        _ => return None,
    };
    Some(u8::from(description))
}

/// Where the connection is. The phase lives inside the connection's own allocation for the
/// connection's whole life, sized for its largest variant: `Accepted`, which lasts from
/// MTLS_HELLO to mtls_conn_start, is boxed so that it does not make every connection larger.
enum Phase {
    Hello(Acceptor),
    Chosen(Box<Accepted>),
    /// The handshake and after; an outgoing connection starts here.
    Traffic(Connection),
    Failed,
}

/// One TLS connection. Opaque. From mtls_conn_new (incoming) or mtls_conn_new_client
/// (outgoing), owned by C, freed with mtls_conn_free.
///
/// Life of an incoming one: feed it with mtls_conn_read_tls and mtls_conn_process until MTLS_HELLO; look at
/// mtls_conn_sni and mtls_conn_hello_alpn; then mtls_conn_start with the config chosen, or
/// mtls_conn_refuse with an alert. After that: mtls_conn_read_tls and mtls_conn_process,
/// plaintext through mtls_conn_read and mtls_conn_writev, TLS out through mtls_conn_write_tls.
/// After any error, send what mtls_conn_write_tls still gives (the alert), then close.
///
/// An outgoing one is in the handshake from the start: send what mtls_conn_write_tls gives (the
/// ClientHello), then go on as with an incoming one after mtls_conn_start; the hello calls
/// (mtls_conn_sni, mtls_conn_hello_alpn, mtls_conn_start, mtls_conn_refuse) do not apply.
///
/// One owner: a connection is not synchronised, and every call on it (the const ones too) must
/// come from the thread that owns it at that moment. mod_tls' owner is the connection's filter
/// chain; anything another thread needs (HTTP/2 requests) is copied out once when the handshake
/// completes. Pointers it lends are valid as each function says, at most until mtls_conn_free.
pub struct mtls_conn {
    phase: Phase,
    /// Bytes to send that rustls no longer holds (an alert after a failed hello).
    pending: Vec<u8>,
    /// The ClientHello's bytes as they came in, kept in the hello phase only: when rustls
    /// refuses the server name, it does not say what it was.
    hello_bytes: Vec<u8>,
    /// The server name rustls refused as no DNS host name.
    refused_sni: Option<Vec<u8>>,
    sni: Option<String>,
    alpn: Vec<Vec<u8>>,
    /// Index of the certificate rustls sent, in the config's order.
    certkey_index: Option<usize>,
    /// Handed to the session store callbacks while rustls works on this connection.
    userdata: *mut c_void,
    /// Outgoing: the server's port, under which its sessions are kept.
    port: u16,
    error: String,
}

impl mtls_conn {
    fn in_phase(phase: Phase) -> Self {
        mtls_conn {
            phase,
            pending: Vec::new(),
            hello_bytes: Vec::new(),
            refused_sni: None,
            sni: None,
            alpn: Vec::new(),
            certkey_index: None,
            userdata: std::ptr::null_mut(),
            port: 0,
            error: String::new(),
        }
    }

    fn fail(&mut self, e: rustls::Error) -> mtls_result {
        self.error = e.to_string();
        mtls_result::from_rustls(&e)
    }

    /// Ends the connection rustls refused, with the alert it queued, or `otherwise` when it
    /// queued none.
    fn fail_with_alert(
        &mut self,
        e: rustls::Error,
        alert: rustls::server::AcceptedAlert,
        otherwise: Option<u8>,
    ) -> mtls_result {
        let mut alert = alert;
        let queued = self.pending.len();
        let _ = alert.write_all(&mut self.pending);
        if let (true, Some(description)) = (self.pending.len() == queued, otherwise) {
            self.pending.extend_from_slice(&alert_record(description));
        }
        self.phase = Phase::Failed;
        self.fail(e)
    }

    fn traffic(&mut self) -> Option<&mut Connection> {
        match &mut self.phase {
            Phase::Traffic(c) => Some(c),
            _ => None,
        }
    }

    fn traffic_ref(&self) -> Option<&Connection> {
        match &self.phase {
            Phase::Traffic(c) => Some(c),
            _ => None,
        }
    }
}

/// A new connection in the hello phase, owned by C (mtls_conn_free). NULL only after a caught
/// panic.
#[no_mangle]
pub extern "C" fn mtls_conn_new() -> *mut mtls_conn {
    ffi_guard!(std::ptr::null_mut(), { Box::into_raw(Box::new(mtls_conn::in_phase(Phase::Hello(Acceptor::default())))) })
}

/// A new outgoing connection to the server `name` (`name_len` bytes, borrowed for the call: a
/// DNS name, or an IP address in text) at `port`, made with `config`, which it keeps its own
/// reference to. rustls sends `name` as SNI unless it is an IP address, and verifies the
/// server's certificate for it. A session the config kept for the same name and port is
/// resumed. On MTLS_OK, `*out` is a new connection C owns (mtls_conn_free), its
/// ClientHello waiting for mtls_conn_write_tls. MTLS_INVALID: `name` is neither a DNS name nor
/// an IP address. MTLS_ERROR: rustls could not start it.
#[no_mangle]
pub extern "C" fn mtls_conn_new_client(
    config: *const mtls_client_config,
    name: *const u8,
    name_len: usize,
    port: u16,
    out: *mut *mut mtls_conn,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let config = try_ref!(config);
        let out = try_mut!(out);
        let Some(name) = slice_from(name, name_len) else {
            return MTLS_NULL_PARAM;
        };
        let Some(name) = std::str::from_utf8(name).ok().and_then(|n| ServerName::try_from(n.to_owned()).ok()) else {
            return MTLS_INVALID;
        };
        match with_port(port, || ClientConnection::new(config.config.clone(), name)) {
            Ok(c) => {
                let mut conn = mtls_conn::in_phase(Phase::Traffic(Connection::Client(c)));
                conn.port = port;
                *out = Box::into_raw(Box::new(conn));
                MTLS_OK
            }
            Err(_) => MTLS_ERROR,
        }
    })
}

/// What the session store callbacks (mtls_server_config_builder_set_session_store) get as
/// userdata while rustls works on this connection, inside mtls_conn_start and
/// mtls_conn_process. Only handed back, never dereferenced: it must stay valid as long as those
/// calls may come. NULL, the default: the callbacks are not called (nothing is stored or
/// found).
#[no_mangle]
pub extern "C" fn mtls_conn_set_userdata(conn: *mut mtls_conn, userdata: *mut c_void) {
    ffi_guard!((), {
        try_mut!(conn, ()).userdata = userdata;
    })
}

/// Frees a connection, and with it everything it lent; NULL is allowed, twice is not.
#[no_mangle]
pub extern "C" fn mtls_conn_free(conn: *mut mtls_conn) {
    ffi_guard!((), {
        // SAFETY: mtls.h: `conn` is NULL or comes from mtls_conn_new or mtls_conn_new_client
        // (Box::into_raw), and C frees it once, after its last call on it.
        unsafe { crate::free_handle(conn) }
    })
}

/// Offers `data` to `read` (a rustls read_tls) until it took all or takes no more. rustls
/// takes no more than its buffer's free room per call (4 KiB at least; the buffer grows on
/// the next call), and refuses with an error once the buffer holds a full record unprocessed
/// (64 KiB while it joins a handshake message). What it took; its error only when it took
/// nothing.
fn read_all<F>(mut read: F, mut data: &[u8]) -> std::io::Result<usize>
where
    F: FnMut(&mut &[u8]) -> std::io::Result<usize>,
{
    let mut took = 0;
    loop {
        match read(&mut data) {
            Ok(n) if n > 0 && !data.is_empty() => took += n,
            Ok(n) => return Ok(took + n),
            Err(_) if took > 0 => return Ok(took),
            Err(e) => return Err(e),
        }
    }
}

/// Hands TLS bytes from the network to the connection (`buf`, `len` bytes, borrowed for the
/// call). On MTLS_OK, `*n_read` says how many it took: all of them, unless rustls holds as much
/// as it will unprocessed; then call mtls_conn_process and offer the rest. `len` 0 tells of the
/// transport's EOF.
///
/// MTLS_PEER_INVALID: rustls took nothing and refuses more (mtls_conn_error tells why).
/// MTLS_WRONG_PHASE: between MTLS_HELLO and mtls_conn_start, or after a failed hello.
#[no_mangle]
pub extern "C" fn mtls_conn_read_tls(
    conn: *mut mtls_conn,
    buf: *const u8,
    len: usize,
    n_read: *mut usize,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let conn = try_mut!(conn);
        let n_read = try_mut!(n_read);
        let Some(data) = slice_from(buf, len) else {
            return MTLS_NULL_PARAM;
        };
        let r = match &mut conn.phase {
            Phase::Hello(a) => {
                let r = read_all(|d| a.read_tls(d), data);
                if let Ok(n) = r {
                    let keep = n.min(HELLO_KEPT_MAX.saturating_sub(conn.hello_bytes.len()));
                    conn.hello_bytes.extend_from_slice(data.get(..keep).unwrap_or_default());
                }
                r
            }
            Phase::Traffic(c) => read_all(|d| c.read_tls(d), data),
            _ => return MTLS_WRONG_PHASE,
        };
        match r {
            Ok(n) => {
                *n_read = n;
                MTLS_OK
            }
            Err(e) => {
                conn.error = e.to_string();
                MTLS_PEER_INVALID
            }
        }
    })
}

/// Processes the TLS bytes read so far. In the hello phase: MTLS_HELLO once the ClientHello is
/// complete (and again until mtls_conn_start or mtls_conn_refuse), MTLS_WOULD_BLOCK while it
/// needs more, MTLS_PEER_BAD_SNI when rustls refused the server name (mtls_conn_refused_sni
/// tells what it was). Afterwards MTLS_OK. The session store callbacks may run inside.
///
/// An error leaves its detail for mtls_conn_error and an alert to send through
/// mtls_conn_write_tls; after a failed hello, MTLS_WRONG_PHASE.
#[no_mangle]
pub extern "C" fn mtls_conn_process(conn: *mut mtls_conn) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let conn = try_mut!(conn);
        match &mut conn.phase {
            Phase::Hello(a) => match a.accept() {
                Ok(None) => MTLS_WOULD_BLOCK,
                Ok(Some(accepted)) => {
                    conn.hello_bytes = Vec::new();
                    let hello = accepted.client_hello();
                    conn.sni = hello.server_name().map(str::to_owned);
                    conn.alpn = hello.alpn().map(|it| it.map(<[u8]>::to_vec).collect()).unwrap_or_default();
                    conn.phase = Phase::Chosen(Box::new(accepted));
                    MTLS_HELLO
                }
                Err((e, alert)) => {
                    let refused = match e {
                        rustls::Error::InvalidMessage(InvalidMessage::InvalidServerName) => {
                            refused_server_name(&conn.hello_bytes)
                        }
                        _ => None,
                    };
                    conn.hello_bytes = Vec::new();
                    let otherwise = hello_refusal_alert(&e);
                    let rr = conn.fail_with_alert(e, alert, otherwise);
                    if refused.is_none() {
                        return rr;
                    }
                    conn.refused_sni = refused;
                    MTLS_PEER_BAD_SNI
                }
            },
            Phase::Chosen(_) => MTLS_HELLO,
            Phase::Traffic(c) => match with_userdata(conn.userdata, || with_port(conn.port, || c.process_new_packets())) {
                Ok(_) => MTLS_OK,
                Err(e) => conn.fail(e),
            },
            Phase::Failed => MTLS_WRONG_PHASE,
        }
    })
}

/// The SNI host name the client sent, known once the hello is read (MTLS_HELLO): on MTLS_OK,
/// `*name` points to `*len` bytes (borrowed, NOT NUL-terminated, valid until conn is freed), or
/// is NULL with `*len` 0 when the client sent none. An IP address sent as SNI counts as none
/// (rustls drops it).
#[no_mangle]
pub extern "C" fn mtls_conn_sni(conn: *const mtls_conn, name: *mut *const c_char, len: *mut usize) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let conn = try_ref!(conn);
        let (name, len) = (try_mut!(name), try_mut!(len));
        match &conn.sni {
            Some(s) => {
                *name = s.as_ptr() as *const c_char;
                *len = s.len();
            }
            None => {
                *name = std::ptr::null();
                *len = 0;
            }
        }
        MTLS_OK
    })
}

/// After mtls_conn_process returned MTLS_PEER_BAD_SNI (rustls refused the ClientHello with a
/// decode_error alert, already queued): the server name the client sent, exactly as sent. Any
/// bytes, NUL and control characters included, and up to 65535 of them: escape and bound it
/// before showing it. On MTLS_OK, `*name` points to `*len` bytes (borrowed, NOT NUL-terminated,
/// valid until conn is freed). MTLS_INVALID when there is none.
#[no_mangle]
pub extern "C" fn mtls_conn_refused_sni(
    conn: *const mtls_conn,
    name: *mut *const u8,
    len: *mut usize,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let conn = try_ref!(conn);
        let (name, len) = (try_mut!(name), try_mut!(len));
        let Some(s) = &conn.refused_sni else {
            return MTLS_INVALID;
        };
        *name = s.as_ptr();
        *len = s.len();
        MTLS_OK
    })
}

/// Number of ALPN protocols the client offered in its ClientHello: 0 before MTLS_HELLO, when it
/// offered none, and for NULL.
#[no_mangle]
pub extern "C" fn mtls_conn_hello_alpn_count(conn: *const mtls_conn) -> usize {
    ffi_guard!(0, { try_ref!(conn, 0).alpn.len() })
}

/// ALPN protocol `i` (from 0, in the client's order) the client offered: on MTLS_OK, `*proto`
/// points to `*len` bytes (borrowed, NOT NUL-terminated, valid until conn is freed).
/// MTLS_INVALID: `i` is out of range.
#[no_mangle]
pub extern "C" fn mtls_conn_hello_alpn(
    conn: *const mtls_conn,
    i: usize,
    proto: *mut *const u8,
    len: *mut usize,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let conn = try_ref!(conn);
        let (proto, len) = (try_mut!(proto), try_mut!(len));
        let Some(p) = conn.alpn.get(i) else {
            return MTLS_INVALID;
        };
        *proto = p.as_ptr();
        *len = p.len();
        MTLS_OK
    })
}

/// Continues the handshake after MTLS_HELLO with the config chosen for this client; the
/// connection keeps its own reference to the config. rustls picks the certificate here, and the
/// session store callbacks may run inside. MTLS_WRONG_PHASE: not right after MTLS_HELLO. An
/// error leaves its detail for mtls_conn_error and an alert to send through
/// mtls_conn_write_tls.
#[no_mangle]
pub extern "C" fn mtls_conn_start(conn: *mut mtls_conn, config: *const mtls_server_config) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let conn = try_mut!(conn);
        let config = try_ref!(config);
        let Phase::Chosen(accepted) = std::mem::replace(&mut conn.phase, Phase::Failed) else {
            return MTLS_WRONG_PHASE;
        };
        PICKED.with(|p| p.set(None));
        let started = with_userdata(conn.userdata, || accepted.into_connection(config.config.clone()));
        conn.certkey_index = PICKED.with(|p| p.take());
        match started {
            Ok(c) => {
                conn.phase = Phase::Traffic(Connection::Server(c));
                MTLS_OK
            }
            // TLS 1.2: when the key the resolver fell back to cannot sign with any scheme the
            // client offered, rustls fails without an alert; it is handshake_failure all the
            // same (the resolver's comment in config.rs).
            Err((e, alert)) => {
                let otherwise = mtls_result::is_incompatible_key(&e).then_some(40);
                conn.fail_with_alert(e, alert, otherwise)
            }
        }
    })
}

/// Refuses the client after MTLS_HELLO with a fatal alert, `alert_description` as TLS numbers
/// it (e.g. 112, unrecognized_name), sent before any certificate: send what mtls_conn_write_tls
/// gives, then close. rustls has no call for this, so the plaintext record is made here.
/// MTLS_WRONG_PHASE: not right after MTLS_HELLO.
#[no_mangle]
pub extern "C" fn mtls_conn_refuse(conn: *mut mtls_conn, alert_description: u8) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let conn = try_mut!(conn);
        if !matches!(conn.phase, Phase::Chosen(_)) {
            return MTLS_WRONG_PHASE;
        }
        conn.pending.extend_from_slice(&alert_record(alert_description));
        conn.phase = Phase::Failed;
        MTLS_OK
    })
}

/// Whether TLS bytes wait to be sent through mtls_conn_write_tls; false for NULL.
#[no_mangle]
pub extern "C" fn mtls_conn_wants_write(conn: *const mtls_conn) -> bool {
    ffi_guard!(false, {
        let conn = try_ref!(conn, false);
        !conn.pending.is_empty() || conn.traffic_ref().map(|c| c.wants_write()).unwrap_or(false)
    })
}

/// Copies TLS bytes waiting to be sent into `buf` (`len` bytes); on MTLS_OK, `*n_written` says
/// how many (0: nothing waiting). MTLS_ERROR: rustls failed (mtls_conn_error tells why).
#[no_mangle]
pub extern "C" fn mtls_conn_write_tls(
    conn: *mut mtls_conn,
    buf: *mut u8,
    len: usize,
    n_written: *mut usize,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let conn = try_mut!(conn);
        let n_written = try_mut!(n_written);
        let Some(mut out) = slice_from_mut(buf, len) else {
            return MTLS_NULL_PARAM;
        };
        let n = if !conn.pending.is_empty() {
            let n = conn.pending.len().min(out.len());
            out[..n].copy_from_slice(&conn.pending[..n]);
            conn.pending.drain(..n);
            n
        } else if let Some(c) = conn.traffic() {
            match c.write_tls(&mut out) {
                Ok(n) => n,
                Err(e) => {
                    conn.error = e.to_string();
                    return MTLS_ERROR;
                }
            }
        } else {
            0
        };
        *n_written = n;
        MTLS_OK
    })
}

/// Whether the handshake is still going on: true in every phase before its end, also before
/// mtls_conn_start and after a failed hello; false for NULL.
#[no_mangle]
pub extern "C" fn mtls_conn_is_handshaking(conn: *const mtls_conn) -> bool {
    ffi_guard!(false, {
        try_ref!(conn, false).traffic_ref().map(|t| t.is_handshaking()).unwrap_or(true)
    })
}

/// A reader that has nothing yet: rustls sizes its receive buffer before reading, and with
/// no partial record buffered it shrinks it to 4 KiB. rustls 0.23 has no call to release
/// the buffer, and 4 KiB is as small as it gets.
struct NothingYet;

impl Read for NothingYet {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(ErrorKind::WouldBlock.into())
    }
}

/// The peer has nothing more to send for now: lets rustls shrink its receive buffer, which
/// otherwise stays as large as the last records made it (8 KiB after small ones, 32 KiB after
/// an upload) for as long as the connection idles. Nothing before mtls_conn_start.
#[no_mangle]
pub extern "C" fn mtls_conn_shrink(conn: *mut mtls_conn) {
    ffi_guard!((), {
        if let Some(c) = try_mut!(conn, ()).traffic() {
            let _ = c.read_tls(&mut NothingYet);
        }
    })
}

/// Reads decrypted application data into `buf` (`len` bytes). MTLS_OK: `*n_read` bytes (more
/// than 0 unless `len` is 0). MTLS_WOULD_BLOCK: none yet, read more TLS. MTLS_EOF: the peer
/// sent close_notify. MTLS_PEER_UNEXPECTED_EOF: the transport ended without it.
/// MTLS_WRONG_PHASE: before mtls_conn_start. MTLS_ERROR: anything else (mtls_conn_error).
#[no_mangle]
pub extern "C" fn mtls_conn_read(conn: *mut mtls_conn, buf: *mut u8, len: usize, n_read: *mut usize) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let conn = try_mut!(conn);
        let n_read = try_mut!(n_read);
        let Some(out) = slice_from_mut(buf, len) else {
            return MTLS_NULL_PARAM;
        };
        let Some(c) = conn.traffic() else {
            return MTLS_WRONG_PHASE;
        };
        match c.reader().read(out) {
            Ok(0) if !out.is_empty() => MTLS_EOF,
            Ok(n) => {
                *n_read = n;
                MTLS_OK
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => MTLS_WOULD_BLOCK,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => MTLS_PEER_UNEXPECTED_EOF,
            Err(e) => {
                conn.error = e.to_string();
                MTLS_ERROR
            }
        }
    })
}

/// Encrypts application data given as `n` pieces (`bufs[i]`, `lens[i]` bytes; the arrays and
/// the pieces are borrowed for the call, and a piece of length 0 may be NULL), as one stream:
/// small pieces fill whole records together, without being copied together first. On MTLS_OK,
/// `*n_taken` (bytes, over all pieces) may be less than their sum while rustls' send buffer is
/// full: drain it with mtls_conn_write_tls and offer the rest again. MTLS_WRONG_PHASE: before
/// mtls_conn_start.
#[no_mangle]
pub extern "C" fn mtls_conn_writev(
    conn: *mut mtls_conn,
    bufs: *const *const u8,
    lens: *const usize,
    n: usize,
    n_taken: *mut usize,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let conn = try_mut!(conn);
        let n_taken = try_mut!(n_taken);
        let (Some(bufs), Some(lens)) = (slice_from(bufs, n), slice_from(lens, n)) else {
            return MTLS_NULL_PARAM;
        };
        let mut slices = Vec::with_capacity(n);
        for (&p, &len) in bufs.iter().zip(lens) {
            let Some(s) = slice_from(p, len) else {
                return MTLS_NULL_PARAM;
            };
            slices.push(IoSlice::new(s));
        }
        let Some(c) = conn.traffic() else {
            return MTLS_WRONG_PHASE;
        };
        match c.writer().write_vectored(&slices) {
            Ok(taken) => {
                *n_taken = taken;
                MTLS_OK
            }
            Err(e) => {
                conn.error = e.to_string();
                MTLS_ERROR
            }
        }
    })
}

/// Queues a close_notify alert, for mtls_conn_write_tls to send; nothing before
/// mtls_conn_start.
#[no_mangle]
pub extern "C" fn mtls_conn_send_close_notify(conn: *mut mtls_conn) {
    ffi_guard!((), {
        if let Some(c) = try_mut!(conn, ()).traffic() {
            c.send_close_notify();
        }
    })
}

/// The negotiated protocol version: 0x0303 (TLS 1.2) or 0x0304 (TLS 1.3) once the handshake
/// settled it; 0 before, and for NULL.
#[no_mangle]
pub extern "C" fn mtls_conn_protocol_version(conn: *const mtls_conn) -> u16 {
    ffi_guard!(0, {
        try_ref!(conn, 0)
            .traffic_ref()
            .and_then(|t| t.protocol_version())
            .map(u16::from)
            .unwrap_or(0)
    })
}

/// The IANA id of the negotiated cipher suite once the handshake settled it; 0 before, and for
/// NULL.
#[no_mangle]
pub extern "C" fn mtls_conn_cipher_suite(conn: *const mtls_conn) -> u16 {
    ffi_guard!(0, {
        try_ref!(conn, 0)
            .traffic_ref()
            .and_then(|t| t.negotiated_cipher_suite())
            .map(|s| u16::from(s.suite()))
            .unwrap_or(0)
    })
}

/// The ALPN protocol the handshake agreed on: on MTLS_OK, `*proto` points to `*len` bytes
/// (borrowed, NOT NUL-terminated, valid until the next call that takes a non-const conn), or is
/// NULL with `*len` 0 when there is none (yet).
#[no_mangle]
pub extern "C" fn mtls_conn_alpn(conn: *const mtls_conn, proto: *mut *const u8, len: *mut usize) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let conn = try_ref!(conn);
        let (proto, len) = (try_mut!(proto), try_mut!(len));
        match conn.traffic_ref().and_then(|t| t.alpn_protocol()) {
            Some(p) => {
                *proto = p.as_ptr();
                *len = p.len();
            }
            None => {
                *proto = std::ptr::null();
                *len = 0;
            }
        }
        MTLS_OK
    })
}

/// The IANA id (TLS NamedGroup) of the key exchange group the handshake used: 0x001d x25519,
/// 0x0017 secp256r1, 0x0018 secp384r1, ... 0 before the handshake completed, for NULL, and
/// for a resumed TLS 1.2 session, which exchanges no key.
#[no_mangle]
pub extern "C" fn mtls_conn_kx_group(conn: *const mtls_conn) -> u16 {
    ffi_guard!(0, {
        try_ref!(conn, 0)
            .traffic_ref()
            .and_then(|t| t.negotiated_key_exchange_group())
            .map(|g| u16::from(g.name()))
            .unwrap_or(0)
    })
}

/// Whether the handshake resumed an earlier session (known once it completed); false before,
/// and for NULL.
#[no_mangle]
pub extern "C" fn mtls_conn_is_resumed(conn: *const mtls_conn) -> bool {
    ffi_guard!(false, {
        try_ref!(conn, false)
            .traffic_ref()
            .and_then(|t| t.handshake_kind())
            .map(|k| k == HandshakeKind::Resumed)
            .unwrap_or(false)
    })
}

/// Index, in the order they were added to the config (mtls_server_config_builder_add_certkey),
/// of the certificate served to this client; -1 before mtls_conn_start and when none was sent
/// (a resumed session sends none).
#[no_mangle]
pub extern "C" fn mtls_conn_certkey_index(conn: *const mtls_conn) -> i32 {
    ffi_guard!(-1, {
        try_ref!(conn, -1).certkey_index.and_then(|i| i32::try_from(i).ok()).unwrap_or(-1)
    })
}

/// Number of certificates the peer presented (its own first, then its chain); 0 when none,
/// before the handshake got them, and for NULL.
#[no_mangle]
pub extern "C" fn mtls_conn_peer_cert_count(conn: *const mtls_conn) -> usize {
    ffi_guard!(0, {
        try_ref!(conn, 0)
            .traffic_ref()
            .and_then(|t| t.peer_certificates())
            .map(|c| c.len())
            .unwrap_or(0)
    })
}

/// The DER of the peer's certificate `i` (0: its own, then its chain): on MTLS_OK, `*der`
/// points to `*der_len` bytes, borrowed: copy them before the next call that takes a non-const
/// conn. MTLS_INVALID: there is no certificate `i`.
#[no_mangle]
pub extern "C" fn mtls_conn_peer_cert(
    conn: *const mtls_conn,
    i: usize,
    der: *mut *const u8,
    der_len: *mut usize,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let conn = try_ref!(conn);
        let (der, der_len) = (try_mut!(der), try_mut!(der_len));
        let Some(cert) = conn.traffic_ref().and_then(|t| t.peer_certificates()).and_then(|c| c.get(i)) else {
            return MTLS_INVALID;
        };
        *der = cert.as_ref().as_ptr();
        *der_len = cert.as_ref().len();
        MTLS_OK
    })
}

/// Writes the detail of the connection's last error, NUL-terminated and truncated to fit, into
/// `buf` (`len` bytes); an empty string when there was none, nothing when `conn` or `buf` is
/// NULL or `len` is 0.
#[no_mangle]
pub extern "C" fn mtls_conn_error(conn: *const mtls_conn, buf: *mut c_char, len: usize) {
    ffi_guard!((), {
        write_cstr(&try_ref!(conn, ()).error, buf, len);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mtls_result_is_peer_fault;

    /// What a new connection answers to `input` as the client's first bytes, and the result.
    fn first_bytes(input: &[u8]) -> (mtls_result, Vec<u8>) {
        let conn = mtls_conn_new();
        let mut n = 0;
        assert_eq!(mtls_conn_read_tls(conn, input.as_ptr(), input.len(), &mut n), MTLS_OK);
        assert_eq!(n, input.len());
        let rr = mtls_conn_process(conn);
        let mut out = vec![0u8; 64];
        assert_eq!(mtls_conn_write_tls(conn, out.as_mut_ptr(), out.len(), &mut n), MTLS_OK);
        out.truncate(n);
        mtls_conn_free(conn);
        (rr, out)
    }

    fn record(typ: u8, payload: &[u8]) -> Vec<u8> {
        let mut r = vec![typ, 3, 1, (payload.len() >> 8) as u8, payload.len() as u8];
        r.extend_from_slice(payload);
        r
    }

    #[test]
    fn a_first_message_of_another_type_gets_unexpected_message() {
        for input in [
            record(22, &[99, 0, 0, 3, 1, 2, 3]), // unknown handshake type
            record(22, &[11, 0, 0, 3, 0, 0, 0]), // Certificate, empty
            record(20, &[1]),                    // ChangeCipherSpec
            record(23, b"abcd"),                 // application data
            [record(22, &[1, 0, 0, 40, 3, 3]), record(20, &[1])].concat(), // interleaved
        ] {
            let (rr, out) = first_bytes(&input);
            assert!(mtls_result_is_peer_fault(rr as u32), "{input:?}: {rr:?}");
            assert_eq!(out, alert_record(10), "{input:?}");
        }
    }

    #[test]
    fn bad_framing_gets_decode_error() {
        for input in [
            record(22, &[0xff; 5]),     // a handshake message over 64 KiB
            record(22, &[1, 0, 0, 1, 3]), // rustls' own: a ClientHello that does not parse
        ] {
            let (rr, out) = first_bytes(&input);
            assert!(mtls_result_is_peer_fault(rr as u32), "{input:?}: {rr:?}");
            assert_eq!(out, alert_record(50), "{input:?}");
        }
    }

    #[test]
    fn read_all_offers_until_taken_or_refused() {
        // takes at most 3 bytes a call, refuses once it holds 10
        let mut held = 0;
        let mut reader = |d: &mut &[u8]| {
            if held >= 10 {
                return Err(std::io::Error::new(ErrorKind::InvalidData, "buffer full"));
            }
            let n = d.len().min(3).min(10 - held);
            *d = &d[n..];
            held += n;
            Ok(n)
        };
        assert_eq!(read_all(&mut reader, &[7; 8]).unwrap(), 8);
        assert_eq!(read_all(&mut reader, &[7; 8]).unwrap(), 2);
        assert!(read_all(&mut reader, &[7; 8]).is_err());
        assert_eq!(read_all(|_| Ok(0), &[]).unwrap(), 0);
    }

    #[test]
    fn out_params_are_left_alone_on_failure() {
        let conn = mtls_conn_new();
        let mut buf = [0u8; 16];
        let mut n = usize::MAX;
        // no traffic yet
        assert_eq!(mtls_conn_read(conn, buf.as_mut_ptr(), buf.len(), &mut n), MTLS_WRONG_PHASE);
        assert_eq!(n, usize::MAX);
        let (bufs, lens) = ([buf.as_ptr()], [buf.len()]);
        assert_eq!(mtls_conn_writev(conn, bufs.as_ptr(), lens.as_ptr(), 1, &mut n), MTLS_WRONG_PHASE);
        assert_eq!(n, usize::MAX);
        assert_eq!(mtls_conn_read_tls(conn, std::ptr::null(), 1, &mut n), MTLS_NULL_PARAM);
        assert_eq!(n, usize::MAX);
        let (mut name, mut len) = (std::ptr::null(), usize::MAX);
        assert_eq!(mtls_conn_refused_sni(conn, &mut name, &mut len), MTLS_INVALID);
        assert_eq!(len, usize::MAX);
        assert_eq!(mtls_conn_hello_alpn(conn, 0, &mut name, &mut len), MTLS_INVALID);
        assert_eq!(len, usize::MAX);
        assert_eq!(mtls_conn_peer_cert(conn, 0, &mut name, &mut len), MTLS_INVALID);
        assert_eq!(len, usize::MAX);
        mtls_conn_free(conn);
    }

    #[test]
    fn a_client_alert_is_not_answered() {
        let (rr, out) = first_bytes(&record(21, &[2, 40]));
        assert!(mtls_result_is_peer_fault(rr as u32), "{rr:?}");
        assert!(out.is_empty(), "{out:?}");
    }
}

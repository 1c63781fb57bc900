//! rustls alone, server side: what a handshake, a resumption and a response cost the server
//! with the rustls and ring build the bridge links, without Apache and without the bridge.
//! A rustls client and a rustls server talk through in-memory buffers on one thread; only
//! the server's own calls are timed (Acceptor, into_connection, read_tls,
//! process_new_packets, reader, writer, write_tls), so the client's work is left out. The
//! server is set up the way mtls/src/config.rs sets up a vhost: the ring provider with its
//! default suites, TLS 1.2 and 1.3, the client's suite order, a resolver that checks the
//! offered signature schemes, an ALPN config, tickets sealed with AES-256-GCM as
//! mtls/src/session.rs seals them, and rustls' in-memory session cache for session ids.
//!
//! `make bench-rustls` runs it (see docs/performance.md). Arguments: `--json PATH` also
//! writes the figures there, `--iterations N` timed runs per measurement (default 300; the
//! 1 KiB response is timed 10 × N times, the 10 MiB one N / 10 times, at least 5), spread
//! over rounds that take the figures in turn.
//! Certificates and keys are made for the run with the openssl command and deleted after.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::client::{Resumption, Tls12Resumption};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::server::{Acceptor, ClientHello, ProducesTickets, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use zeroize::Zeroizing;

const HOST: &str = "a.test";
const REQUEST: &[u8] = b"GET /1k.bin HTTP/1.1\r\nHost: a.test\r\nUser-Agent: bench\r\nConnection: close\r\n\r\n";
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// Time spent in the server's calls, summed over one measured unit.
#[derive(Default)]
struct ServerTime {
    spent: Duration,
}

impl ServerTime {
    fn time<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let t = Instant::now();
        let r = f();
        self.spent += t.elapsed();
        r
    }
}

/// Gives all of `buf` to `conn` (read_tls, then process_new_packets whenever the reader
/// takes no more or all is in) and empties `buf`.
fn take_in<D>(conn: &mut rustls::ConnectionCommon<D>, buf: &mut Vec<u8>) {
    let mut rest = &buf[..];
    while !rest.is_empty() {
        conn.read_tls(&mut rest).expect("read_tls from memory");
        conn.process_new_packets().expect("the peer's records are fine");
    }
    buf.clear();
}

/// The ClientHello into the Acceptor: rustls then has the config chosen for it.
fn hello(c2s: &mut Vec<u8>) -> rustls::server::Accepted {
    let mut acceptor = Acceptor::default();
    let mut rest = &c2s[..];
    while !rest.is_empty() {
        acceptor.read_tls(&mut rest).expect("read_tls from memory");
    }
    c2s.clear();
    match acceptor.accept() {
        Ok(Some(a)) => a,
        _ => panic!("the ClientHello is one flight"),
    }
}

/// Reads what plaintext there is into `out`, up to the peer's close_notify if it came.
fn drain_plain(mut reader: rustls::Reader<'_>, out: &mut Vec<u8>) {
    let mut chunk = [0u8; 16 * KIB];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => panic!("reading plaintext: {e}"),
        }
    }
}

fn client_send(c: &mut ClientConnection, c2s: &mut Vec<u8>) {
    while c.wants_write() {
        c.write_tls(c2s).expect("write_tls into memory");
    }
}

fn client_receive(c: &mut ClientConnection, s2c: &mut Vec<u8>, plain: &mut Vec<u8>) {
    take_in(c, s2c);
    drain_plain(c.reader(), plain);
}

fn server_send(s: &mut ServerConnection, s2c: &mut Vec<u8>) {
    while s.wants_write() {
        s.write_tls(s2c).expect("write_tls into memory");
    }
}

/// The response to REQUEST: a header and 1 KiB of body, as Apache sends /1k.bin.
fn response() -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nDate: Mon, 30 Nov 2026 01:00:00 GMT\r\nServer: Apache\r\n\
         Last-Modified: Mon, 30 Nov 2026 00:00:00 GMT\r\nETag: \"400-5f0\"\r\n\
         Accept-Ranges: bytes\r\nContent-Length: {KIB}\r\nConnection: close\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    r.extend((0..KIB).map(|i| (i % 251) as u8));
    r
}

/// One connection: the handshake, the request, the 1 KiB response and close_notify. Returns
/// the server's time and how the handshake went.
fn connection(client_cfg: &Arc<ClientConfig>, server_cfg: &Arc<ServerConfig>, resp: &[u8]) -> (Duration, HandshakeKind) {
    let name = ServerName::try_from(HOST).expect("a DNS name");
    let mut client = ClientConnection::new(client_cfg.clone(), name).expect("a client connection");
    client.writer().write_all(REQUEST).expect("the request is queued");
    let (mut c2s, mut s2c, mut got, mut request) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut srv = ServerTime::default();

    client_send(&mut client, &mut c2s);
    let accepted = srv.time(|| hello(&mut c2s));
    let mut server = srv.time(|| accepted.into_connection(server_cfg.clone()).map_err(|(e, _)| e)).expect("a server connection");
    let mut responded = false;
    for _ in 0..16 {
        srv.time(|| {
            take_in(&mut server, &mut c2s);
            if !responded && !server.is_handshaking() {
                drain_plain(server.reader(), &mut request);
                if request.ends_with(b"\r\n\r\n") {
                    server.writer().write_all(resp).expect("the response is queued");
                    server.send_close_notify();
                    responded = true;
                }
            }
            server_send(&mut server, &mut s2c);
        });
        client_receive(&mut client, &mut s2c, &mut got);
        client_send(&mut client, &mut c2s);
        if responded && c2s.is_empty() {
            break;
        }
    }
    assert_eq!(request, REQUEST, "the server got the request");
    assert_eq!(got, resp, "the client got the response");
    (srv.spent, server.handshake_kind().expect("the handshake is done"))
}

/// A full TLS 1.3 connection whose server then sends `body` `n` times; one time per send
/// (writer and write_tls until all is out, into a buffer reused as a socket would be), and
/// the suite the connection agreed on.
fn encrypt(client_cfg: &Arc<ClientConfig>, server_cfg: &Arc<ServerConfig>, body: &[u8], n: usize) -> (Vec<Duration>, String) {
    let name = ServerName::try_from(HOST).expect("a DNS name");
    let mut client = ClientConnection::new(client_cfg.clone(), name).expect("a client connection");
    let (mut c2s, mut s2c, mut got) = (Vec::new(), Vec::new(), Vec::new());
    client_send(&mut client, &mut c2s);
    let accepted = hello(&mut c2s);
    let mut server = accepted.into_connection(server_cfg.clone()).map_err(|(e, _)| e).expect("a server connection");
    while server.is_handshaking() || client.is_handshaking() || !c2s.is_empty() || !s2c.is_empty() {
        server_send(&mut server, &mut s2c);
        client_receive(&mut client, &mut s2c, &mut got);
        client_send(&mut client, &mut c2s);
        take_in(&mut server, &mut c2s);
    }
    let mut wire = Vec::with_capacity(64 * KIB);
    let mut out = Vec::with_capacity(n);
    let mut sent = 0usize;
    for _ in 0..n {
        let mut srv = ServerTime::default();
        srv.time(|| {
            let mut off = 0;
            while off < body.len() {
                off += server.writer().write(&body[off..]).expect("the writer takes plaintext");
                while server.wants_write() {
                    server.write_tls(&mut wire).expect("write_tls into memory");
                    sent += wire.len();
                    wire.clear();
                }
            }
        });
        out.push(srv.spent);
    }
    assert!(sent > n * body.len(), "the server sent the records");
    let suite = server.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
    (out, suite)
}

// --------------------------------------------------------------------------
// Tickets, sealed as the bridge seals them (mtls/src/session.rs): a 16-byte key name, a
// random nonce, AES-256-GCM with the name as additional data, the keys behind a read lock.
// A copy: the crate builds only as a staticlib, which a bench cannot link against. Keep the
// two alike.

const NAME_LEN: usize = 16;

#[derive(Debug)]
struct Ticketer {
    keys: RwLock<Vec<([u8; NAME_LEN], LessSafeKey)>>,
    rng: SystemRandom,
}

impl Ticketer {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let mut name = [0u8; NAME_LEN];
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill(&mut name).expect("random bytes");
        rng.fill(&mut secret[..]).expect("random bytes");
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &secret[..]).expect("a 32-byte key"));
        Ticketer { keys: RwLock::new(vec![(name, key)]), rng }
    }
}

impl ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        300
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.read().ok()?;
        let (name, key) = keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(name), &mut out[NAME_LEN + NONCE_LEN..])
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < NAME_LEN + NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (name, rest) = cipher.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let keys = self.keys.read().ok()?;
        let (kname, key) = keys.iter().find(|(n, _)| n[..] == *name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = key.open_in_place(nonce, Aad::from(kname), &mut buf[..]).ok()?;
        Some(plain.to_vec())
    }
}

/// The one key of a vhost, given when the client can take its signature (as the bridge's
/// resolver checks the offered schemes).
#[derive(Debug)]
struct OneKey(Arc<CertifiedKey>);

impl ResolvesServerCert for OneKey {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.key.choose_scheme(hello.signature_schemes()).map(|_| self.0.clone())
    }
}

// --------------------------------------------------------------------------
// Certificates for the run

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

struct Certs {
    ca: CertificateDer<'static>,
    /// (chain, key) of the ECDSA P-256 and the RSA 2048 leaf, both for a.test
    ecdsa: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    rsa: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

/// A temp dir removed when it goes, also when a step fails (it holds private keys).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A throw-away CA (ECDSA P-256) and two leaves it issued, in a temp dir removed after.
fn make_certs() -> Certs {
    let tmp = TempDir(std::env::temp_dir().join(format!("mtls-bench-{}", std::process::id())));
    let dir = &tmp.0;
    std::fs::create_dir_all(dir).expect("a temp dir");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    openssl(dir, &[&["req", "-x509", "-nodes"][..], &ec, &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=mtls bench CA"]].concat());
    std::fs::write(dir.join("ext"), format!("subjectAltName=DNS:{HOST}\nbasicConstraints=CA:FALSE\n")).expect("written");
    for (name, newkey) in [("ecdsa", &ec[..]), ("rsa", &["-newkey", "rsa:2048"][..])] {
        openssl(dir, &[&["req", "-new", "-nodes"][..], newkey, &["-keyout", &format!("{name}.key"),
            "-out", &format!("{name}.csr"), "-subj", &format!("/CN={HOST}")]].concat());
        openssl(dir, &["x509", "-req", "-in", &format!("{name}.csr"), "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", &format!("{name}.pem")]);
    }
    let cert = |f: &str| CertificateDer::from_pem_file(dir.join(f)).expect("a PEM certificate");
    let key = |f: &str| PrivateKeyDer::from_pem_file(dir.join(f)).expect("a PEM key");
    Certs {
        ca: cert("ca.pem"),
        ecdsa: (vec![cert("ecdsa.pem")], key("ecdsa.key")),
        rsa: (vec![cert("rsa.pem")], key("rsa.key")),
    }
}

fn server_config(chain: &[CertificateDer<'static>], key: &PrivateKeyDer<'static>, ticketer: &Arc<Ticketer>) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ck = CertifiedKey::new(chain.to_vec(), any_supported_type(key).expect("a usable key"));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the versions fit the suites")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(OneKey(Arc::new(ck))));
    config.ignore_client_order = false;
    config.ticketer = ticketer.clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn client_config(ca: &CertificateDer<'static>, v13: bool, resumption: Resumption) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).expect("the CA is a trust anchor");
    let version = if v13 { &rustls::version::TLS13 } else { &rustls::version::TLS12 };
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[version])
        .expect("the version fits the suites")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = resumption;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

// --------------------------------------------------------------------------
// Figures

/// Each figure is measured in this many rounds, the figures in turn, so that a spell of
/// other load on the machine spreads over all of them instead of falling on one.
const ROUNDS: usize = 5;

/// What one figure's samples are.
enum Work {
    /// Connections (handshake, request, 1 KiB response), each timed one checked to be of
    /// this kind. The untimed ones before give a resuming client a session to resume, also
    /// when the server's cache dropped it during the other figures' rounds.
    Connections(Arc<ClientConfig>, Arc<ServerConfig>, HandshakeKind),
    /// Sends of these bytes on one established TLS 1.3 connection per round.
    Encrypt(Arc<ClientConfig>, Arc<ServerConfig>, Vec<u8>),
}

struct Figure {
    id: &'static str,
    label: String,
    work: Work,
    /// timed samples per round, after per_round / 10 + 1 untimed ones
    per_round: usize,
    /// microseconds, sorted once all rounds are done
    us: Vec<f64>,
}

impl Figure {
    fn new(id: &'static str, label: String, work: Work, samples: usize) -> Self {
        let per_round = samples.div_ceil(ROUNDS);
        Figure { id, label, work, per_round, us: Vec::new() }
    }

    /// One round's samples; the suite agreed on when the work encrypts.
    fn round(&mut self, resp: &[u8]) -> Option<String> {
        let warm = self.per_round / 10 + 1;
        match &self.work {
            Work::Connections(client, server, want) => {
                for i in 0..warm + self.per_round {
                    let (spent, kind) = connection(client, server, resp);
                    if i >= warm {
                        assert_eq!(kind, *want, "{}: connection {i}", self.id);
                        self.us.push(spent.as_secs_f64() * 1e6);
                    }
                }
                None
            }
            Work::Encrypt(client, server, body) => {
                let (spent, suite) = encrypt(client, server, body, warm + self.per_round);
                self.us.extend(spent[warm..].iter().map(|d| d.as_secs_f64() * 1e6));
                Some(suite)
            }
        }
    }

    fn finish(&mut self) {
        self.us.sort_by(f64::total_cmp);
    }

    /// The p-quantile, linear between the samples around it.
    fn quantile(&self, p: f64) -> f64 {
        let at = p * (self.us.len() - 1) as f64;
        let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
        self.us[lo] + (self.us[hi] - self.us[lo]) * (at - lo as f64)
    }

    fn json(&self) -> String {
        format!(
            "    \"{}\": {{\"label\": \"{}\", \"n\": {}, \"median_us\": {:.2}, \"q1_us\": {:.2}, \"q3_us\": {:.2}}}",
            self.id,
            self.label,
            self.us.len(),
            self.quantile(0.5),
            self.quantile(0.25),
            self.quantile(0.75)
        )
    }
}

fn main() {
    let mut json: Option<PathBuf> = None;
    let mut n = 300usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => json = Some(PathBuf::from(args.next().expect("--json PATH"))),
            "--iterations" => n = args.next().and_then(|v| v.parse().ok()).filter(|&v| v > 0).expect("--iterations N"),
            "--bench" => {} // cargo bench adds it
            other => panic!("unknown argument {other} (--json PATH, --iterations N)"),
        }
    }
    let certs = make_certs();
    let ticketer = Arc::new(Ticketer::new());
    let servers = [
        ("ECDSA P-256", server_config(&certs.ecdsa.0, &certs.ecdsa.1, &ticketer)),
        ("RSA 2048", server_config(&certs.rsa.0, &certs.rsa.1, &ticketer)),
    ];
    let resp = response();
    let mut figures = Vec::new();
    for (v13, ids) in [(true, ["full-13-ecdsa", "full-13-rsa"]), (false, ["full-12-ecdsa", "full-12-rsa"])] {
        let client = client_config(&certs.ca, v13, Resumption::disabled());
        for (id, (label, server)) in ids.into_iter().zip(&servers) {
            let version = if v13 { "1.3" } else { "1.2" };
            let work = Work::Connections(client.clone(), server.clone(), HandshakeKind::Full);
            figures.push(Figure::new(id, format!("full TLS {version} handshake, {label}, and a 1 KiB response"), work, n));
        }
    }
    let ecdsa = &servers[0].1;
    for (id, v13, tls12, label) in [
        ("resume-13-ticket", true, Tls12Resumption::SessionIdOrTickets, "TLS 1.3, ticket"),
        ("resume-12-ticket", false, Tls12Resumption::SessionIdOrTickets, "TLS 1.2, ticket"),
        ("resume-12-id", false, Tls12Resumption::SessionIdOnly, "TLS 1.2, session id"),
    ] {
        let client = client_config(&certs.ca, v13, Resumption::in_memory_sessions(256).tls12_resumption(tls12));
        let work = Work::Connections(client, ecdsa.clone(), HandshakeKind::Resumed);
        figures.push(Figure::new(id, format!("resumed handshake, {label}, ECDSA P-256, and a 1 KiB response"), work, n));
    }
    let client = client_config(&certs.ca, true, Resumption::disabled());
    let data = |len: usize| (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
    let work = Work::Encrypt(client.clone(), ecdsa.clone(), data(KIB));
    figures.push(Figure::new("encrypt-1k", "encrypting 1 KiB of response (TLS 1.3)".into(), work, 10 * n));
    let work = Work::Encrypt(client, ecdsa.clone(), data(10 * MIB));
    figures.push(Figure::new("encrypt-10m", "encrypting 10 MiB of response (TLS 1.3)".into(), work, (n / 10).max(ROUNDS)));

    let mut suite = String::new();
    for _ in 0..ROUNDS {
        for f in &mut figures {
            if let Some(s) = f.round(&resp) {
                suite = s;
            }
        }
    }
    figures.iter_mut().for_each(Figure::finish);

    println!("rustls alone, server side only, in memory (ring provider; median, quartiles, in µs):");
    for f in &figures {
        println!(
            "  {:17} {:>9.2}  ({:.2} to {:.2}, n={})  {}",
            f.id,
            f.quantile(0.5),
            f.quantile(0.25),
            f.quantile(0.75),
            f.us.len(),
            f.label
        );
    }
    println!("  (responses encrypted with {suite}, which client and server agreed on; {ROUNDS} rounds)");
    if let Some(path) = json {
        let when = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let body: Vec<String> = figures.iter().map(Figure::json).collect();
        let text = format!(
            "{{\n  \"what\": \"rustls alone, server side CPU time, in memory\",\n  \"provider\": \"ring\",\n  \
             \"suite\": \"{suite}\",\n  \"unix_time\": {when},\n  \"iterations\": {n},\n  \"rounds\": {ROUNDS},\n  \
             \"results\": {{\n{}\n  }}\n}}\n",
            body.join(",\n")
        );
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        println!("written to {}", path.display());
    }
}

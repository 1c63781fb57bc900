//! What rustls does not tell about a ClientHello it refused: the server name that was not a
//! host name. Read from the hello's raw bytes, only on that failure, by a parser that stops at
//! the first byte it lacks (it never indexes, so it cannot panic).

use rustls::pki_types::ServerName;

/// Reads forward through bytes; every read is checked against what is left.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn uint(&mut self, bytes: usize) -> Option<usize> {
        Some(self.take(bytes)?.iter().fold(0, |n, b| n << 8 | usize::from(*b)))
    }

    /// A length-prefixed vector (`bytes` of length), as TLS encodes them.
    fn vec(&mut self, bytes: usize) -> Option<&'a [u8]> {
        let n = self.uint(bytes)?;
        self.take(n)
    }
}

/// The handshake bytes in TLS records, joined: a message may span records.
fn handshake_stream(records: &[u8]) -> Vec<u8> {
    let mut r = Cursor(records);
    let mut out = Vec::new();
    while let (Some(typ), Some(_version)) = (r.uint(1), r.uint(2)) {
        let Some(len) = r.uint(2) else { break };
        if typ != 22 {
            break;
        }
        // The last record may be cut where the caller stopped keeping bytes: what there is.
        let fragment = match r.take(len) {
            Some(f) => f,
            None => std::mem::take(&mut r.0),
        };
        out.extend_from_slice(fragment);
    }
    out
}

/// The first server name of type host_name in the ClientHello carried by `records` that is
/// neither a DNS name nor an IP address: the one rustls refuses (`InvalidServerName`). As
/// rustls, it reads no entries after one of another type (it takes the rest of the list).
pub(crate) fn refused_server_name(records: &[u8]) -> Option<Vec<u8>> {
    let stream = handshake_stream(records);
    let mut hs = Cursor(&stream);
    if hs.uint(1)? != 1 {
        return None;
    }
    let len = hs.uint(3)?;
    let mut hello = Cursor(hs.take(len).unwrap_or(hs.0));
    hello.take(2 + 32)?; // legacy_version, random
    hello.vec(1)?; // legacy_session_id
    hello.vec(2)?; // cipher_suites
    hello.vec(1)?; // legacy_compression_methods
    let mut extensions = Cursor(hello.vec(2)?);
    while let Some(typ) = extensions.uint(2) {
        let data = extensions.vec(2)?;
        if typ != 0 {
            continue;
        }
        let mut names = Cursor(Cursor(data).vec(2)?);
        while let Some(name_type) = names.uint(1) {
            if name_type != 0 {
                break;
            }
            let name = names.vec(2)?;
            if ServerName::try_from(name).is_err() {
                return Some(name.to_vec());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16be(n: usize) -> [u8; 2] {
        [(n >> 8) as u8, n as u8]
    }

    /// A ClientHello whose server_name extension lists `names` (type, bytes), as records of at
    /// most `record_max` bytes each.
    fn hello(names: &[(u8, &[u8])], record_max: usize) -> Vec<u8> {
        let mut list = Vec::new();
        for (typ, name) in names {
            list.push(*typ);
            list.extend_from_slice(&u16be(name.len()));
            list.extend_from_slice(name);
        }
        let mut sni = u16be(list.len()).to_vec();
        sni.extend_from_slice(&list);
        let mut exts = Vec::new();
        exts.extend_from_slice(&[0x00, 0x17, 0x00, 0x00]); // extended_master_secret, empty
        exts.extend_from_slice(&[0x00, 0x00]);
        exts.extend_from_slice(&u16be(sni.len()));
        exts.extend_from_slice(&sni);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0]); // no session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]);
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&u16be(exts.len()));
        body.extend_from_slice(&exts);
        let mut hs = vec![1, 0];
        hs.extend_from_slice(&u16be(body.len()));
        hs.extend_from_slice(&body);
        let mut out = Vec::new();
        for chunk in hs.chunks(record_max) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&u16be(chunk.len()));
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn finds_the_name_that_is_no_host_name() {
        let h = hello(&[(0, b"a.test:443")], 16384);
        assert_eq!(refused_server_name(&h).as_deref(), Some(&b"a.test:443"[..]));
        let h = hello(&[(0, b"a\x00b\xff")], 16384);
        assert_eq!(refused_server_name(&h).as_deref(), Some(&b"a\x00b\xff"[..]));
        let h = hello(&[(0, b"")], 16384);
        assert_eq!(refused_server_name(&h).as_deref(), Some(&b""[..]));
    }

    #[test]
    fn valid_names_are_not_reported() {
        assert_eq!(refused_server_name(&hello(&[(0, b"a.test")], 16384)), None);
        assert_eq!(refused_server_name(&hello(&[(0, b"127.0.0.1")], 16384)), None);
        // the second entry is the bad one, as rustls would find it
        let h = hello(&[(0, b"a.test"), (0, b"b:1")], 16384);
        assert_eq!(refused_server_name(&h).as_deref(), Some(&b"b:1"[..]));
        // nothing is read after an entry of another type
        assert_eq!(refused_server_name(&hello(&[(1, b"x"), (0, b"b:1")], 16384)), None);
    }

    #[test]
    fn hello_over_several_records() {
        let h = hello(&[(0, b"a.test:8443")], 7);
        assert_eq!(refused_server_name(&h).as_deref(), Some(&b"a.test:8443"[..]));
    }

    #[test]
    fn cut_or_garbled_bytes_give_none_without_panic() {
        let h = hello(&[(0, b"a.test:443")], 16384);
        for cut in 0..h.len() {
            let found = refused_server_name(&h[..cut]);
            assert!(found.is_none() || found.as_deref() == Some(&b"a.test:443"[..]));
        }
        let mut seed = 0x2545_f491u32;
        for i in 0..h.len() {
            for _ in 0..16 {
                let mut g = h.clone();
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                g[i] = seed as u8;
                let _ = refused_server_name(&g);
            }
        }
        assert_eq!(refused_server_name(&[]), None);
        assert_eq!(refused_server_name(&[22, 3, 1, 0xff, 0xff, 1]), None);
    }
}

//! The key log (SSLKEYLOGFILE): every connection's secrets, in the NSS key log format that
//! Wireshark reads, appended to a file C opened. Which file, whether at all, and who may read
//! it is C's business; this only formats and writes.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::raw::c_int;
use std::sync::Arc;

use rustls::KeyLog;
use zeroize::Zeroizing;

use crate::result::mtls_result::{self, *};
use crate::{ffi_guard, try_mut};

/// Writes each secret as one line to a file opened for appending.
#[derive(Debug)]
pub(crate) struct FileKeyLog {
    file: File,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(line: &mut Vec<u8>, bytes: &[u8]) {
    for b in bytes {
        line.push(HEX[usize::from(b >> 4)]);
        line.push(HEX[usize::from(b & 0xf)]);
    }
}

/// `LABEL <client random> <secret>\n`, both in lower-case hex, in a buffer zeroed when dropped.
fn nss_line(label: &str, client_random: &[u8], secret: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut line = Zeroizing::new(Vec::with_capacity(label.len() + 3 + 2 * (client_random.len() + secret.len())));
    line.extend_from_slice(label.as_bytes());
    line.push(b' ');
    push_hex(&mut line, client_random);
    line.push(b' ');
    push_hex(&mut line, secret);
    line.push(b'\n');
    line
}

impl KeyLog for FileKeyLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = nss_line(label, client_random, secret);
        // One write() per line: on a file opened with O_APPEND it lands whole at the end,
        // however many processes and threads write at once. A line write_all() finished in
        // a second call could be split by another's. A failure is dropped: rustls has no way
        // to hear of it, and the connection must not suffer for a debugging aid.
        loop {
            match (&self.file).write(&line) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                _ => break,
            }
        }
    }
}

/// Where the secrets of the connections made with a config go. Opaque. Shared by the configs
/// it is given to, which keep their own reference; C frees its own handle once.
pub struct mtls_keylog {
    pub(crate) inner: Arc<FileKeyLog>,
}

/// A key log writing to `fd`, an open descriptor of a file opened for writing with O_APPEND
/// (each line goes out in one write(), whole at the file's end even with several processes
/// and threads writing). This call takes `fd` over, also when it fails (but for a negative
/// `fd`): it is closed when the handle and every config given the log are freed, never by
/// C. On MTLS_OK, `*out` is a new handle C owns (mtls_keylog_free). MTLS_INVALID: `fd` is
/// negative (and nothing was taken).
///
/// Each line is `LABEL client_random secret` in hex (the NSS key log format): CLIENT_RANDOM for
/// TLS 1.2, and for TLS 1.3 CLIENT_HANDSHAKE_TRAFFIC_SECRET, SERVER_HANDSHAKE_TRAFFIC_SECRET,
/// CLIENT_TRAFFIC_SECRET_0, SERVER_TRAFFIC_SECRET_0 and EXPORTER_SECRET, plus, on a server's
/// resumption (and a client's early data), CLIENT_EARLY_TRAFFIC_SECRET. Write errors are
/// ignored.
#[no_mangle]
pub extern "C" fn mtls_keylog_new(fd: c_int, out: *mut *const mtls_keylog) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        if fd < 0 {
            return MTLS_INVALID;
        }
        // SAFETY: mtls.h: `fd` is an open descriptor that C gives over for good and never
        // closes or uses again, so this is its only owner. Taken before anything can fail,
        // so that a failure closes it too.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let out = try_mut!(out);
        *out = Box::into_raw(Box::new(mtls_keylog { inner: Arc::new(FileKeyLog { file }) }));
        MTLS_OK
    })
}

/// Frees a handle; configs given the log keep it (and its file) open. NULL is allowed, twice
/// is not.
#[no_mangle]
pub extern "C" fn mtls_keylog_free(k: *const mtls_keylog) {
    ffi_guard!((), {
        // SAFETY: mtls.h: `k` is NULL or comes from mtls_keylog_new (Box::into_raw), and C frees
        // it once; configs hold their own Arc of the log, not this box.
        unsafe { crate::free_handle(k) }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;
    use std::path::PathBuf;

    #[test]
    fn a_line_is_the_label_and_both_values_in_hex() {
        let line = nss_line("CLIENT_RANDOM", &[0x00, 0xab, 0x7f], &[0xff, 0x01]);
        assert_eq!(line.as_slice(), b"CLIENT_RANDOM 00ab7f ff01\n");
    }

    #[test]
    fn a_negative_descriptor_is_refused_and_out_left_alone() {
        let mut out = std::ptr::null();
        assert_eq!(mtls_keylog_new(-1, &mut out), MTLS_INVALID);
        assert!(out.is_null());
        mtls_keylog_free(std::ptr::null());
    }

    #[test]
    fn the_descriptor_is_closed_when_the_call_fails() {
        let path = std::env::temp_dir().join(format!("mtls-keylog-{}-fails", std::process::id()));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("temp file");
        assert_ne!(mtls_keylog_new(file.into_raw_fd(), std::ptr::null_mut()), MTLS_OK);
        // by its file, not its number: other tests open and close descriptors meanwhile
        let still_open = std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .any(|target| target == path);
        let _ = std::fs::remove_file(&path);
        assert!(!still_open);
    }

    /// A fresh file under the temp dir, and a key log appending to it.
    pub(crate) fn temp_keylog(name: &str) -> (PathBuf, *const mtls_keylog) {
        let path = std::env::temp_dir().join(format!("mtls-keylog-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("temp file");
        let mut k = std::ptr::null();
        assert_eq!(mtls_keylog_new(file.into_raw_fd(), &mut k), MTLS_OK);
        (path, k)
    }

    #[test]
    fn lines_from_many_threads_arrive_whole() {
        let (path, k) = temp_keylog("threads");
        // SAFETY: `k` is a live handle from mtls_keylog_new, freed below after the threads.
        let log = unsafe { &*k }.inner.clone();
        mtls_keylog_free(k);
        let secret = [0x5a; 48];
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let log = log.clone();
                s.spawn(move || {
                    for _ in 0..200 {
                        log.log("CLIENT_RANDOM", &[t; 32], &secret);
                    }
                });
            }
        });
        drop(log);
        let text = std::fs::read_to_string(&path).expect("the log");
        std::fs::remove_file(&path).expect("removed");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8 * 200);
        for l in lines {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!((f.len(), f[0], f[1].len(), f[2]), (3, "CLIENT_RANDOM", 64, "5a".repeat(48).as_str()), "{l}");
        }
    }
}

//! Session resumption. Server-side session state (TLS 1.2 session ids, TLS 1.3 stateful
//! tickets) goes through C callbacks, so Apache's socache providers hold it for all processes
//! and servers. Tickets are sealed with keys the C side gives and rotates, so every process
//! (and every server sharing them) can open every other's tickets.

use std::cell::Cell;
use std::os::raw::{c_int, c_void};
use std::ptr;
use std::sync::{Arc, RwLock};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::{ProducesTickets, StoresServerSessions};
use zeroize::Zeroizing;

use crate::result::mtls_result::{self, *};
use crate::{ffi_guard, slice_from, try_ref};

/// Looks a session up by `key` (`key_len` bytes). Found: copy it into `buf` (`buf_len` bytes),
/// set `*out_len` and return 0; not found, or larger than `buf_len`: return non-zero. The
/// session callbacks run inside mtls_conn_start and mtls_conn_process, on the thread making
/// that call, with the userdata given to mtls_conn_set_userdata; what they get is borrowed for
/// the callback only.
pub type mtls_session_get_cb = extern "C" fn(
    userdata: *mut c_void,
    key: *const u8,
    key_len: usize,
    buf: *mut u8,
    buf_len: usize,
    out_len: *mut usize,
) -> c_int;
/// Stores session `val` (`val_len` bytes) under `key` (`key_len` bytes), both to be copied; 0
/// when stored. Runs as mtls_session_get_cb does.
pub type mtls_session_put_cb =
    extern "C" fn(userdata: *mut c_void, key: *const u8, key_len: usize, val: *const u8, val_len: usize) -> c_int;
/// Removes the session under `key` (`key_len` bytes): TLS 1.3 stateful tickets are single use.
/// Runs as mtls_session_get_cb does.
pub type mtls_session_remove_cb = extern "C" fn(userdata: *mut c_void, key: *const u8, key_len: usize);

/// Largest session value stored, and so the buffer every look-up offers: a session holds the
/// client's certificate chain, which can pass 8 KiB, and Apache's socache providers refuse
/// (and log at error) a value larger than the buffer they are given.
const SESSION_MAX: usize = 64 * 1024;

thread_local! {
    /// The connection's userdata while rustls may call the store: rustls' store API has no
    /// per-connection argument, and its calls happen synchronously inside ours.
    static USERDATA: Cell<*mut c_void> = const { Cell::new(ptr::null_mut()) };
}

/// Puts the thread's previous userdata back when dropped.
struct RestoreUserdata(*mut c_void);

impl Drop for RestoreUserdata {
    fn drop(&mut self) {
        // try_with: never a panic in a drop, not even while the thread ends.
        let _ = USERDATA.try_with(|u| u.set(self.0));
    }
}

/// Runs `f` with `userdata` visible to the store callbacks. The previous value comes back
/// afterwards also when `f` panics: `ffi_guard!` catches the panic further out and the thread
/// goes on serving other connections, which must never find this one's pointer.
pub(crate) fn with_userdata<R>(userdata: *mut c_void, f: impl FnOnce() -> R) -> R {
    let _restore = RestoreUserdata(USERDATA.with(|u| u.replace(userdata)));
    f()
}

#[cfg(test)]
mod userdata_tests {
    use super::*;

    fn current() -> *mut c_void {
        USERDATA.with(|u| u.get())
    }

    #[test]
    fn userdata_is_restored_after_a_caught_panic() {
        let (mut a, mut b) = (1u8, 2u8);
        let (pa, pb) = (&mut a as *mut u8 as *mut c_void, &mut b as *mut u8 as *mut c_void);
        let r = with_userdata(pa, || {
            assert_eq!(current(), pa);
            let caught: mtls_result = ffi_guard!(MTLS_PANIC, {
                with_userdata(pb, || {
                    assert_eq!(current(), pb);
                    panic!("a bug inside rustls or the bridge");
                })
            });
            assert_eq!(caught, MTLS_PANIC);
            assert_eq!(current(), pa);
            7
        });
        assert_eq!(r, 7);
        assert!(current().is_null());
    }
}

#[derive(Debug)]
pub(crate) struct CallbackStore {
    pub(crate) get: mtls_session_get_cb,
    pub(crate) put: mtls_session_put_cb,
    pub(crate) remove: mtls_session_remove_cb,
}

impl StoresServerSessions for CallbackStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let ud = USERDATA.with(|u| u.get());
        // A larger one could never be fetched again: not kept, that session only does not
        // resume.
        value.len() <= SESSION_MAX
            && !ud.is_null()
            && (self.put)(ud, key.as_ptr(), key.len(), value.as_ptr(), value.len()) == 0
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let ud = USERDATA.with(|u| u.get());
        if ud.is_null() {
            return None;
        }
        let mut buf = vec![0u8; SESSION_MAX];
        let mut len = 0usize;
        if (self.get)(ud, key.as_ptr(), key.len(), buf.as_mut_ptr(), buf.len(), &mut len) != 0 || len > buf.len() {
            return None;
        }
        buf.truncate(len);
        Some(buf)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let v = self.get(key)?;
        let ud = USERDATA.with(|u| u.get());
        (self.remove)(ud, key.as_ptr(), key.len());
        Some(v)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// Bytes of one ticket key as the C side hands it over: a 16-byte name, a 32-byte AES key.
pub const MTLS_TICKET_KEY_LEN: usize = 48;
const NAME_LEN: usize = 16;
const TAG_LEN: usize = 16;

struct TicketKey {
    name: [u8; NAME_LEN],
    key: LessSafeKey,
}

/// Seals tickets with the first key, opens them with any. Cheap to swap keys under the lock.
pub(crate) struct Ticketer {
    keys: RwLock<Vec<TicketKey>>,
    lifetime: u32,
    rng: SystemRandom,
}

impl std::fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticketer").field("lifetime", &self.lifetime).finish()
    }
}

impl ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.read().ok()?;
        let k = keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&k.name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = k
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&k.name),
                &mut out[NAME_LEN + NONCE_LEN..],
            )
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < NAME_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (name, rest) = cipher.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let keys = self.keys.read().ok()?;
        let k = keys.iter().find(|k| k.name[..] == *name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = k.key.open_in_place(nonce, Aad::from(&k.name), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

/// Session tickets: sealed (AES-256-GCM) with the first of the keys given, opened with any.
/// Opaque. Shared by the configs it is given to, which keep their own reference; C frees its
/// own handle once.
pub struct mtls_ticketer {
    pub(crate) inner: Arc<Ticketer>,
}

/// A ticketer without keys (it seals nothing until mtls_ticketer_set_keys); tickets claim
/// `lifetime_secs` of validity.
#[no_mangle]
pub extern "C" fn mtls_ticketer_new(lifetime_secs: u32) -> *mut mtls_ticketer {
    ffi_guard!(ptr::null_mut(), {
        Box::into_raw(Box::new(mtls_ticketer {
            inner: Arc::new(Ticketer {
                keys: RwLock::new(Vec::new()),
                lifetime: lifetime_secs,
                rng: SystemRandom::new(),
            }),
        }))
    })
}

/// Replaces the keys: `n` keys of MTLS_TICKET_KEY_LEN bytes each at `keys`, the first one
/// seals, all open. The ticketer copies them: the caller may zero its copy afterwards.
#[no_mangle]
pub extern "C" fn mtls_ticketer_set_keys(t: *const mtls_ticketer, keys: *const u8, n: usize) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let t = try_ref!(t);
        let Some(bytes) = slice_from(keys, n * MTLS_TICKET_KEY_LEN) else {
            return MTLS_NULL_PARAM;
        };
        let mut parsed = Vec::with_capacity(n);
        for chunk in bytes.chunks_exact(MTLS_TICKET_KEY_LEN) {
            let secret = Zeroizing::new(chunk[NAME_LEN..].to_vec());
            let Ok(unbound) = UnboundKey::new(&AES_256_GCM, &secret) else {
                return MTLS_INVALID;
            };
            let mut name = [0u8; NAME_LEN];
            name.copy_from_slice(&chunk[..NAME_LEN]);
            parsed.push(TicketKey { name, key: LessSafeKey::new(unbound) });
        }
        match t.inner.keys.write() {
            Ok(mut k) => {
                *k = parsed;
                MTLS_OK
            }
            Err(_) => MTLS_ERROR,
        }
    })
}

/// Frees a handle; configs that use the ticketer keep it alive. NULL is allowed.
#[no_mangle]
pub extern "C" fn mtls_ticketer_free(t: *mut mtls_ticketer) {
    ffi_guard!((), {
        if !t.is_null() {
            // SAFETY: mtls.h: `t` comes from mtls_ticketer_new (Box::into_raw) and C frees it
            // once; configs hold their own Arc of the ticketer, not this box.
            drop(unsafe { Box::from_raw(t) });
        }
    })
}

//! Session resumption. Server-side session state (TLS 1.2 session ids, TLS 1.3 stateful
//! tickets) goes through C callbacks, so Apache's socache providers hold it for all processes
//! and servers. Tickets are sealed with keys the C side gives and rotates, so every process
//! (and every server sharing them) can open every other's tickets.

use std::cell::Cell;
use std::os::raw::{c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::{ProducesTickets, StoresServerSessions};
use zeroize::{Zeroize, Zeroizing};

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

/// The keys in use and the generation the C side gave them; replaced whole, never edited.
struct KeySet {
    generation: u32,
    keys: Vec<TicketKey>,
}

/// Seals tickets with the first key, opens them with any. (`benches/rustls_alone.rs` times a
/// copy of the sealing: change both.) Keys change only through
/// `install`, which takes a newer generation or nothing, so threads that install in any
/// order end with the newest keys.
pub(crate) struct Ticketer {
    keys: RwLock<KeySet>,
    /// `keys.generation`, readable without the lock; stored under the write lock, after the
    /// keys, so whoever reads a generation finds its keys installed.
    generation: AtomicU32,
    lifetime: u32,
    rng: SystemRandom,
}

impl std::fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticketer")
            .field("lifetime", &self.lifetime)
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish()
    }
}

impl Ticketer {
    fn new(lifetime: u32) -> Self {
        Ticketer {
            keys: RwLock::new(KeySet { generation: 0, keys: Vec::new() }),
            generation: AtomicU32::new(0),
            lifetime,
            rng: SystemRandom::new(),
        }
    }

    /// Parses whole keys (a multiple of MTLS_TICKET_KEY_LEN bytes, at least one) and makes
    /// them current when `generation` is newer than the installed one. A key whose AES part
    /// is all zeros is refused with the whole set: that is wiped or never-written memory,
    /// and anyone could seal tickets with it.
    // `is_multiple_of` needs Rust 1.87; the bridge builds with cargo 1.78 and up (deps.sh).
    #[allow(clippy::manual_is_multiple_of)]
    fn install(&self, bytes: &[u8], generation: u32) -> mtls_result {
        if bytes.is_empty() || bytes.len() % MTLS_TICKET_KEY_LEN != 0 || generation == 0 {
            return MTLS_INVALID;
        }
        let mut parsed = Vec::with_capacity(bytes.len() / MTLS_TICKET_KEY_LEN);
        for chunk in bytes.chunks_exact(MTLS_TICKET_KEY_LEN) {
            let (name, secret) = chunk.split_at(NAME_LEN);
            if secret.iter().all(|&b| b == 0) {
                return MTLS_INVALID;
            }
            // ring copies the secret into its key schedule: no copy of ours to zero.
            let Ok(unbound) = UnboundKey::new(&AES_256_GCM, secret) else {
                return MTLS_INVALID;
            };
            let mut n = [0u8; NAME_LEN];
            n.copy_from_slice(name);
            parsed.push(TicketKey { name: n, key: LessSafeKey::new(unbound) });
        }
        let Ok(mut set) = self.keys.write() else {
            return MTLS_ERROR;
        };
        if generation <= set.generation {
            return MTLS_STALE;
        }
        *set = KeySet { generation, keys: parsed };
        self.generation.store(generation, Ordering::Release);
        MTLS_OK
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
        let set = self.keys.read().ok()?;
        let k = set.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&k.name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let sealed = k.key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&k.name),
            &mut out[NAME_LEN + NONCE_LEN..],
        );
        let Ok(tag) = sealed else {
            out.zeroize(); // still the session state in the clear
            return None;
        };
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < NAME_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (name, rest) = cipher.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let set = self.keys.read().ok()?;
        let k = set.keys.iter().find(|k| k.name[..] == *name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        // opened in place: our copy holds the session secrets until it is zeroed on drop
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = k.key.open_in_place(nonce, Aad::from(&k.name), &mut buf[..]).ok()?;
        Some(plain.to_vec())
    }
}

/// Session tickets: sealed (AES-256-GCM) with the first of the keys given, opened with any.
/// Opaque. Shared by the configs it is given to, which keep their own reference; C frees its
/// own handle once.
pub struct mtls_ticketer {
    pub(crate) inner: Arc<Ticketer>,
}

/// A ticketer without keys (generation 0: it seals nothing until mtls_ticketer_set_keys);
/// tickets claim `lifetime_secs` of validity.
#[no_mangle]
pub extern "C" fn mtls_ticketer_new(lifetime_secs: u32) -> *mut mtls_ticketer {
    ffi_guard!(ptr::null_mut(), {
        Box::into_raw(Box::new(mtls_ticketer { inner: Arc::new(Ticketer::new(lifetime_secs)) }))
    })
}

/// Installs `n` keys of MTLS_TICKET_KEY_LEN bytes each (the first one seals, all open) as
/// `generation`, atomically, if that is newer than the installed generation; otherwise
/// MTLS_STALE and nothing changes. MTLS_INVALID for n == 0, generation 0, a byte count that
/// overflows, or a key whose AES part is all zeros. The caller may zero its copy afterwards.
#[no_mangle]
pub extern "C" fn mtls_ticketer_set_keys(
    t: *const mtls_ticketer,
    keys: *const u8,
    n: usize,
    generation: u32,
) -> mtls_result {
    ffi_guard!(MTLS_PANIC, {
        let t = try_ref!(t);
        let Some(len) = n.checked_mul(MTLS_TICKET_KEY_LEN).filter(|&len| len > 0) else {
            return MTLS_INVALID;
        };
        let Some(bytes) = slice_from(keys, len) else {
            return MTLS_NULL_PARAM;
        };
        t.inner.install(bytes, generation)
    })
}

/// The generation of the installed keys, 0 for none (or NULL): a lock-free look, so a caller
/// can skip mtls_ticketer_set_keys when it has nothing newer.
#[no_mangle]
pub extern "C" fn mtls_ticketer_generation(t: *const mtls_ticketer) -> u32 {
    ffi_guard!(0, {
        // SAFETY: C passes NULL or a live handle from mtls_ticketer_new (mtls.h); `as_ref`
        // handles NULL, and we only read through the shared reference for this call.
        match unsafe { t.as_ref() } {
            Some(t) => t.inner.generation.load(Ordering::Acquire),
            None => 0,
        }
    })
}

/// Frees a handle; configs that use the ticketer keep it alive. NULL is allowed.
#[no_mangle]
pub extern "C" fn mtls_ticketer_free(t: *mut mtls_ticketer) {
    ffi_guard!((), {
        // SAFETY: mtls.h: `t` is NULL or comes from mtls_ticketer_new (Box::into_raw), and C frees
        // it once; configs hold their own Arc of the ticketer, not this box.
        unsafe { crate::free_handle(t) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    /// One key: name and AES key filled with `seed` (not 0).
    fn key(seed: u8) -> [u8; MTLS_TICKET_KEY_LEN] {
        [seed; MTLS_TICKET_KEY_LEN]
    }

    fn keys(seeds: &[u8]) -> Vec<u8> {
        seeds.iter().flat_map(|&s| key(s)).collect()
    }

    fn set(t: *const mtls_ticketer, seeds: &[u8], generation: u32) -> mtls_result {
        let k = keys(seeds);
        mtls_ticketer_set_keys(t, k.as_ptr(), seeds.len(), generation)
    }

    /// The name of the key the ticketer seals with now.
    fn sealing_name(t: *const mtls_ticketer) -> Option<u8> {
        // SAFETY: the tests pass handles from mtls_ticketer_new that they have not freed.
        let t = unsafe { &*t };
        t.inner.encrypt(b"session").map(|c| c[0])
    }

    #[test]
    fn installs_newer_generations_only() {
        let t = mtls_ticketer_new(300);
        assert_eq!(mtls_ticketer_generation(t), 0);
        assert_eq!(sealing_name(t), None, "sealed without keys");
        assert_eq!(set(t, &[2, 1], 2), MTLS_OK);
        assert_eq!(set(t, &[1], 1), MTLS_STALE, "an older generation replaced newer keys");
        assert_eq!(set(t, &[3], 2), MTLS_STALE, "the same generation installed twice");
        assert_eq!(mtls_ticketer_generation(t), 2);
        assert_eq!(sealing_name(t), Some(2));
        assert_eq!(set(t, &[3, 2], 7), MTLS_OK);
        assert_eq!((mtls_ticketer_generation(t), sealing_name(t)), (7, Some(3)));
        mtls_ticketer_free(t);
    }

    #[test]
    fn refuses_zero_keys() {
        let t = mtls_ticketer_new(300);
        assert_eq!(set(t, &[5], 1), MTLS_OK);
        // a wiped slot behind a good key, as shared memory looks after a wipe
        let mut k = keys(&[6, 6]);
        k[MTLS_TICKET_KEY_LEN..].fill(0);
        assert_eq!(mtls_ticketer_set_keys(t, k.as_ptr(), 2, 2), MTLS_INVALID);
        // a zero AES key under a non-zero name is as bad
        let mut k = key(7);
        k[NAME_LEN..].fill(0);
        assert_eq!(mtls_ticketer_set_keys(t, k.as_ptr(), 1, 3), MTLS_INVALID);
        assert_eq!((mtls_ticketer_generation(t), sealing_name(t)), (1, Some(5)));
        mtls_ticketer_free(t);
    }

    #[test]
    fn refuses_bad_arguments() {
        let t = mtls_ticketer_new(300);
        let k = key(1);
        let huge = usize::MAX / MTLS_TICKET_KEY_LEN + 2; // n * 48 wraps around
        assert_eq!(mtls_ticketer_set_keys(t, k.as_ptr(), huge, 1), MTLS_INVALID);
        assert_eq!(mtls_ticketer_set_keys(t, k.as_ptr(), 0, 1), MTLS_INVALID);
        assert_eq!(mtls_ticketer_set_keys(t, k.as_ptr(), 1, 0), MTLS_INVALID);
        assert_eq!(mtls_ticketer_set_keys(t, ptr::null(), 1, 1), MTLS_NULL_PARAM);
        assert_eq!(mtls_ticketer_set_keys(ptr::null(), k.as_ptr(), 1, 1), MTLS_NULL_PARAM);
        assert_eq!(mtls_ticketer_generation(ptr::null()), 0);
        assert_eq!(mtls_ticketer_generation(t), 0);
        mtls_ticketer_free(t);
    }

    #[test]
    fn opens_with_older_keys_until_they_go() {
        let t = mtls_ticketer_new(300);
        // SAFETY: as in sealing_name.
        let inner = unsafe { &*t }.inner.clone();
        assert_eq!(set(t, &[1], 1), MTLS_OK);
        let ticket = inner.encrypt(b"state").unwrap();
        assert_eq!(set(t, &[2, 1], 2), MTLS_OK);
        assert_eq!(inner.decrypt(&ticket).as_deref(), Some(&b"state"[..]));
        let mut forged = ticket.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(inner.decrypt(&forged), None);
        assert_eq!(set(t, &[3, 2], 3), MTLS_OK);
        assert_eq!(inner.decrypt(&ticket), None, "a retired key still opened a ticket");
        mtls_ticketer_free(t);
    }

    /// Threads installing generations 1..=64 in any order (as worker threads of one process
    /// copying from shared memory could): the newest wins, and no reader ever sees the
    /// generation go back or keys that do not belong to it.
    #[test]
    fn concurrent_installs_end_with_the_newest() {
        struct Handle(*mut mtls_ticketer);
        // SAFETY: the ticketer behind the handle is Sync (RwLock and atomics); the pointer is
        // only shared for the scope below, which ends before mtls_ticketer_free.
        unsafe impl Sync for Handle {}
        let h = Handle(mtls_ticketer_new(300));
        thread::scope(|s| {
            for start in 0..4u32 {
                let h = &h;
                let mut gens: Vec<u32> = (1..=16u32).map(|i| i * 4 - start).collect();
                if start % 2 == 1 {
                    gens.reverse();
                }
                s.spawn(move || {
                    for g in gens {
                        let r = set(h.0, &[g as u8, (g + 100) as u8], g);
                        assert!(r == MTLS_OK || r == MTLS_STALE, "{r:?}");
                    }
                });
            }
            let h = &h;
            s.spawn(move || {
                let mut last = 0;
                for _ in 0..2000 {
                    let g = mtls_ticketer_generation(h.0);
                    assert!(g >= last, "generation went back from {last} to {g}");
                    if g > 0 {
                        let name = sealing_name(h.0).unwrap() as u32;
                        assert!(name >= g, "generation {g} seals with the key of {name}");
                    }
                    last = g;
                }
            });
        });
        assert_eq!((mtls_ticketer_generation(h.0), sealing_name(h.0)), (64, Some(64)));
        mtls_ticketer_free(h.0);
    }
}

/* tls_ticket.c: session ticket keys. The parent puts the first keys into shared memory; a
 * mod_watchdog task in every child rotates them there when the current key is older than
 * TLSSessionTicketKeyRotation (under a mutex, so one child does it) and, with
 * `TLSSessionTickets shared`, brings in the fleet's keys from the session cache. Every
 * process installs the keys into its ticketer when their generation is newer. Older keys
 * stay for opening tickets, so rotation loses no resumption. With a key file the keys are
 * the admin's, installed once and rotated by a graceful restart.
 *
 * Who writes what:
 * - tls_tickets_t (pconf): the parent, at check_config and post_config; read-only in the
 *   children, except `wd`, which belongs to the child's watchdog thread alone.
 * - tls_ticket_shm_t (shared memory, one per configuration cycle): under the mutex, the
 *   parent at post_config (before any child exists), then only the children's watchdog
 *   threads. The parent retires it when pconf goes (a restart), without the mutex: see
 *   retire_shared_keys.
 * - the ticketer (the bridge's, one per process): its own lock, and it takes a generation
 *   only when newer than the one it has. Fed by the parent at post_config (children inherit
 *   it), by the watchdog thread after its work, and by worker threads before a handshake
 *   when shared memory is ahead (a key another child just made). No handshake ever waits
 *   for the session cache or for a rotation. */
#include <httpd.h>
#include <string.h>
#include <apr_atomic.h>
#include <apr_optional.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <http_log.h>
#include <mod_watchdog.h>
#include <util_mutex.h>

#include "tls_cache.h"
#include "tls_log.h"
#include "tls_status.h"
#include "tls_ticket.h"

APLOG_USE_MODULE(tls);

#define TLS_TICKET_KEYS      3                   /* current and two previous */
#define TLS_TICKET_SLOTS     (TLS_TICKET_KEYS + 1) /* shared: plus the next one, published early */
#define TLS_TICKET_MUTEX     "tls-ticket-keys"
#define TLS_TICKET_CACHE_ID  "mod_tls:ticket-keys"
#define TLS_TICKET_POLL_MAX  apr_time_from_sec(5) /* shared: how often a child asks the cache */
#define TLS_TICKET_TICK_MAX  apr_time_from_sec(1) /* how often the watchdog task looks */
#define TLS_TICKET_TICK_MIN  AP_WD_TM_SLICE      /* mod_watchdog's resolution */
#define TLS_TICKET_STAMP     8                   /* rotation time in front of cached keys */
#define TLS_TICKET_NAME_LEN  16                  /* a key starts with its name, then AES */
#define TLS_TICKET_WATCHDOG  "mod_tls-ticket-keys"

typedef struct {
    apr_uint32_t generation;           /* changes with every new set of keys */
    apr_uint32_t retired;              /* set once, by the parent at a restart: stale memory */
    apr_uint32_t nkeys;
    apr_uint32_t local;                /* shared mode: keys made here, the cache unreachable */
    apr_time_t rotated_at;             /* when the current key became current */
    /* current first; in shared mode the next key comes before it (see sync_cache) */
    unsigned char keys[TLS_TICKET_SLOTS][MTLS_TICKET_KEY_LEN];
} tls_ticket_shm_t;

/* The watchdog thread's own state: one thread per child reads and writes it, nobody else. */
typedef struct {
    apr_time_t next_poll;              /* shared mode: when to ask the cache again */
    int cache_ok;                      /* shared mode: the last poll reached the cache */
} tls_ticket_wd_t;

struct tls_tickets {
    int mode;                          /* tls_tickets_e */
    apr_interval_time_t rotation;      /* 0: never (key file) */
    apr_interval_time_t lifetime;
    apr_interval_time_t poll;          /* shared mode: half a rotation, at most 5 s */
    apr_interval_time_t tick;          /* the watchdog task's interval */
    mtls_ticketer *ticketer;           /* in every config; each process installs its keys */
    tls_ticket_shm_t *shared;          /* this server's processes; NULL with a key file */
    apr_global_mutex_t *mutex;         /* guards `shared`; NULL with a key file */
    tls_cache_t *cache;
    server_rec *s;
    tls_ticket_wd_t wd;                /* the watchdog thread's */
};

static APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *wd_get_instance;
static APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *wd_register_callback;

void tls_ticket_register_mutex(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, TLS_TICKET_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

static apr_status_t ticketer_cleanup(void *data)
{
    mtls_ticketer_free(data);
    return APR_SUCCESS;
}

/* pconf cleanup in the parent, at a restart or stop. The children of this generation may
 * still map the memory (a graceful restart lets them finish their connections) and take its
 * mutex, which the parent does not: so the memory is marked retired before anything is
 * zeroed, and whoever copies keys checks the mark after copying (install_shared). The bridge
 * refuses all-zero keys as well. Registered after the memory is allocated, so it runs before
 * the memory is unmapped. */
static apr_status_t retire_shared_keys(void *data)
{
    tls_tickets_t *tk = data;
    tls_ticket_shm_t *sh = tk->shared;

    apr_atomic_set32(&sh->retired, 1);
    /* The mark is visible before any zero is, also where stores may be reordered (the
     * readers' fence in install_shared pairs with this one). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    sh->nkeys = 0;
    explicit_bzero(sh->keys, sizeof(sh->keys));
    tk->shared = NULL;
    return APR_SUCCESS;
}

/* Whether a key's AES part is all zeros: wiped memory, or a file of zeros. */
static int key_is_zero(const unsigned char *key)
{
    unsigned char acc = 0;
    int i;

    for (i = TLS_TICKET_NAME_LEN; i < MTLS_TICKET_KEY_LEN; ++i) {
        acc |= key[i];
    }
    return !acc;
}

/* The key file's keys go straight into the ticketer; no copy stays in memory. */
static const char *read_key_file(tls_tickets_t *tk, const tls_global_t *g, apr_pool_t *ptemp)
{
    const char *path = g->ticket_key_file, *err = NULL;
    unsigned char buf[TLS_TICKET_KEYS * MTLS_TICKET_KEY_LEN + 1];
    apr_size_t len = 0, i;
    apr_file_t *f;
    apr_status_t rv;
    char ebuf[256];

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, ptemp);
    if (rv == APR_SUCCESS) {
        rv = apr_file_read_full(f, buf, sizeof(buf), &len);
        apr_file_close(f);
        rv = APR_STATUS_IS_EOF(rv) ? APR_SUCCESS : rv;
    }
    if (rv != APR_SUCCESS) {
        err = apr_psprintf(ptemp, "%s:%u: TLSSessionTicketKeyFile: cannot read '%s' (%s)",
                           g->ticket_key_where.file, g->ticket_key_where.line, path,
                           apr_strerror(rv, ebuf, sizeof(ebuf)));
    }
    else if (len == 0 || len % MTLS_TICKET_KEY_LEN
             || len > TLS_TICKET_KEYS * MTLS_TICKET_KEY_LEN) {
        err = apr_psprintf(ptemp, "%s:%u: TLSSessionTicketKeyFile: '%s' has %" APR_SIZE_T_FMT
                           " bytes; it must hold 1 to %d keys of %d random bytes each, the "
                           "current one first (make one with: openssl rand %d > '%s')",
                           g->ticket_key_where.file, g->ticket_key_where.line, path, len,
                           TLS_TICKET_KEYS, MTLS_TICKET_KEY_LEN, MTLS_TICKET_KEY_LEN, path);
    }
    for (i = 0; !err && i < len / MTLS_TICKET_KEY_LEN; ++i) {
        if (key_is_zero(buf + i * MTLS_TICKET_KEY_LEN)) {
            err = apr_psprintf(ptemp, "%s:%u: TLSSessionTicketKeyFile: key %" APR_SIZE_T_FMT
                               " in '%s' is zeros where its random bytes should be (make "
                               "keys with: openssl rand %d)", g->ticket_key_where.file,
                               g->ticket_key_where.line, i + 1, path, MTLS_TICKET_KEY_LEN);
        }
    }
    if (!err && mtls_ticketer_set_keys(tk->ticketer, buf, len / MTLS_TICKET_KEY_LEN, 1)
                != MTLS_OK) {
        err = apr_psprintf(ptemp, "%s:%u: TLSSessionTicketKeyFile: the keys in '%s' were "
                           "refused", g->ticket_key_where.file, g->ticket_key_where.line, path);
    }
    explicit_bzero(buf, sizeof(buf));
    return err;
}

const char *tls_ticket_create(tls_global_t *g, apr_pool_t *pconf, apr_pool_t *ptemp)
{
    tls_tickets_t *tk;
    const char *err;

    g->ticket_keys = NULL;
    if (tls_conf_tickets(g) == TLS_TICKETS_OFF) {
        return NULL;
    }
    if (tls_conf_tickets(g) == TLS_TICKETS_SHARED && !g->cache) {
        return apr_psprintf(ptemp, "%s:%u: TLSSessionTickets shared: the keys travel through "
                            "the session cache, but there is none; set TLSSessionCache to one "
                            "the servers share (redis or memcache)", g->tickets_where.file,
                            g->tickets_where.line);
    }
    wd_get_instance = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    wd_register_callback = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    if (!g->ticket_key_file && (!wd_get_instance || !wd_register_callback)) {
        return "TLSSessionTickets: mod_tls rotates the ticket keys (and with 'shared' fetches "
               "them from the session cache) in a mod_watchdog task, but mod_watchdog is not "
               "loaded; load it (LoadModule watchdog_module modules/mod_watchdog.so), or give "
               "the keys in a TLSSessionTicketKeyFile, or set TLSSessionTickets off";
    }
    tk = apr_pcalloc(pconf, sizeof(*tk));
    tk->mode = tls_conf_tickets(g);
    tk->lifetime = apr_time_from_sec(tls_conf_cache_timeout(g));
    tk->rotation = apr_time_from_sec(tls_conf_ticket_rotation(g));
    tk->poll = tk->rotation / 2 < TLS_TICKET_POLL_MAX ? tk->rotation / 2 : TLS_TICKET_POLL_MAX;
    tk->tick = tk->rotation / 4 < TLS_TICKET_TICK_MAX ? tk->rotation / 4 : TLS_TICKET_TICK_MAX;
    tk->tick = tk->tick < TLS_TICKET_TICK_MIN ? TLS_TICKET_TICK_MIN : tk->tick;
    tk->cache = g->cache;
    tk->ticketer = mtls_ticketer_new((uint32_t)tls_conf_cache_timeout(g));
    if (!tk->ticketer) {
        return "TLSSessionTickets: cannot create the ticket encrypter";
    }
    apr_pool_cleanup_register(pconf, tk->ticketer, ticketer_cleanup, apr_pool_cleanup_null);
    if (g->ticket_key_file) {
        if ((err = read_key_file(tk, g, ptemp))) {
            return err;
        }
        tk->rotation = 0;
        tk->mode = TLS_TICKETS_ON;
    }
    g->ticket_keys = tk;
    return NULL;
}

void tls_ticket_configure(const tls_global_t *g, mtls_server_config_builder *b)
{
    if (g->ticket_keys) {
        mtls_server_config_builder_set_ticketer(b, g->ticket_keys->ticketer);
    }
}

/* Puts a fresh random key in front of at most `max` keys. `periods` rotation periods have
 * passed since the last rotation (1 when the watchdog keeps up): each one past the first
 * retires one more of the older keys, so no key outlives its time because the server was
 * idle or the cache away. The keys are untouched when no random bytes come. */
static apr_status_t push_new_key(unsigned char (*keys)[MTLS_TICKET_KEY_LEN], apr_uint32_t *n,
                                 apr_uint32_t max, apr_int64_t periods)
{
    unsigned char fresh[MTLS_TICKET_KEY_LEN];
    apr_int64_t room = (apr_int64_t)max - periods;
    apr_uint32_t keep = *n < max ? *n : max - 1;
    apr_status_t rv;

    if ((rv = apr_generate_random_bytes(fresh, sizeof(fresh))) == APR_SUCCESS) {
        if (room < (apr_int64_t)keep) {
            keep = room > 0 ? (apr_uint32_t)room : 0;
        }
        memmove(keys[1], keys[0], keep * MTLS_TICKET_KEY_LEN);
        memcpy(keys[0], fresh, sizeof(fresh));
        *n = keep + 1;
    }
    explicit_bzero(fresh, sizeof(fresh));
    return rv;
}

/* Any thread: copies the shared keys into this process' ticketer when they are newer than
 * the ones it has. An atomic read and a compare when nothing changed. */
static void install_shared(tls_tickets_t *tk)
{
    unsigned char keys[TLS_TICKET_SLOTS][MTLS_TICKET_KEY_LEN], swap[MTLS_TICKET_KEY_LEN];
    tls_ticket_shm_t *sh = tk->shared;
    apr_uint32_t gen, n;
    mtls_result rr;

    if (!sh || !tk->mutex || apr_atomic_read32(&sh->generation)
                             <= mtls_ticketer_generation(tk->ticketer)
        || apr_atomic_read32(&sh->retired) || apr_global_mutex_lock(tk->mutex) != APR_SUCCESS) {
        return;
    }
    gen = apr_atomic_read32(&sh->generation);
    n = sh->nkeys <= TLS_TICKET_SLOTS ? sh->nkeys : 0;
    memcpy(keys, sh->keys, n * MTLS_TICKET_KEY_LEN);
    apr_global_mutex_unlock(tk->mutex);
    /* Retired before the copy ended? Then it may hold zeros: the parent zeroes after marking.
     * The fence keeps the mark's read after the copy's reads. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (n && !apr_atomic_read32(&sh->retired)) {
        if (tk->mode == TLS_TICKETS_SHARED && n >= 2) {
            /* the ticketer seals with its first key: the current one, not the next */
            memcpy(swap, keys[0], sizeof(swap));
            memcpy(keys[0], keys[1], sizeof(swap));
            memcpy(keys[1], swap, sizeof(swap));
            explicit_bzero(swap, sizeof(swap));
        }
        rr = mtls_ticketer_set_keys(tk->ticketer, keys[0], n, gen);
        if (rr != MTLS_OK && rr != MTLS_STALE) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, tk->s,
                         TLSLOGNO(00027) "TLSSessionTickets: the ticket "
                         "keys of generation %u were refused (%d); this process keeps its "
                         "current ones", gen, (int)rr);
        }
    }
    explicit_bzero(keys, sizeof(keys));
}

/* Watchdog thread: the current key, if it has had its period, makes room for a new one
 * made here. With `shared`, only while the cache is unreachable: the next key every server
 * already knows becomes current, as it would through the cache, and a fresh one made here
 * becomes the next (from then on, this server's tickets resume only on this server). */
static void rotate_local(tls_tickets_t *tk, apr_time_t now)
{
    tls_ticket_shm_t *sh = tk->shared;
    int shared = tk->mode == TLS_TICKETS_SHARED;

    if (apr_global_mutex_lock(tk->mutex) != APR_SUCCESS) {
        return;
    }
    if (!apr_atomic_read32(&sh->retired) && now >= sh->rotated_at + tk->rotation
        && push_new_key(sh->keys, &sh->nkeys, shared ? TLS_TICKET_SLOTS : TLS_TICKET_KEYS,
                        (now - sh->rotated_at) / tk->rotation) == APR_SUCCESS) {
        sh->rotated_at = now;
        apr_atomic_inc32(&sh->generation);
        tls_status_count(TLS_STAT_TICKET_ROTATION);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, tk->s,
                     TLSLOGNO(00028) "TLSSessionTickets: new ticket key "
                     "(generation %u)", apr_atomic_read32(&sh->generation));
        if (shared && !sh->local) {
            sh->local = 1;
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, tk->s,
                         TLSLOGNO(00029) "TLSSessionTickets shared: the "
                         "session cache cannot be reached, so this server rotates its ticket "
                         "keys alone; its new tickets resume only here until the cache is "
                         "back");
        }
    }
    apr_global_mutex_unlock(tk->mutex);
}

/* Watchdog thread: the fleet's keys from the cache, rotated there when due; the mutex is only
 * taken for the shared memory, never across the cache's network round trip. The cache holds
 * the next key in front of the current one: every server learns a key (within a poll) before
 * any server seals with it, so a ticket made anywhere opens everywhere, right after a
 * rotation too. Anything but APR_SUCCESS: the cache could not be used, nothing changed. */
static apr_status_t sync_cache(tls_tickets_t *tk, apr_time_t now, apr_pool_t *p)
{
    unsigned char buf[TLS_TICKET_STAMP + TLS_TICKET_SLOTS * MTLS_TICKET_KEY_LEN];
    unsigned char (*keys)[MTLS_TICKET_KEY_LEN] = (void *)(buf + TLS_TICKET_STAMP);
    tls_ticket_shm_t *sh = tk->shared;
    unsigned int len = sizeof(buf);
    apr_uint32_t n = 0;
    apr_time_t rotated_at = 0, t;
    apr_status_t rv;
    int i;

    rv = tls_cache_retrieve(tk->cache, tk->s, TLS_TICKET_CACHE_ID, buf, &len, p);
    if (rv == APR_SUCCESS && len > TLS_TICKET_STAMP
        && (len - TLS_TICKET_STAMP) % MTLS_TICKET_KEY_LEN == 0) {
        n = (len - TLS_TICKET_STAMP) / MTLS_TICKET_KEY_LEN;
        for (i = 0; i < TLS_TICKET_STAMP; ++i) {
            rotated_at = (rotated_at << 8) | buf[i];
        }
    }
    else if (rv != APR_SUCCESS && !APR_STATUS_IS_NOTFOUND(rv)) {
        goto leave;
    }
    if (n < 2 || now >= rotated_at + tk->rotation) {
        /* the next key becomes current and a new next one is published */
        if ((rv = push_new_key(keys, &n, TLS_TICKET_SLOTS,
                               n < 2 ? 1 : (now - rotated_at) / tk->rotation)) != APR_SUCCESS
            || (n < 2 && (rv = push_new_key(keys, &n, TLS_TICKET_SLOTS, 1)) != APR_SUCCESS)) {
            goto leave;
        }
        rotated_at = now;
        for (i = TLS_TICKET_STAMP - 1, t = now; i >= 0; --i, t >>= 8) {
            buf[i] = (unsigned char)(t & 0xff);
        }
        rv = tls_cache_store(tk->cache, tk->s, TLS_TICKET_CACHE_ID, buf,
                             TLS_TICKET_STAMP + n * MTLS_TICKET_KEY_LEN,
                             now + TLS_TICKET_SLOTS * (tk->rotation + tk->lifetime), p);
        if (rv != APR_SUCCESS) {
            goto leave;                /* not published: keys only we know are no fleet's */
        }
        tls_status_count(TLS_STAT_TICKET_ROTATION);
    }
    if ((rv = apr_global_mutex_lock(tk->mutex)) == APR_SUCCESS) {
        if (!apr_atomic_read32(&sh->retired)
            && (sh->nkeys != n || memcmp(sh->keys, keys, n * MTLS_TICKET_KEY_LEN))) {
            memcpy(sh->keys, keys, n * MTLS_TICKET_KEY_LEN);
            sh->nkeys = n;
            sh->rotated_at = rotated_at;
            apr_atomic_inc32(&sh->generation);
            tls_status_count(TLS_STAT_FLEET_UPDATE);
            if (sh->local) {
                sh->local = 0;
                ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, tk->s,
                             TLSLOGNO(00030) "TLSSessionTickets shared: "
                             "the session cache is back; this server uses the fleet's ticket "
                             "keys again");
            }
        }
        apr_global_mutex_unlock(tk->mutex);
    }
leave:
    explicit_bzero(buf, sizeof(buf));
    return rv;
}

/* The watchdog task, on its own thread in every child: rotation and fleet sync, then this
 * process' ticketer brought up to date. */
static apr_status_t ticket_watchdog(int state, void *baton, apr_pool_t *ptemp)
{
    tls_tickets_t *tk = baton;
    apr_time_t now = apr_time_now();

    if (state == AP_WATCHDOG_STATE_STOPPING || !tk->shared || !tk->mutex
        || apr_atomic_read32(&tk->shared->retired)) {
        return APR_SUCCESS;
    }
    if (tk->mode == TLS_TICKETS_SHARED && now >= tk->wd.next_poll) {
        tk->wd.next_poll = now + tk->poll;
        tk->wd.cache_ok = sync_cache(tk, now, ptemp) == APR_SUCCESS;
        if (!tk->wd.cache_ok) {
            tls_status_count(TLS_STAT_FLEET_ERROR);
        }
    }
    if (tk->mode == TLS_TICKETS_ON || !tk->wd.cache_ok) {
        rotate_local(tk, now);
    }
    install_shared(tk);
    return APR_SUCCESS;
}

apr_status_t tls_ticket_init(tls_global_t *g, apr_pool_t *pconf, server_rec *s)
{
    tls_tickets_t *tk = g->ticket_keys;
    tls_ticket_shm_t *sh;
    ap_watchdog_t *wd;
    apr_shm_t *shm;
    apr_status_t rv;

    if (!tk || !tk->rotation) {
        return APR_SUCCESS;            /* no tickets, or the key file's, already installed */
    }
    tk->s = s;
    rv = apr_shm_create(&shm, sizeof(tls_ticket_shm_t), NULL, pconf);
    if (rv == APR_SUCCESS) {
        rv = ap_global_mutex_create(&tk->mutex, NULL, TLS_TICKET_MUTEX, NULL, s, pconf, 0);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     TLSLOGNO(00031) "TLSSessionTickets: cannot set up the "
                     "shared memory or mutex for ticket keys");
        return rv;
    }
    sh = tk->shared = apr_shm_baseaddr_get(shm);
    memset(sh, 0, sizeof(*sh));
    apr_pool_cleanup_register(pconf, tk, retire_shared_keys, apr_pool_cleanup_null);
    if ((rv = push_new_key(sh->keys, &sh->nkeys, TLS_TICKET_KEYS, 1)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     TLSLOGNO(00032) "TLSSessionTickets: no random bytes");
        return rv;
    }
    sh->rotated_at = apr_time_now();
    sh->generation = 1;
    tk->wd.next_poll = 0;
    tk->wd.cache_ok = 0;
    /* the children inherit the first keys installed */
    install_shared(tk);
    rv = wd_get_instance(&wd, TLS_TICKET_WATCHDOG, 0, 0, pconf);
    if (rv == APR_SUCCESS) {
        rv = wd_register_callback(wd, tk->tick, tk, ticket_watchdog);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     TLSLOGNO(00033) "TLSSessionTickets: cannot start the "
                     "mod_watchdog task that rotates the ticket keys");
    }
    return rv;
}

void tls_ticket_child_init(tls_global_t *g, apr_pool_t *p, server_rec *s)
{
    tls_tickets_t *tk = g->ticket_keys;
    apr_status_t rv;

    /* Runs before mod_watchdog starts the task's thread (see mod_tls.c). */
    if (tk && tk->mutex) {
        rv = apr_global_mutex_child_init(&tk->mutex, apr_global_mutex_lockfile(tk->mutex), p);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                         TLSLOGNO(00034) "TLSSessionTickets: cannot attach to "
                         "the ticket key mutex; this child keeps its current keys");
            tk->mutex = NULL;
        }
    }
}

void tls_ticket_update(tls_global_t *g)
{
    if (g->ticket_keys) {
        install_shared(g->ticket_keys);
    }
}

void tls_ticket_state(const tls_global_t *g, tls_ticket_state_t *st)
{
    const tls_tickets_t *tk = g ? g->ticket_keys : NULL;
    tls_ticket_shm_t *sh = tk ? tk->shared : NULL;

    memset(st, 0, sizeof(*st));
    st->mode = !tk ? "off" : !sh ? "file" : tk->mode == TLS_TICKETS_SHARED ? "shared" : "on";
    if (sh) {
        st->generation = apr_atomic_read32(&sh->generation);
        st->rotated_at = sh->rotated_at;
        st->alone = tk->mode == TLS_TICKETS_SHARED && sh->local;
    }
    else if (tk) {
        st->generation = mtls_ticketer_generation(tk->ticketer);
    }
}

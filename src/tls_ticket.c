/* tls_ticket.c: session ticket keys. The parent puts the first keys into shared memory; any
 * child that finds the current key older than TLSSessionTicketKeyRotation makes a new one
 * there (under a mutex), and every child copies the keys into its ticketer when their
 * generation changes. Older keys stay for opening tickets, so rotation loses no resumption.
 * With `TLSSessionTickets shared` the keys live in the session cache, so a fleet of servers
 * rotates together; with a key file they are the admin's, rotated by a graceful restart. */
#include <httpd.h>
#include <string.h>
#include <apr_atomic.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <http_log.h>
#include <util_mutex.h>

#include "tls_cache.h"
#include "tls_ticket.h"

APLOG_USE_MODULE(tls);

#define TLS_TICKET_KEYS      3                   /* current and two previous */
#define TLS_TICKET_SLOTS     (TLS_TICKET_KEYS + 1) /* shared: plus the next one, published early */
#define TLS_TICKET_MUTEX     "tls-ticket-keys"
#define TLS_TICKET_CACHE_ID  "mod_tls:ticket-keys"
#define TLS_TICKET_POLL_MAX  apr_time_from_sec(5) /* shared: how often a child asks the cache */
#define TLS_TICKET_STAMP     8                   /* rotation time in front of cached keys */

typedef struct {
    apr_uint32_t generation;           /* changes with every new set of keys */
    apr_uint32_t retired;              /* set once, by the parent at a restart: stale memory */
    apr_uint32_t nkeys;
    apr_time_t rotated_at;             /* when keys[0] became current */
    /* current first; in shared mode the next key comes before it (see sync_cache) */
    unsigned char keys[TLS_TICKET_SLOTS][MTLS_TICKET_KEY_LEN];
} tls_ticket_shm_t;

struct tls_tickets {
    int mode;                          /* tls_tickets_e */
    apr_interval_time_t rotation;      /* 0: never (key file) */
    apr_interval_time_t lifetime;
    mtls_ticketer *ticketer;           /* in every config; each process sets its keys */
    unsigned char *file_keys;          /* TLSSessionTicketKeyFile's keys, until init */
    apr_size_t file_nkeys;
    tls_ticket_shm_t *shared;          /* this server's processes */
    apr_global_mutex_t *mutex;
    apr_time_t next_poll;              /* per process, shared mode */
    apr_interval_time_t poll;          /* shared mode: half a rotation, at most 5 s */
    tls_cache_t *cache;
    server_rec *s;
};

void tls_ticket_register_mutex(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, TLS_TICKET_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

static apr_status_t ticketer_cleanup(void *data)
{
    mtls_ticketer_free(data);
    return APR_SUCCESS;
}

/* Key bytes are zeroed before their memory goes; registered after it is allocated, so it runs
 * before the memory is freed or unmapped. */
static apr_status_t wipe_file_keys(void *data)
{
    tls_tickets_t *tk = data;

    explicit_bzero(tk->file_keys, tk->file_nkeys * MTLS_TICKET_KEY_LEN);
    return APR_SUCCESS;
}

/* In the parent, at a restart or stop. The children of this generation may still map the
 * memory (a graceful restart lets them finish their connections) and take its mutex, which
 * the parent does not: so the memory is marked retired before anything is zeroed, and
 * whoever copies keys checks the mark after copying. The bridge refuses all-zero keys too. */
static apr_status_t retire_shared_keys(void *data)
{
    tls_tickets_t *tk = data;
    tls_ticket_shm_t *sh = tk->shared;

    apr_atomic_set32(&sh->retired, 1);
    sh->nkeys = 0;
    explicit_bzero(sh->keys, sizeof(sh->keys));
    tk->shared = NULL;
    return APR_SUCCESS;
}

/* Whether a key's AES part (after its 16-byte name) is all zeros: a file of zeros. */
static int key_is_zero(const unsigned char *key)
{
    unsigned char acc = 0;
    int i;

    for (i = 16; i < MTLS_TICKET_KEY_LEN; ++i) {
        acc |= key[i];
    }
    return !acc;
}

static const char *read_key_file(tls_tickets_t *tk, const tls_global_t *g, apr_pool_t *pconf,
                                 apr_pool_t *ptemp)
{
    const char *path = g->ticket_key_file;
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
        return apr_psprintf(ptemp, "%s:%u: TLSSessionTicketKeyFile: cannot read '%s' (%s)",
                            g->ticket_key_where.file, g->ticket_key_where.line, path,
                            apr_strerror(rv, ebuf, sizeof(ebuf)));
    }
    if (len == 0 || len % MTLS_TICKET_KEY_LEN || len > TLS_TICKET_KEYS * MTLS_TICKET_KEY_LEN) {
        explicit_bzero(buf, sizeof(buf));
        return apr_psprintf(ptemp, "%s:%u: TLSSessionTicketKeyFile: '%s' has %" APR_SIZE_T_FMT
                            " bytes; it must hold 1 to %d keys of %d random bytes each, the "
                            "current one first (make one with: openssl rand %d > '%s')",
                            g->ticket_key_where.file, g->ticket_key_where.line, path, len,
                            TLS_TICKET_KEYS, MTLS_TICKET_KEY_LEN, MTLS_TICKET_KEY_LEN, path);
    }
    for (i = 0; i < len / MTLS_TICKET_KEY_LEN; ++i) {
        if (key_is_zero(buf + i * MTLS_TICKET_KEY_LEN)) {
            explicit_bzero(buf, sizeof(buf));
            return apr_psprintf(ptemp, "%s:%u: TLSSessionTicketKeyFile: key %" APR_SIZE_T_FMT
                                " in '%s' is zeros where its random bytes should be (make "
                                "keys with: openssl rand %d)", g->ticket_key_where.file,
                                g->ticket_key_where.line, i + 1, path, MTLS_TICKET_KEY_LEN);
        }
    }
    tk->file_nkeys = len / MTLS_TICKET_KEY_LEN;
    tk->file_keys = apr_pmemdup(pconf, buf, len);
    apr_pool_cleanup_register(pconf, tk, wipe_file_keys, apr_pool_cleanup_null);
    explicit_bzero(buf, sizeof(buf));
    return NULL;
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
    tk = apr_pcalloc(pconf, sizeof(*tk));
    tk->mode = tls_conf_tickets(g);
    tk->lifetime = apr_time_from_sec(tls_conf_cache_timeout(g));
    tk->rotation = apr_time_from_sec(tls_conf_ticket_rotation(g));
    tk->poll = tk->rotation / 2 < TLS_TICKET_POLL_MAX ? tk->rotation / 2 : TLS_TICKET_POLL_MAX;
    tk->cache = g->cache;
    if (g->ticket_key_file) {
        if ((err = read_key_file(tk, g, pconf, ptemp))) {
            return err;
        }
        tk->rotation = 0;
        tk->mode = TLS_TICKETS_ON;
    }
    tk->ticketer = mtls_ticketer_new((uint32_t)tls_conf_cache_timeout(g));
    if (!tk->ticketer) {
        return "TLSSessionTickets: cannot create the ticket encrypter";
    }
    apr_pool_cleanup_register(pconf, tk->ticketer, ticketer_cleanup, apr_pool_cleanup_null);
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
 * passed since the last rotation (1 when connections keep coming): each one past the first
 * retires one more of the older keys, so no key outlives its time because the server was
 * idle. */
static apr_status_t push_new_key(unsigned char (*keys)[MTLS_TICKET_KEY_LEN], apr_uint32_t *n,
                                 apr_uint32_t max, apr_int64_t periods)
{
    apr_int64_t room = (apr_int64_t)max - periods;
    apr_uint32_t keep = *n < max ? *n : max - 1;

    if (room < (apr_int64_t)keep) {
        keep = room > 0 ? (apr_uint32_t)room : 0;
    }
    memmove(keys[1], keys[0], keep * MTLS_TICKET_KEY_LEN);
    *n = keep + 1;
    return apr_generate_random_bytes(keys[0], MTLS_TICKET_KEY_LEN);
}

apr_status_t tls_ticket_init(tls_global_t *g, apr_pool_t *pconf, server_rec *s)
{
    tls_tickets_t *tk = g->ticket_keys;
    apr_shm_t *shm;
    apr_status_t rv;

    if (!tk) {
        return APR_SUCCESS;
    }
    tk->s = s;
    rv = apr_shm_create(&shm, sizeof(tls_ticket_shm_t), NULL, pconf);
    if (rv == APR_SUCCESS) {
        rv = ap_global_mutex_create(&tk->mutex, NULL, TLS_TICKET_MUTEX, NULL, s, pconf, 0);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "TLSSessionTickets: cannot set up the "
                     "shared memory or mutex for ticket keys");
        return rv;
    }
    tk->shared = apr_shm_baseaddr_get(shm);
    memset(tk->shared, 0, sizeof(*tk->shared));
    apr_pool_cleanup_register(pconf, tk, retire_shared_keys, apr_pool_cleanup_null);
    if (tk->file_keys) {
        memcpy(tk->shared->keys, tk->file_keys, tk->file_nkeys * MTLS_TICKET_KEY_LEN);
        tk->shared->nkeys = (apr_uint32_t)tk->file_nkeys;
    }
    else if ((rv = push_new_key(tk->shared->keys, &tk->shared->nkeys, TLS_TICKET_KEYS, 1))
             != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "TLSSessionTickets: no random bytes");
        return rv;
    }
    tk->shared->rotated_at = apr_time_now();
    tk->shared->generation = 1;
    tk->next_poll = 0;
    return APR_SUCCESS;
}

void tls_ticket_child_init(tls_global_t *g, apr_pool_t *p, server_rec *s)
{
    tls_tickets_t *tk = g->ticket_keys;
    apr_status_t rv;

    if (tk && tk->mutex) {
        rv = apr_global_mutex_child_init(&tk->mutex, apr_global_mutex_lockfile(tk->mutex), p);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "TLSSessionTickets: cannot attach to "
                         "the ticket key mutex; this child keeps its current keys");
            tk->mutex = NULL;
        }
    }
}

/* Under the mutex: the process-shared keys, rotated when due. */
static void rotate_local(tls_tickets_t *tk, apr_time_t now)
{
    tls_ticket_shm_t *sh = tk->shared;

    if (!apr_atomic_read32(&sh->retired) && now >= sh->rotated_at + tk->rotation
        && push_new_key(sh->keys, &sh->nkeys, TLS_TICKET_KEYS,
                        (now - sh->rotated_at) / tk->rotation) == APR_SUCCESS) {
        sh->rotated_at = now;
        apr_atomic_inc32(&sh->generation);
    }
}

/* The fleet's keys from the cache, rotated there when due; the mutex is only taken for the
 * shared memory, never across the cache's network round trip. The cache holds
 * the next key in front of the current one: every server learns a key (within a poll) before
 * any server seals with it, so a ticket made anywhere opens everywhere, right after a
 * rotation too. */
static void sync_cache(tls_tickets_t *tk, apr_time_t now, apr_pool_t *p)
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
        return;
    }
    if (n < 2 || now >= rotated_at + tk->rotation) {
        /* the next key becomes current and a new next one is published */
        if (push_new_key(keys, &n, TLS_TICKET_SLOTS, n < 2 ? 1 : (now - rotated_at) / tk->rotation)
            || (n < 2 && push_new_key(keys, &n, TLS_TICKET_SLOTS, 1))) {
            return;
        }
        rotated_at = now;
        for (i = TLS_TICKET_STAMP - 1, t = now; i >= 0; --i, t >>= 8) {
            buf[i] = (unsigned char)(t & 0xff);
        }
        tls_cache_store(tk->cache, tk->s, TLS_TICKET_CACHE_ID, buf,
                        TLS_TICKET_STAMP + n * MTLS_TICKET_KEY_LEN,
                        now + TLS_TICKET_SLOTS * (tk->rotation + tk->lifetime), p);
    }
    if (apr_global_mutex_lock(tk->mutex) == APR_SUCCESS) {
        if (!apr_atomic_read32(&sh->retired)
            && (sh->nkeys != n || memcmp(sh->keys, keys, n * MTLS_TICKET_KEY_LEN))) {
            memcpy(sh->keys, keys, n * MTLS_TICKET_KEY_LEN);
            sh->nkeys = n;
            sh->rotated_at = rotated_at;
            apr_atomic_inc32(&sh->generation);
        }
        apr_global_mutex_unlock(tk->mutex);
    }
    explicit_bzero(buf, sizeof(buf));
}

void tls_ticket_refresh(tls_global_t *g, conn_rec *c)
{
    tls_tickets_t *tk = g->ticket_keys;
    unsigned char keys[TLS_TICKET_SLOTS][MTLS_TICKET_KEY_LEN], swap[MTLS_TICKET_KEY_LEN];
    apr_time_t now;
    apr_uint32_t gen, n;

    if (!tk || !tk->shared || apr_atomic_read32(&tk->shared->retired)) {
        return;
    }
    now = apr_time_now();
    if (tk->mutex && tk->mode == TLS_TICKETS_SHARED && now >= tk->next_poll) {
        tk->next_poll = now + tk->poll;
        sync_cache(tk, now, c->pool);
    }
    else if (tk->mutex && tk->mode == TLS_TICKETS_ON && tk->rotation
             && now >= tk->shared->rotated_at + tk->rotation
             && apr_global_mutex_lock(tk->mutex) == APR_SUCCESS) {
        rotate_local(tk, now);
        apr_global_mutex_unlock(tk->mutex);
    }
    gen = apr_atomic_read32(&tk->shared->generation);
    if (gen <= mtls_ticketer_generation(tk->ticketer) || !tk->mutex
        || apr_global_mutex_lock(tk->mutex) != APR_SUCCESS) {
        return;
    }
    gen = tk->shared->generation;
    n = tk->shared->nkeys <= TLS_TICKET_SLOTS ? tk->shared->nkeys : 0;
    memcpy(keys, tk->shared->keys, n * MTLS_TICKET_KEY_LEN);
    apr_global_mutex_unlock(tk->mutex);
    /* Retired before the copy ended? Then it may hold zeros: the parent zeroes after marking. */
    if (!n || apr_atomic_read32(&tk->shared->retired)) {
        explicit_bzero(keys, sizeof(keys));
        return;
    }
    if (tk->mode == TLS_TICKETS_SHARED && n >= 2) {
        /* the ticketer seals with its first key: the current one, not the next */
        memcpy(swap, keys[0], sizeof(swap));
        memcpy(keys[0], keys[1], sizeof(swap));
        memcpy(keys[1], swap, sizeof(swap));
        explicit_bzero(swap, sizeof(swap));
    }
    /* the ticketer takes them only if no other thread installed a newer generation */
    mtls_ticketer_set_keys(tk->ticketer, keys[0], n, gen);
    explicit_bzero(keys, sizeof(keys));
}

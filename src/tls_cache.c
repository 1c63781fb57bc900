/* tls_cache.c: TLSSessionCache. rustls asks for session state through the bridge's store
 * callbacks while it works on a connection; they land here and go to the socache provider,
 * behind its mutex when the provider needs one. A cache that fails costs resumption, never a
 * connection: a miss is a full handshake. */
#include <httpd.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include <ap_provider.h>
#include <ap_socache.h>
#include <http_log.h>
#include <util_mutex.h>

#include "tls_cache.h"
#include "tls_conn.h"
#include "tls_log.h"
#include "tls_status.h"

APLOG_USE_MODULE(tls);

#define TLS_CACHE_MUTEX "tls-session-cache"
#define TLS_CACHE_WARN_INTERVAL apr_time_from_sec(60)
#define TLS_CACHE_PAUSE      apr_time_from_sec(10)   /* how long a failing cache is left alone */
#define TLS_CACHE_SLOW       apr_time_from_msec(500) /* a call this slow counts as failing */

struct tls_cache {
    const char *name;                  /* provider name, for messages */
    server_rec *s;                     /* the main server, which providers log with */
    const ap_socache_provider_t *provider;
    ap_socache_instance_t *instance;
    apr_global_mutex_t *mutex;         /* NULL when the provider needs none */
    apr_interval_time_t timeout;
    volatile apr_uint64_t paused_until; /* per process: skip the cache until then (an
                                         * apr_time_t; worker threads and the ticket
                                         * watchdog both write it, so atomically) */
};

void tls_cache_register_mutex(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, TLS_CACHE_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

const char *tls_cache_create(tls_global_t *g, apr_pool_t *pconf, apr_pool_t *ptemp)
{
    const char *spec = g->cache_spec ? g->cache_spec : "default", *args = NULL, *err;
    const char *name = spec, *colon;
    tls_cache_t *cache;

    g->cache = NULL;
    if (!strcasecmp(spec, "none")) {
        return NULL;
    }
    if (!strcasecmp(spec, "default")) {
        name = "shmcb";
    }
    else if ((colon = strchr(spec, ':'))) {
        name = apr_pstrmemdup(ptemp, spec, (apr_size_t)(colon - spec));
        args = colon + 1;
    }
    cache = apr_pcalloc(pconf, sizeof(*cache));
    cache->name = apr_pstrdup(pconf, name);
    cache->timeout = apr_time_from_sec(tls_conf_cache_timeout(g));
    cache->provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name,
                                         AP_SOCACHE_PROVIDER_VERSION);
    if (!cache->provider) {
        if (!g->cache_spec || !strcasecmp(spec, "default")) {
            APR_ARRAY_PUSH(g->warnings, const char *) = "TLSSessionCache default: "
                "mod_socache_shmcb is not loaded, so sessions resume only on the child process "
                "that made them; load it (LoadModule socache_shmcb_module "
                "modules/mod_socache_shmcb.so) or set TLSSessionCache none";
            return NULL;
        }
        return apr_psprintf(ptemp, "%s:%u: TLSSessionCache: no session cache provider '%s'; "
                            "load its module (mod_socache_%s) or use shmcb, redis, memcache "
                            "or dbm", g->cache_where.file, g->cache_where.line, name, name);
    }
    err = cache->provider->create(&cache->instance, args, ptemp, pconf);
    if (err) {
        return apr_psprintf(ptemp, "%s:%u: TLSSessionCache %s: %s", g->cache_where.file,
                            g->cache_where.line, spec, err);
    }
    g->cache = cache;
    return NULL;
}

static apr_status_t cache_destroy(void *data)
{
    tls_cache_t *cache = data;

    cache->provider->destroy(cache->instance, cache->s);
    return APR_SUCCESS;
}

apr_status_t tls_cache_init(tls_global_t *g, apr_pool_t *pconf, server_rec *s)
{
    struct ap_socache_hints hints = { 32, 1024, 0 };
    tls_cache_t *cache = g->cache;
    apr_status_t rv;

    if (!cache) {
        return APR_SUCCESS;
    }
    if (cache->provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE) {
        rv = ap_global_mutex_create(&cache->mutex, NULL, TLS_CACHE_MUTEX, NULL, s, pconf, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                         TLSLOGNO(00001) "TLSSessionCache: cannot create "
                         "the mutex '%s'", TLS_CACHE_MUTEX);
            return rv;
        }
    }
    hints.expiry_interval = cache->timeout;
    rv = cache->provider->init(cache->instance, "mod_tls-sessions", &hints, s, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     TLSLOGNO(00002) "TLSSessionCache: cannot initialize the "
                     "'%s' session cache", cache->name);
        return rv;
    }
    cache->s = s;
    apr_pool_cleanup_register(pconf, cache, cache_destroy, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

void tls_cache_child_init(tls_global_t *g, apr_pool_t *p, server_rec *s)
{
    apr_status_t rv;

    if (g->cache && g->cache->mutex) {
        rv = apr_global_mutex_child_init(&g->cache->mutex,
                                         apr_global_mutex_lockfile(g->cache->mutex), p);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                         TLSLOGNO(00003) "TLSSessionCache: cannot attach to the "
                         "mutex in this child; sessions will not be cached here");
            g->cache->mutex = NULL;
            g->cache = NULL;
        }
    }
}

/* Logs a cache failure at most once a minute per process. */
static void cache_warn(server_rec *s, apr_status_t rv, const char *what)
{
    /* Written by any thread of the process: a compare-and-swap lets one of them warn. */
    static volatile apr_uint64_t next_warn;
    apr_uint64_t now = (apr_uint64_t)apr_time_now(), due = apr_atomic_read64(&next_warn);

    if (now >= due
        && apr_atomic_cas64(&next_warn, now + TLS_CACHE_WARN_INTERVAL, due) == due) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     TLSLOGNO(00004) "TLSSessionCache: %s failed or was "
                     "too slow; the cache is left alone for 10 seconds, and sessions it would "
                     "hold do not resume meanwhile (logged once a minute)", what);
    }
}

static apr_status_t cache_lock(tls_cache_t *cache)
{
    return cache->mutex ? apr_global_mutex_lock(cache->mutex) : APR_SUCCESS;
}

static void cache_unlock(tls_cache_t *cache)
{
    if (cache->mutex) {
        apr_global_mutex_unlock(cache->mutex);
    }
}

/* A cache that fails or answers slowly is left alone for a while: every handshake would
 * otherwise wait on it (a provider may block for its full network timeout), and its module
 * would log each failure. Until then, every look-up is a miss. */
static int cache_paused(tls_cache_t *cache)
{
    apr_uint64_t until = apr_atomic_read64(&cache->paused_until);

    return until && (apr_uint64_t)apr_time_now() < until;
}

/* What a provider answers for a value too large for it (shmcb's subcaches, memcached's item
 * size) or for the buffer: a matter of that one session, not of the cache. */
static int value_too_large(apr_status_t rv)
{
    return APR_STATUS_IS_ENOSPC(rv) || APR_STATUS_IS_ENOMEM(rv);
}

static apr_status_t cache_judge(tls_cache_t *cache, server_rec *s, apr_status_t rv,
                                apr_time_t started, const char *what)
{
    apr_time_t now = apr_time_now();

    if (value_too_large(rv) && now - started <= TLS_CACHE_SLOW) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, s,
                     TLSLOGNO(00005) "TLSSessionCache: %s: the value does not "
                     "fit this cache; that session will not resume", what);
        return rv;
    }
    if ((rv != APR_SUCCESS && !APR_STATUS_IS_NOTFOUND(rv)) || now - started > TLS_CACHE_SLOW) {
        apr_atomic_set64(&cache->paused_until, (apr_uint64_t)(now + TLS_CACHE_PAUSE));
        cache_warn(s, rv == APR_SUCCESS ? APR_TIMEUP : rv, what);
    }
    return rv;
}

static apr_status_t cache_store(tls_cache_t *cache, server_rec *s, const unsigned char *id,
                                unsigned int idlen, const unsigned char *data,
                                unsigned int len, apr_time_t expiry, apr_pool_t *p,
                                const char *what)
{
    apr_time_t started = apr_time_now();
    apr_status_t rv;

    if (cache_paused(cache)) {
        return APR_EAGAIN;
    }
    if ((rv = cache_lock(cache)) == APR_SUCCESS) {
        rv = cache->provider->store(cache->instance, s, id, idlen, expiry,
                                    (unsigned char *)data, len, p);
        cache_unlock(cache);
    }
    return cache_judge(cache, s, rv, started, what);
}

static apr_status_t cache_retrieve(tls_cache_t *cache, server_rec *s, const unsigned char *id,
                                   unsigned int idlen, unsigned char *data, unsigned int *len,
                                   apr_pool_t *p, const char *what)
{
    apr_time_t started = apr_time_now();
    apr_status_t rv;

    if (cache_paused(cache)) {
        return APR_EAGAIN;
    }
    if ((rv = cache_lock(cache)) == APR_SUCCESS) {
        rv = cache->provider->retrieve(cache->instance, s, id, idlen, data, len, p);
        cache_unlock(cache);
    }
    return cache_judge(cache, s, rv, started, what);
}

apr_status_t tls_cache_store(tls_cache_t *cache, server_rec *s, const char *id,
                             const unsigned char *data, unsigned int len, apr_time_t expiry,
                             apr_pool_t *p)
{
    return cache_store(cache, s, (const unsigned char *)id, (unsigned int)strlen(id), data, len,
                       expiry, p, "storing the shared ticket keys");
}

apr_status_t tls_cache_retrieve(tls_cache_t *cache, server_rec *s, const char *id,
                                unsigned char *data, unsigned int *len, apr_pool_t *p)
{
    return cache_retrieve(cache, s, (const unsigned char *)id, (unsigned int)strlen(id), data,
                          len, p, "reading the shared ticket keys");
}

/* The bridge's callbacks: userdata is the tls_conn_t rustls is working for. */

static tls_cache_t *conn_cache(void *userdata, tls_conn_t **tc)
{
    *tc = userdata;
    return tls_conf_srv_get((*tc)->c->base_server)->global->cache;
}

static int session_get(void *userdata, const uint8_t *key, size_t key_len, uint8_t *buf,
                       size_t buf_len, size_t *out_len)
{
    tls_conn_t *tc;
    tls_cache_t *cache = conn_cache(userdata, &tc);
    unsigned int len = (unsigned int)buf_len;
    apr_status_t rv;

    if (!cache) {
        return -1;
    }
    rv = cache_retrieve(cache, tc->c->base_server, key, (unsigned int)key_len, buf, &len,
                        tc->c->pool, "looking up a session");
    tls_status_count(rv == APR_SUCCESS ? TLS_STAT_CACHE_HIT
                     : APR_STATUS_IS_NOTFOUND(rv) ? TLS_STAT_CACHE_MISS : TLS_STAT_CACHE_ERROR);
    if (rv != APR_SUCCESS) {
        return -1;
    }
    *out_len = len;
    return 0;
}

static int session_put(void *userdata, const uint8_t *key, size_t key_len, const uint8_t *val,
                       size_t val_len)
{
    tls_conn_t *tc;
    tls_cache_t *cache = conn_cache(userdata, &tc);
    apr_status_t rv;

    if (!cache) {
        return -1;
    }
    rv = cache_store(cache, tc->c->base_server, key, (unsigned int)key_len, val,
                     (unsigned int)val_len, apr_time_now() + cache->timeout, tc->c->pool,
                     "storing a session");
    tls_status_count(rv == APR_SUCCESS ? TLS_STAT_CACHE_STORE : TLS_STAT_CACHE_ERROR);
    return rv == APR_SUCCESS ? 0 : -1;
}

static void session_remove(void *userdata, const uint8_t *key, size_t key_len)
{
    tls_conn_t *tc;
    tls_cache_t *cache = conn_cache(userdata, &tc);

    apr_time_t started = apr_time_now();
    apr_status_t rv;

    if (cache && !cache_paused(cache) && (rv = cache_lock(cache)) == APR_SUCCESS) {
        rv = cache->provider->remove(cache->instance, tc->c->base_server, key,
                                     (unsigned int)key_len, tc->c->pool);
        cache_unlock(cache);
        cache_judge(cache, tc->c->base_server, rv, started, "removing a used session");
    }
}

void tls_cache_configure(const tls_global_t *g, mtls_server_config_builder *b)
{
    if (g->cache) {
        mtls_server_config_builder_set_session_store(b, session_get, session_put, session_remove);
    }
    else if (g->cache_spec && !strcasecmp(g->cache_spec, "none")) {
        mtls_server_config_builder_set_session_store(b, NULL, NULL, NULL);
    }
    /* else: rustls' own per-process cache, the warned-about fallback */
}

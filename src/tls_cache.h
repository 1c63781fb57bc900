/* tls_cache.h: server-side TLS session state in an Apache socache (shmcb, redis, memcache,
 * dbm), so every child process, and every server sharing the cache, can resume a session. */
#ifndef TLS_CACHE_H
#define TLS_CACHE_H

#include "tls_conf.h"

/* pre_config: makes `Mutex tls-session-cache ...` known. */
void tls_cache_register_mutex(apr_pool_t *pconf);

/* check_config: looks up the TLSSessionCache provider and creates its instance. Returns a
 * sentence for the admin on failure. */
const char *tls_cache_create(tls_global_t *g, apr_pool_t *pconf, apr_pool_t *ptemp);

/* post_config: initializes the cache and its mutex. */
apr_status_t tls_cache_init(tls_global_t *g, apr_pool_t *pconf, server_rec *s);

void tls_cache_child_init(tls_global_t *g, apr_pool_t *p, server_rec *s);

/* Points the builder's session storage at the cache (or at none, or rustls' own). */
void tls_cache_configure(const tls_global_t *g, mtls_server_config_builder *b);

/* Direct access, for the ticket keys a fleet shares through the cache. */
apr_status_t tls_cache_store(tls_cache_t *cache, server_rec *s, const char *id,
                             const unsigned char *data, unsigned int len, apr_time_t expiry,
                             apr_pool_t *p);
apr_status_t tls_cache_retrieve(tls_cache_t *cache, server_rec *s, const char *id,
                                unsigned char *data, unsigned int *len, apr_pool_t *p);

#endif

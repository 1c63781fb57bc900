/* tls_proxy.h: TLS to backends, for mod_proxy's outgoing connections (TLSProxy*). */
#ifndef TLS_PROXY_H
#define TLS_PROXY_H

#include <http_config.h>

#include "tls_conn.h"

/* Builds the client configs of every scope with TLSProxyEngine on, one per distinct set of
 * settings; check_config. A sentence for the admin on failure. */
const char *tls_proxy_setup(tls_global_t *g, apr_pool_t *pconf, apr_pool_t *ptemp,
                            server_rec *base);

/* The startup notice when mod_ssl could take the same backend connections. */
void tls_proxy_warn(tls_global_t *g, server_rec *base);

/* child_init: what settings met first at runtime need (see tls_proxy.c). */
void tls_proxy_child_init(tls_global_t *g, apr_pool_t *pchild);

/* ssl_bind_outgoing: takes mod_proxy's connection where TLSProxyEngine is on. */
int tls_proxy_bind_outgoing(conn_rec *c, struct ap_conf_vector_t *dir_conf, int enable_ssl);

/* pre_connection of an outgoing connection: puts our filters on the ones we took. */
int tls_proxy_pre_connection(conn_rec *c);

/* Makes the rustls client connection, for the name and ALPN mod_proxy asks for, and starts
 * its handshake (state HANDSHAKE); fails (state FAILED) when it cannot. */
apr_status_t tls_proxy_start(tls_conn_t *tc);

/* The handshake with the backend completed: checks that ALPN agreed what was asked. */
apr_status_t tls_proxy_on_handshake_done(tls_conn_t *tc);

/* fixups: notes which TLSProxy* settings the proxied request on this thread has. */
int tls_proxy_fixups(request_rec *r);

/* Whether the outgoing connection was made under other settings than the proxied request
 * this thread serves has: mod_proxy's check of a kept connection then finds it closed. */
int tls_proxy_kept_for_other_scope(tls_conn_t *tc);

/* Before mod_proxy's request goes out: fails when the connection is bound to a scope other
 * than the one it was made for (other_scope). */
apr_status_t tls_proxy_check_scope(tls_conn_t *tc);

/* The connection to the backend failed during `during`, for `why`: logged once, as an
 * error naming the backend; aborted, so that mod_proxy answers 502 (504 for a timeout rv).
 * Returns rv. */
apr_status_t tls_proxy_fail(tls_conn_t *tc, apr_status_t rv, const char *during,
                            const char *why);

#endif

/* tls_status.h: TLS statistics for mod_status (server-status and server-status?auto):
 * counters every process adds to in shared memory made once by the parent, which outlives
 * graceful restarts, and the certificates each vhost serves with their expiry. */
#ifndef TLS_STATUS_H
#define TLS_STATUS_H

#include <httpd.h>

#include "tls_conn.h"

/* Why an incoming handshake failed. The numbers index the shared counters: append only. */
typedef enum {
    TLS_FAIL_OTHER = 0,        /* nothing below; also our own faults */
    TLS_FAIL_INCOMPATIBLE,     /* no protocol version, cipher suite or ALPN in common */
    TLS_FAIL_UNKNOWN_SNI,      /* SNI names no vhost, TLSStrictSNI on */
    TLS_FAIL_CLIENT_CERT,      /* a client certificate missing where required, or refused */
    TLS_FAIL_PROTOCOL,         /* no TLS, bad messages, protocol violations, a bad SNI */
    TLS_FAIL_ALERT,            /* the client sent a fatal alert (it refused our certificate) */
    TLS_FAIL_CLOSED,           /* the client closed or reset the connection */
    TLS_FAIL_TIMEOUT,          /* the client did not finish in time (Timeout, RequestReadTimeout) */
    TLS_FAIL_UNUSED,           /* no failure: closed or timed out before its first byte (port
                                * probes, health checks, browsers' unused preconnections) */
    TLS_FAIL_N
} tls_fail_e;

/* Single events, counted where they happen. The numbers index the shared counters: append
 * only. */
typedef enum {
    TLS_STAT_CACHE_HIT = 0,    /* TLSSessionCache: a session found */
    TLS_STAT_CACHE_MISS,       /* looked up, not there */
    TLS_STAT_CACHE_STORE,      /* stored */
    TLS_STAT_CACHE_ERROR,      /* the cache failed, was paused, or refused a value */
    TLS_STAT_TICKET_ROTATION,  /* a new ticket key made by this server */
    TLS_STAT_FLEET_UPDATE,     /* TLSSessionTickets shared: new keys taken from the cache */
    TLS_STAT_FLEET_ERROR,      /* the same: the cache could not be used for the keys */
    TLS_STAT_CLIENT_VERIFIED,  /* a client certificate checked and accepted */
    TLS_STAT_CLIENT_NONE,      /* none sent where TLSClientCertificate is optional */
    TLS_STAT_PLAIN_HTTP,       /* plain HTTP on a TLS address, answered with a 400 */
    TLS_STAT_N
} tls_stat_e;

/* post_config, in the parent: the shared counters, made at the first start in the process
 * pool and found there again after each restart. Without them (no shared memory) nothing is
 * counted and the status pages say so. */
void tls_status_init(server_rec *s);

/* An incoming handshake completed (tc->hs is its snapshot). */
void tls_status_handshake_done(const tls_conn_t *tc);

/* An incoming handshake failed, for `why`. */
void tls_status_handshake_failed(tls_fail_e why);

/* What a bridge result says about why a handshake failed. */
tls_fail_e tls_status_fail_reason(mtls_result rr);

void tls_status_count(tls_stat_e what);

/* mod_status' status_hook: the HTML section, or `key: value` lines for ?auto. */
int tls_status_hook(request_rec *r, int flags);

#endif

/* tls_conn.h: the state of one TLS connection: incoming, from a client, or outgoing, mod_proxy's
 * to a backend ("in" is what the peer sends, "out" what we send; "hello" the ClientHello
 * phase, "traffic" after the handshake). */
#ifndef TLS_CONN_H
#define TLS_CONN_H

#include <httpd.h>
#include <util_filter.h>

#include "tls_conf.h"

typedef enum {
    TLS_ST_HELLO,          /* incoming: reading the ClientHello, no vhost chosen yet;
                            * outgoing: not started, the ClientHello not made yet */
    TLS_ST_HANDSHAKE,      /* vhost and config chosen, handshake under way */
    TLS_ST_TRAFFIC,        /* application data */
    TLS_ST_CLOSED,         /* we sent close_notify: nothing more goes out */
    TLS_ST_FAILED,         /* refused or broken; only queued alerts go out (nothing after a
                            * failed write) */
    TLS_ST_PLAIN_HTTP      /* the client spoke plain HTTP: it gets a 400 in clear, no TLS */
} tls_state_e;

/* One DER certificate, in c->pool. */
typedef struct {
    const uint8_t *der;
    size_t len;
} tls_der_t;

/* What the handshake agreed, taken once when it completes and never changed afterwards.
 * Request hooks, on whatever thread runs the request (HTTP/2 runs them on others), read only
 * this: the rustls connection belongs to the connection's filters alone. */
typedef struct {
    uint16_t version;
    uint16_t suite;
    uint16_t kx_group;                 /* TLS NamedGroup id; 0: none (resumed TLS 1.2) */
    int resumed;
    int certkey_index;                 /* served certificate, in settings->certkeys; -1: not
                                        * known (resumed, several certificates) */
    apr_array_header_t *peer_chain;    /* tls_der_t: the client's certificate, then its chain */
} tls_handshake_t;

struct tls_filter;                 /* the filters' own state, private to tls_filter.c */
struct tls_proxy_settings;         /* client configs, private to tls_proxy.c */

typedef struct {
    conn_rec *c;
    mtls_conn *rc;                     /* rustls connection, freed with c->pool; only the
                                        * filters (the connection's own thread) use it */
    tls_state_e state;
    int outgoing;                      /* to a backend: we are the client */
    server_rec *server;                /* incoming: vhost the handshake chose (SNI or address
                                        * default) */
    const tls_settings_t *settings;    /* incoming: of that vhost */
    const struct tls_proxy_settings *proxy; /* outgoing: the configs of its TLSProxy* scope */
    const tls_proxy_conf_t *bound;     /* outgoing: the settings it was made with */
    int other_scope;                   /* outgoing: kept by mod_proxy, now bound to a scope
                                        * with other TLSProxy* settings (see tls_proxy.c) */
    const char *sni;                   /* incoming: NULL, the client sent none; outgoing: the
                                        * name the backend's certificate is verified for */
    const char *alpn;                  /* agreed protocol, NULL: none */
    int unavailable;                   /* incoming: served a stand-in certificate (mod_md's
                                        * fallback) or a tls-alpn-01 challenge: no request
                                        * is answered but with 503 */
    const tls_handshake_t *hs;         /* NULL until the handshake completed */
    struct tls_filter *filter;         /* the filters' state, set by tls_filter_add */
    int fail_reason;                   /* incoming: tls_fail_e (tls_status.h), why the
                                        * handshake failed; set before the move to FAILED,
                                        * which counts it */
} tls_conn_t;

/* The TLS state of c, or of the connection c runs on (HTTP/2 streams); NULL: no TLS. */
tls_conn_t *tls_conn_get(conn_rec *c);

/* A new TLS state for c, registered with it; its rustls connection (tc->rc) is freed with
 * c->pool, whenever it is made. */
tls_conn_t *tls_conn_new(conn_rec *c, int outgoing);

/* pre_connection: takes over connections to TLS addresses, and the outgoing ones mod_proxy
 * bound to us. */
int tls_conn_pre_connection(conn_rec *c, void *csd);

/* process_connection: completes the handshake before protocol modules take over. */
int tls_conn_process_connection(conn_rec *c);

/* The ClientHello is in: choose the vhost by SNI, the protocol by ALPN, start the handshake
 * with that vhost's prebuilt config, or refuse. */
apr_status_t tls_conn_on_hello(tls_conn_t *tc);

/* The handshake is complete: remember what was agreed, switch protocol if ALPN said so.
 * Fails (state FAILED) when that switch fails. */
apr_status_t tls_conn_on_handshake_done(tls_conn_t *tc);

/* Moves to a new state, logging the step at trace level. An incoming handshake that moves
 * to FAILED is counted there, once, for tc->fail_reason. */
void tls_conn_transit(tls_conn_t *tc, tls_state_e state);

/* A TLS error: logged once (info when the peer is at fault), state FAILED. Returns the
 * status the filters hand up. */
apr_status_t tls_conn_fail(tls_conn_t *tc, mtls_result rr, const char *during);

#endif

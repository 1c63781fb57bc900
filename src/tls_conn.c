/* tls_conn.c: one incoming TLS connection from accept to close: taking it over, choosing
 * the vhost and protocol from the ClientHello, recording what the handshake agreed, and the
 * one place that changes and logs its state. The byte moving lives in tls_filter.c. */
#include <httpd.h>
#include <apr_strings.h>
#include <http_connection.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_vhost.h>

#include "tls_challenge.h"
#include "tls_conn.h"
#include "tls_filter.h"
#include "tls_ocsp.h"
#include "tls_proxy.h"
#include "tls_setup.h"
#include "tls_status.h"
#include "tls_ticket.h"
#include "tls_log.h"

APLOG_USE_MODULE(tls);

/* TLS alert descriptions we send ourselves. */
#define TLS_ALERT_UNRECOGNIZED_NAME 112
#define TLS_ALERT_INTERNAL_ERROR 80
#define TLS_ALERT_NO_APPLICATION_PROTOCOL 120

#define TLS_SNI_SHOWN 64             /* bytes of a refused SNI the log shows */

static const char *const STATE_NAMES[] = { "hello", "handshake", "traffic", "closed", "failed",
                                            "plain-http" };

tls_conn_t *tls_conn_get(conn_rec *c)
{
    if (c->master) {
        c = c->master;
    }
    return ap_get_module_config(c->conn_config, &tls_module);
}

void tls_conn_transit(tls_conn_t *tc, tls_state_e state)
{
    ap_log_cerror(APLOG_MARK, APLOG_TRACE2, 0, tc->c, "tls: %s -> %s",
                  STATE_NAMES[tc->state], STATE_NAMES[state]);
    /* FAILED is final, so a failure is counted once whichever of its places got there. */
    if (!tc->outgoing && state == TLS_ST_FAILED && tc->state <= TLS_ST_HANDSHAKE) {
        tls_status_handshake_failed(tc->fail_reason);
    }
    else if (state == TLS_ST_PLAIN_HTTP) {
        tls_status_count(TLS_STAT_PLAIN_HTTP);
    }
    tc->state = state;
}

/* An SNI for the log, quoted: %-escaped as in URLs, every byte that is not printable ASCII
 * (NUL and controls included) and the few that would be ambiguous or that Apache's error log
 * escapes once more (% ' " \ space). At most TLS_SNI_SHOWN bytes of it. */
static const char *sni_escape(apr_pool_t *p, const uint8_t *name, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, 3 * TLS_SNI_SHOWN + 1), *o = out;
    size_t i;

    for (i = 0; i < len && i < TLS_SNI_SHOWN; ++i) {
        if (name[i] > 0x20 && name[i] < 0x7f && !strchr("%'\"\\", name[i])) {
            *o++ = (char)name[i];
        }
        else {
            *o++ = '%';
            *o++ = hex[name[i] >> 4];
            *o++ = hex[name[i] & 0xf];
        }
    }
    *o = '\0';
    return len > TLS_SNI_SHOWN
           ? apr_psprintf(p, "'%s...' (%" APR_SIZE_T_FMT " bytes)", out, (apr_size_t)len)
           : apr_psprintf(p, "'%s'", out);
}

/* rustls refused the ClientHello because its SNI is no host name (the load generator hey, for
 * one, sends "host:port"). Such a client cannot be served: the hello is part of the handshake
 * transcript, so it cannot be mended. Say what the client sent, and why that is wrong. */
static void log_bad_sni(tls_conn_t *tc)
{
    const uint8_t *name;
    size_t len;

    if (mtls_conn_refused_sni(tc->rc, &name, &len) != MTLS_OK) {
        name = NULL;
    }
    ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, tc->c,
                  TLSLOGNO(00007) "tls: connection from %s refused: SNI %s "
                  "is not a DNS host name (RFC 6066 section 3 wants a host name without port)",
                  tc->c->client_ip, name ? sni_escape(tc->c->pool, name, len) : "(unreadable)");
}

apr_status_t tls_conn_fail(tls_conn_t *tc, mtls_result rr, const char *during)
{
    char detail[256], text[128];

    if (tc->outgoing) {
        detail[0] = '\0';
        mtls_conn_error(tc->rc, detail, sizeof(detail));
        mtls_result_text(rr, text, sizeof(text));
        return tls_proxy_fail(tc, APR_ECONNABORTED, during,
                              detail[0] ? apr_psprintf(tc->c->pool, "%s (%s)", text, detail)
                                        : text);
    }
    if (tc->state != TLS_ST_FAILED) {
        tc->fail_reason = tls_status_fail_reason(rr);
    }
    if (tc->state != TLS_ST_FAILED && rr == MTLS_PEER_BAD_SNI) {
        log_bad_sni(tc);
        tls_conn_transit(tc, TLS_ST_FAILED);
    }
    if (tc->state != TLS_ST_FAILED) {
        detail[0] = '\0';
        mtls_conn_error(tc->rc, detail, sizeof(detail));
        mtls_result_text(rr, text, sizeof(text));
        /* A bad peer is routine on the internet: info, so it never floods the error log. */
        ap_log_cerror(APLOG_MARK, mtls_result_is_peer_fault(rr) ? APLOG_INFO : APLOG_ERR, 0,
                      tc->c, TLSLOGNO(00008) "tls: connection from %s failed during %s: %s%s%s%s",
                      tc->c->client_ip, during, text, detail[0] ? " (" : "", detail,
                      detail[0] ? ")" : "");
        tls_conn_transit(tc, TLS_ST_FAILED);
    }
    return APR_ECONNABORTED;
}

static apr_status_t conn_cleanup(void *data)
{
    tls_conn_t *tc = data;

    mtls_conn_free(tc->rc);
    tc->rc = NULL;
    return APR_SUCCESS;
}

tls_conn_t *tls_conn_new(conn_rec *c, int outgoing)
{
    tls_conn_t *tc = apr_pcalloc(c->pool, sizeof(*tc));

    tc->c = c;
    tc->state = TLS_ST_HELLO;
    tc->outgoing = outgoing;
    apr_pool_cleanup_register(c->pool, tc, conn_cleanup, apr_pool_cleanup_null);
    ap_set_module_config(c->conn_config, &tls_module, tc);
    return tc;
}

int tls_conn_pre_connection(conn_rec *c, void *csd)
{
    tls_srv_conf_t *sc = tls_conf_srv_get(c->base_server);
    tls_conn_t *tc;

    (void)csd;
    if (c->outgoing) {
        return tls_proxy_pre_connection(c);
    }
    /* Ours are the connections clients make to a TLS address; mod_proxy's own connections
     * to backends are not, whatever address they happen to leave from. */
    if (c->master || !sc->global || !tls_setup_is_tls_addr(sc->global, c->local_addr)) {
        return DECLINED;
    }
    tc = tls_conn_new(c, 0);
    tc->rc = mtls_conn_new();
    if (!tc->rc) {
        ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, c,
                      TLSLOGNO(00009) "tls: cannot create a TLS connection");
        /* Aborted, and the other modules' hooks (the core's filters) still run: DONE would
         * leave a connection without them. */
        c->aborted = 1;
        return DECLINED;
    }
    mtls_conn_set_userdata(tc->rc, tc);
    tls_filter_add(tc);
    return OK;
}

int tls_conn_process_connection(conn_rec *c)
{
    tls_conn_t *tc = tls_conn_get(c);
    apr_bucket_brigade *bb;
    apr_status_t rv;

    if (!tc || c->master || tc->state != TLS_ST_HELLO) {
        return DECLINED;
    }
    /* The handshake now, so that SNI and ALPN are settled (and a switch to h2 done)
     * before the protocol modules look at the connection. */
    bb = apr_brigade_create(c->pool, c->bucket_alloc);
    rv = ap_get_brigade(c->input_filters, bb, AP_MODE_INIT, APR_BLOCK_READ, 0);
    apr_brigade_destroy(bb);
    if (rv != APR_SUCCESS && tc->state == TLS_ST_PLAIN_HTTP) {
        /* Its 400 is out. Not aborted: the MPM's lingering close reads what the client sent
         * beyond what we read (a body, a long line) before closing, where an abort would
         * reset the connection and could take the answer with it. Briefly, though. */
        apr_table_setn(c->notes, "short-lingering-close", "1");
        return DONE;
    }
    if (rv != APR_SUCCESS) {
        if (tc->state <= TLS_ST_HANDSHAKE) {
            /* The network read failed under the handshake: the client reset the connection,
             * or took longer than Timeout or mod_reqtimeout's handshake stage allow. */
            tc->fail_reason = !tls_filter_in_started(tc) ? TLS_FAIL_UNUSED
                              : APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_ETIMEDOUT(rv)
                              ? TLS_FAIL_TIMEOUT : TLS_FAIL_CLOSED;
            tls_conn_transit(tc, TLS_ST_FAILED);
        }
        c->aborted = 1;
        return DONE;
    }
    return DECLINED;
}

typedef struct {
    const char *name;
    server_rec *found;
} sni_match_t;

static int server_has_name(server_rec *s, const char *name)
{
    int i;

    if (s->server_hostname && !strcasecmp(s->server_hostname, name)) {
        return 1;
    }
    for (i = 0; s->names && i < s->names->nelts; ++i) {
        if (!strcasecmp(APR_ARRAY_IDX(s->names, i, const char *), name)) {
            return 1;
        }
    }
    for (i = 0; s->wild_names && i < s->wild_names->nelts; ++i) {
        if (!ap_strcasecmp_match(name, APR_ARRAY_IDX(s->wild_names, i, const char *))) {
            return 1;
        }
    }
    return 0;
}

static int sni_match(void *baton, conn_rec *c, server_rec *s)
{
    sni_match_t *m = baton;

    (void)c;
    if (tls_conf_srv_get(s)->settings && server_has_name(s, m->name)) {
        m->found = s;
        return 1;
    }
    return 0;
}

/* The ALPN protocols the client offered, as Apache wants them. */
static apr_array_header_t *client_protocols(tls_conn_t *tc)
{
    size_t i, n = mtls_conn_hello_alpn_count(tc->rc);
    apr_array_header_t *protos = apr_array_make(tc->c->pool, (int)n + 1, sizeof(const char *));
    const uint8_t *p;
    size_t len;

    for (i = 0; i < n; ++i) {
        /* A name with a NUL would read shorter as a C string ("h2\0x" as "h2") than rustls
         * reads it: no protocol here has one, so it is passed over. */
        if (mtls_conn_hello_alpn(tc->rc, i, &p, &len) == MTLS_OK && !memchr(p, '\0', len)) {
            APR_ARRAY_PUSH(protos, const char *) = apr_pstrmemdup(tc->c->pool, (const char *)p, len);
        }
    }
    return protos;
}

static const mtls_server_config *choose_config(tls_conn_t *tc)
{
    apr_array_header_t *offered = client_protocols(tc);
    const mtls_server_config *variant;
    const char *proto;
    int i;

    if (!offered->nelts) {
        return tc->settings->config;
    }
    proto = ap_select_protocol(tc->c, NULL, tc->server, offered);
    if (proto && !strcmp(proto, TLS_CHALLENGE_ALPN)) {
        tc->alpn = proto;
        return tls_challenge_config(tc);
    }
    for (i = 0; proto && i < offered->nelts; ++i) {
        if (!strcmp(proto, APR_ARRAY_IDX(offered, i, const char *))) {
            variant = apr_hash_get(tc->settings->by_alpn, proto, APR_HASH_KEY_STRING);
            if (variant) {
                tc->alpn = proto;
                return variant;
            }
        }
    }
    /* Nothing in common: answer without ALPN; the client decides whether that will do. */
    return tc->settings->config;
}

apr_status_t tls_conn_on_hello(tls_conn_t *tc)
{
    conn_rec *c = tc->c;
    const char *name;
    size_t len;
    const mtls_server_config *config;
    mtls_result rr;

    tc->server = c->base_server;
    if (mtls_conn_sni(tc->rc, &name, &len) == MTLS_OK && len) {
        sni_match_t m = { apr_pstrmemdup(c->pool, name, len), NULL };
        tc->sni = m.name;
        ap_vhost_iterate_given_conn(c, sni_match, &m);
        if (m.found) {
            tc->server = m.found;
        }
        else if (tls_conf_strict_sni(tls_conf_srv_get(c->base_server))) {
            ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, c,
                          TLSLOGNO(00010) "tls: connection from %s refused: "
                          "no virtual host for SNI name '%s' (TLSStrictSNI on)",
                          c->client_ip, tc->sni);
            mtls_conn_refuse(tc->rc, TLS_ALERT_UNRECOGNIZED_NAME);
            tc->fail_reason = TLS_FAIL_UNKNOWN_SNI;
            tls_conn_transit(tc, TLS_ST_FAILED);
            return APR_ECONNABORTED;
        }
    }
    tc->settings = tls_conf_srv_get(tc->server)->settings;
    if (tc->settings && tc->settings->fallback) {
        tc->unavailable = 1;
    }
    if (!tc->settings) {
        ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, c,
                      TLSLOGNO(00011) "tls: %s has no TLS settings for a "
                      "connection on a TLS address", tc->server->server_hostname);
        mtls_conn_refuse(tc->rc, TLS_ALERT_INTERNAL_ERROR);
        tls_conn_transit(tc, TLS_ST_FAILED);
        return APR_ECONNABORTED;
    }
    tls_ticket_update(tls_conf_srv_get(c->base_server)->global);
    tls_ocsp_update(tc);
    if (!(config = choose_config(tc))) {
        /* a tls-alpn-01 challenge nobody answers (logged): RFC 8737 wants the handshake
         * refused, never answered with another certificate */
        mtls_conn_refuse(tc->rc, TLS_ALERT_NO_APPLICATION_PROTOCOL);
        tls_conn_transit(tc, TLS_ST_FAILED);
        return APR_ECONNABORTED;
    }
    rr = mtls_conn_start(tc->rc, config);
    if (rr != MTLS_OK) {
        return tls_conn_fail(tc, rr, "handshake start");
    }
    tls_conn_transit(tc, TLS_ST_HANDSHAKE);
    return APR_SUCCESS;
}

/* The handshake's results, copied out of rustls once (see tls_handshake_t). */
static tls_handshake_t *snapshot(tls_conn_t *tc)
{
    tls_handshake_t *hs = apr_pcalloc(tc->c->pool, sizeof(*hs));
    size_t i, n = mtls_conn_peer_cert_count(tc->rc);
    const uint8_t *der;
    tls_der_t *d;
    size_t len;

    hs->version = mtls_conn_protocol_version(tc->rc);
    hs->suite = mtls_conn_cipher_suite(tc->rc);
    hs->kx_group = mtls_conn_kx_group(tc->rc);
    hs->resumed = mtls_conn_is_resumed(tc->rc);
    hs->certkey_index = mtls_conn_certkey_index(tc->rc);
    if (hs->certkey_index < 0 && tc->settings && tc->settings->certkeys->nelts == 1) {
        /* A resumed session sends no certificate; with only one, it is the one of before. */
        hs->certkey_index = 0;
    }
    hs->peer_chain = apr_array_make(tc->c->pool, (int)n, sizeof(tls_der_t));
    for (i = 0; i < n && mtls_conn_peer_cert(tc->rc, i, &der, &len) == MTLS_OK; ++i) {
        d = apr_array_push(hs->peer_chain);
        d->der = apr_pmemdup(tc->c->pool, der, len);
        d->len = len;
    }
    return hs;
}

apr_status_t tls_conn_on_handshake_done(tls_conn_t *tc)
{
    apr_status_t rv;

    conn_rec *c = tc->c;
    const tls_handshake_t *hs = tc->hs = snapshot(tc);

    tls_conn_transit(tc, TLS_ST_TRAFFIC);
    if (tc->outgoing && (rv = tls_proxy_on_handshake_done(tc)) != APR_SUCCESS) {
        return rv;
    }
    ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c,
                  TLSLOGNO(00012) "tls: handshake done with %s%s: version %04x, "
                  "suite %04x, %s %s, alpn %s%s", tc->outgoing ? "backend " : "",
                  c->client_ip, hs->version, hs->suite, tc->outgoing ? "name" : "sni",
                  tc->sni ? tc->sni : "-", tc->alpn ? tc->alpn : "-",
                  hs->resumed ? ", resumed" : "");
    if (tc->outgoing) {
        return APR_SUCCESS;
    }
    tls_status_handshake_done(tc);
    if (tc->alpn && strcmp(tc->alpn, ap_get_protocol(c))
        && (rv = ap_switch_protocol(c, NULL, tc->server, tc->alpn)) != APR_SUCCESS) {
        /* The client will speak what ALPN agreed, and nothing here can answer it. */
        ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, c,
                      TLSLOGNO(00013) "tls: connection from %s closed: ALPN "
                      "agreed on '%s', but switching the connection to it failed",
                      c->client_ip, tc->alpn);
        tls_conn_transit(tc, TLS_ST_FAILED);
        return APR_ECONNABORTED;
    }
    return APR_SUCCESS;
}

/* tls_proxy.c: TLS to backends. Where TLSProxyEngine is on, mod_proxy's outgoing connection
 * is bound to us (ssl_bind_outgoing); we make a rustls client connection for the backend's
 * name, verified against TLSProxyCA, and the filters that serve clients move its bytes
 * (tls_filter.c), the handshake starting with the first read or write.
 *
 * Client configs are built at startup, one per distinct set of settings a scope may have:
 * each server's own, and each section with TLSProxy* lines merged over its server's. A request
 * can still merge sections into a set that is none of those (two matching <Location>s with
 * TLSProxy* lines each): such a set is built once per child when first met, under a lock,
 * from what was read at startup (a child may no longer read the files). rustls sets ALPN per
 * config, so each config has a variant per ALPN list mod_proxy asks for, all sharing one cache
 * of sessions to resume. */
#include <httpd.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <http_config.h>
#include <http_log.h>

#include "tls_cert.h"
#include "tls_filter.h"
#include "tls_proxy.h"
#include "tls_setup.h"
#include "tls_keylog.h"
#include "tls_log.h"

APLOG_USE_MODULE(tls);

#define TLS_ALPN_NOTE "proxy-request-alpn-protos"   /* mod_proxy_http2: "h2" */
#define TLS_HOST_NOTE "proxy-request-hostname"      /* mod_proxy: the URL's (or Host) name */

/* The ALPN lists built at startup; others are built when first asked for. */
static const char *const ALPN_LISTS[] = { "h2", "http/1.1", "h2, http/1.1", NULL };

typedef struct tls_proxy_settings {
    const char *key;                   /* the settings as text; equal text, equal settings */
    const mtls_client_config *config;  /* offers no ALPN */
    apr_hash_t *by_alpn;               /* ALPN list in TLS's form -> mtls_client_config* */
} tls_proxy_settings_t;

typedef struct {
    const char *pem;
    apr_size_t len;
} tls_pem_t;

/* One configuration cycle's outgoing TLS. */
typedef struct tls_proxy_state {
    apr_hash_t *settings;              /* key -> tls_proxy_settings_t*, built at startup */
    apr_hash_t *cas;                   /* CA file -> tls_pem_t*, read at startup */
    tls_where_t first_on;              /* the first TLSProxyEngine on; file NULL: none */
    apr_thread_mutex_t *lock;          /* in a child: guards the two below */
    apr_pool_t *late_pool;
    apr_hash_t *late;                  /* key (and ALPN list) -> what a child built itself */
} tls_proxy_state_t;

static apr_status_t config_cleanup(void *data)
{
    mtls_client_config_free(data);
    return APR_SUCCESS;
}

static const char *settings_key(apr_pool_t *p, const tls_proxy_conf_t *pc)
{
    apr_array_header_t *suites = tls_setup_suite_order(p, &pc->policy);
    const char *key = apr_psprintf(p, "v%x ca %s", tls_conf_min_version(&pc->policy),
                                   pc->ca ? pc->ca : TLS_PROXY_CA_SYSTEM);
    int i;

    for (i = 0; i < suites->nelts; ++i) {
        key = apr_psprintf(p, "%s %x", key, APR_ARRAY_IDX(suites, i, uint16_t));
    }
    for (i = 0; pc->machine_certs && i < pc->machine_certs->nelts; ++i) {
        const tls_cert_spec_t *c = &APR_ARRAY_IDX(pc->machine_certs, i, tls_cert_spec_t);
        key = apr_pstrcat(p, key, "\n", c->cert_file, " ", c->key_file, NULL);
    }
    return key;
}

/* An ALPN list as mod_proxy notes it ("h2, http/1.1") in TLS's form: each name after its
 * length. NULL for a name longer than TLS allows. */
static const char *alpn_wire(apr_pool_t *p, const char *note, apr_size_t *len)
{
    char *copy = apr_pstrdup(p, note), *last, *name;
    char *wire = apr_palloc(p, strlen(note) + 1), *w = wire;
    apr_size_t n;

    for (name = apr_strtok(copy, ", ", &last); name; name = apr_strtok(NULL, ", ", &last)) {
        if ((n = strlen(name)) > 255) {
            return NULL;
        }
        *w++ = (char)n;
        memcpy(w, name, n);
        w += n;
    }
    *len = (apr_size_t)(w - wire);
    return wire;
}

/* A variant of base offering the ALPN list `wire` (len bytes), freed with pool; filed in
 * `into` under key (key_len bytes). */
static const char *add_alpn_variant(apr_pool_t *pool, apr_hash_t *into, const char *key,
                                    apr_size_t key_len, const char *wire, apr_size_t len,
                                    const mtls_client_config *base,
                                    const mtls_client_config **out)
{
    if (mtls_client_config_with_alpn(base, (const uint8_t *)wire, len, out) != MTLS_OK) {
        return "the ALPN list is not well formed";
    }
    apr_pool_cleanup_register(pool, *out, config_cleanup, apr_pool_cleanup_null);
    apr_hash_set(into, apr_pmemdup(pool, key, key_len), (apr_ssize_t)key_len, *out);
    return NULL;
}

/* The CA file's text, read at startup only. */
static const char *ca_pem(tls_proxy_state_t *st, apr_pool_t *pool, const char *file,
                          int startup, const tls_pem_t **out)
{
    tls_pem_t *pem;
    const char *err;

    if ((*out = apr_hash_get(st->cas, file, APR_HASH_KEY_STRING)) || !startup) {
        return *out ? NULL : "it was not read at startup (no scope with TLSProxyEngine on "
                             "had it there)";
    }
    pem = apr_pcalloc(pool, sizeof(*pem));
    if ((err = tls_cert_read_file(pool, file, &pem->pem, &pem->len))) {
        return strcmp(file, TLS_PROXY_CA_SYSTEM) ? err
               : apr_pstrcat(pool, err, " (the system's CAs come with the Debian package "
                             "ca-certificates; or give a file of your own)", NULL);
    }
    apr_hash_set(st->cas, file, APR_HASH_KEY_STRING, pem);
    *out = pem;
    return NULL;
}

/* Builds the client config for one set of settings, with its ALPN variants (at startup). */
static const char *build(tls_global_t *g, tls_proxy_state_t *st, apr_pool_t *pool,
                         apr_pool_t *ptemp, const tls_proxy_conf_t *pc, const char *key,
                         int startup, tls_proxy_settings_t **out)
{
    const char *file = pc->ca ? pc->ca : TLS_PROXY_CA_SYSTEM, *err, *wire;
    apr_array_header_t *suites = tls_setup_suite_order(ptemp, &pc->policy);
    const char *ca_line = pc->ca_where.file
        ? apr_psprintf(ptemp, "%s:%u: ", pc->ca_where.file, pc->ca_where.line) : "";
    mtls_client_config_builder *b;
    const mtls_client_config *variant;
    tls_proxy_settings_t *ps;
    const tls_pem_t *pem;
    mtls_certkey *ck;
    char detail[512];
    apr_size_t len;
    int i;

    if ((err = ca_pem(st, pool, file, startup, &pem))) {
        return apr_psprintf(ptemp, "%sTLSProxyCA %s: %s", ca_line, file, err);
    }
    b = mtls_client_config_builder_new();
    detail[0] = '\0';
    if (mtls_client_config_builder_add_ca(b, (const uint8_t *)pem->pem, pem->len,
                                          strcmp(file, TLS_PROXY_CA_SYSTEM) != 0, NULL,
                                          detail, sizeof(detail)) != MTLS_OK) {
        mtls_client_config_builder_free(b);
        return apr_psprintf(ptemp, "%sTLSProxyCA %s: %s", ca_line, file, detail);
    }
    mtls_client_config_builder_set_min_version(b, (uint16_t)tls_conf_min_version(&pc->policy));
    mtls_client_config_builder_set_suites(b, (const uint16_t *)suites->elts,
                                          (size_t)suites->nelts);
    tls_keylog_configure_client(g, b);
    for (i = 0; pc->machine_certs && i < pc->machine_certs->nelts; ++i) {
        const tls_cert_spec_t *spec = &APR_ARRAY_IDX(pc->machine_certs, i, tls_cert_spec_t);
        err = NULL;
        if (!startup && !(ck = tls_cert_loaded(g, ptemp, spec))) {
            err = "it was not loaded at startup (no scope with TLSProxyEngine on had it there)";
        }
        else if (startup) {
            err = tls_cert_load(g, pool, ptemp, spec, &ck);
        }
        if (err) {
            mtls_client_config_builder_free(b);
            return apr_psprintf(ptemp, "%s:%u: TLSProxyMachineCertificate: %s",
                                spec->where.file, spec->where.line, err);
        }
        mtls_client_config_builder_add_certkey(b, ck);
    }
    ps = apr_pcalloc(pool, sizeof(*ps));
    ps->key = apr_pstrdup(pool, key);
    ps->by_alpn = apr_hash_make(pool);
    if (mtls_client_config_builder_build(b, &ps->config, detail, sizeof(detail)) != MTLS_OK) {
        return apr_psprintf(ptemp, "the TLSProxy* settings cannot work: %s", detail);
    }
    apr_pool_cleanup_register(pool, ps->config, config_cleanup, apr_pool_cleanup_null);
    for (i = 0; ALPN_LISTS[i]; ++i) {
        wire = alpn_wire(ptemp, ALPN_LISTS[i], &len);
        add_alpn_variant(pool, ps->by_alpn, wire, len, wire, len, ps->config, &variant);
    }
    *out = ps;
    return NULL;
}

/* The settings pc stands for, built if new (at startup). Scopes with the engine off have
 * none. */
static const char *setup_one(tls_global_t *g, tls_proxy_state_t *st, apr_pool_t *pconf,
                             apr_pool_t *ptemp, const tls_proxy_conf_t *pc)
{
    const char *key, *err;
    tls_proxy_settings_t *ps;

    if (pc->engine != 1) {
        return NULL;
    }
    if (!st->first_on.file) {
        st->first_on = pc->engine_where;
    }
    key = settings_key(ptemp, pc);
    if (apr_hash_get(st->settings, key, APR_HASH_KEY_STRING)) {
        return NULL;
    }
    if ((err = build(g, st, pconf, ptemp, pc, key, 1, &ps))) {
        return apr_psprintf(ptemp, "TLSProxyEngine on at %s:%u: %s", pc->engine_where.file,
                            pc->engine_where.line, err);
    }
    apr_hash_set(st->settings, ps->key, APR_HASH_KEY_STRING, ps);
    return NULL;
}

const char *tls_proxy_setup(tls_global_t *g, apr_pool_t *pconf, apr_pool_t *ptemp,
                            server_rec *base)
{
    tls_proxy_state_t *st = apr_pcalloc(pconf, sizeof(*st));
    tls_proxy_conf_t merged;
    const char *err;
    server_rec *s;
    int i;

    st->settings = apr_hash_make(pconf);
    st->cas = apr_hash_make(pconf);
    g->proxy = st;
    for (s = base; s; s = s->next) {
        tls_dir_conf_t *dc = ap_get_module_config(s->lookup_defaults, &tls_module);
        if ((err = setup_one(g, st, pconf, ptemp, &dc->proxy))) {
            return err;
        }
        /* The main server's sections apply in every vhost too. */
        for (i = 0; i < g->proxy_confs->nelts; ++i) {
            const tls_proxy_section_t *sec = &APR_ARRAY_IDX(g->proxy_confs, i,
                                                            tls_proxy_section_t);
            if (sec->server != s && sec->server != base) {
                continue;
            }
            tls_conf_merge_proxy(&merged, &dc->proxy, sec->conf);
            if ((err = setup_one(g, st, pconf, ptemp, &merged))) {
                return err;
            }
        }
    }
    return NULL;
}

void tls_proxy_warn(tls_global_t *g, server_rec *base)
{
    tls_proxy_state_t *st = g->proxy;

    if (st && st->first_on.file && ap_find_linked_module("mod_ssl.c")) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, base,
                     TLSLOGNO(00036) "tls: TLSProxyEngine on at %s:%u: where mod_ssl's "
                     "SSLProxyEngine is on as well, mod_tls takes the backend connections",
                     st->first_on.file, st->first_on.line);
    }
}

void tls_proxy_child_init(tls_global_t *g, apr_pool_t *pchild)
{
    tls_proxy_state_t *st = g->proxy;

    if (st && apr_thread_mutex_create(&st->lock, APR_THREAD_MUTEX_DEFAULT, pchild) == APR_SUCCESS
        && apr_pool_create(&st->late_pool, pchild) == APR_SUCCESS) {
        st->late = apr_hash_make(st->late_pool);
    }
}

/* Settings met first in this child (see the top of the file): built once, under the lock.
 * NULL when they cannot be; *err says why. */
static const tls_proxy_settings_t *late_settings(tls_global_t *g, tls_proxy_state_t *st,
                                                 apr_pool_t *p, const tls_proxy_conf_t *pc,
                                                 const char *key, const char **err)
{
    tls_proxy_settings_t *ps = NULL;
    apr_pool_t *ptemp;

    if (!st->lock) {
        *err = "the lock for settings met at runtime is missing";
        return NULL;
    }
    apr_thread_mutex_lock(st->lock);
    ps = apr_hash_get(st->late, key, APR_HASH_KEY_STRING);
    if (!ps && apr_pool_create(&ptemp, p) == APR_SUCCESS) {
        if ((*err = build(g, st, st->late_pool, ptemp, pc, key, 0, &ps))) {
            *err = apr_pstrdup(p, *err);
            ps = NULL;
        }
        else {
            apr_hash_set(st->late, ps->key, APR_HASH_KEY_STRING, ps);
        }
        apr_pool_destroy(ptemp);
    }
    apr_thread_mutex_unlock(st->lock);
    return ps;
}

/* Whether a and b make the same connection: the same name to verify, and the same client
 * config. Fields of merged settings point to what the sections hold, so equal pointers
 * settle it without building the keys. */
static int same_settings(apr_pool_t *p, const tls_proxy_conf_t *a, const tls_proxy_conf_t *b)
{
    apr_pool_t *tmp;
    int same;

    if (b->engine != 1 || (a->peer_name != b->peer_name
                           && (!a->peer_name || !b->peer_name
                               || strcasecmp(a->peer_name, b->peer_name)))) {
        return 0;
    }
    if (a->ca == b->ca && a->machine_certs == b->machine_certs
        && a->policy.min_version == b->policy.min_version
        && a->policy.prefer == b->policy.prefer && a->policy.suppress == b->policy.suppress) {
        return 1;
    }
    /* kept connections live long: their pool must not grow by a key per request */
    if (apr_pool_create(&tmp, p) != APR_SUCCESS) {
        return 0;
    }
    same = !strcmp(settings_key(tmp, a), settings_key(tmp, b));
    apr_pool_destroy(tmp);
    return same;
}

/* The TLSProxy* settings of the proxied request this thread serves, from its fixups to its
 * end. mod_proxy checks a kept connection (a speculative read, ap_proxy_check_connection)
 * before it binds it to the request: one made under other settings then reads as closed,
 * and mod_proxy makes a new one, where binding it would leave only refusing the request. */
static __thread const tls_proxy_conf_t *request_scope;

static apr_status_t request_scope_end(void *data)
{
    if (request_scope == data) {
        request_scope = NULL;
    }
    return APR_SUCCESS;
}

int tls_proxy_fixups(request_rec *r)
{
    tls_dir_conf_t *dc;

    if (r->proxyreq && (dc = tls_conf_dir_get(r)) != NULL) {
        request_scope = &dc->proxy;
        apr_pool_cleanup_register(r->pool, request_scope, request_scope_end,
                                  apr_pool_cleanup_null);
    }
    return DECLINED;
}

int tls_proxy_kept_for_other_scope(tls_conn_t *tc)
{
    return tc->bound && request_scope && !same_settings(tc->c->pool, tc->bound, request_scope);
}

int tls_proxy_bind_outgoing(conn_rec *c, struct ap_conf_vector_t *dir_conf, int enable_ssl)
{
    tls_global_t *g = tls_conf_srv_get(c->base_server)->global;
    tls_conn_t *tc = ap_get_module_config(c->conn_config, &tls_module);
    tls_proxy_state_t *st = g ? g->proxy : NULL;
    const tls_proxy_settings_t *ps;
    const tls_proxy_conf_t *pc;
    const char *key, *err = NULL;

    if (tc) {
        if (!tc->outgoing || !enable_ssl) {
            return DECLINED;
        }
        /* mod_proxy binds a kept connection again for each request that reuses it, and once
         * when it keeps it (with the worker's scope). It keeps connections per backend URL,
         * so a request may get one made under another scope's settings: the last binding
         * before the request is sent decides whether it may go on it. */
        pc = &((tls_dir_conf_t *)ap_get_module_config(dir_conf ? dir_conf
                                                      : c->base_server->lookup_defaults,
                                                      &tls_module))->proxy;
        tc->other_scope = !same_settings(c->pool, tc->bound, pc);
        return OK;
    }
    /* Not ours from the start (its filters are on): another module's, and it stays so. */
    if (!enable_ssl || !st || c->input_filters) {
        return DECLINED;
    }
    pc = &((tls_dir_conf_t *)ap_get_module_config(dir_conf ? dir_conf
                                                  : c->base_server->lookup_defaults,
                                                  &tls_module))->proxy;
    if (pc->engine != 1) {
        return DECLINED;
    }
    key = settings_key(c->pool, pc);
    if (!(ps = apr_hash_get(st->settings, key, APR_HASH_KEY_STRING))
        && !(ps = late_settings(g, st, c->pool, pc, key, &err))) {
        ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, c,
                      TLSLOGNO(00037) "tls: no TLS to the backend at %s: the TLSProxy* "
                      "settings of this request's scope cannot work: %s", c->client_ip, err);
        return DECLINED;
    }
    tc = tls_conn_new(c, 1);
    tc->proxy = ps;
    tc->bound = apr_pmemdup(c->pool, pc, sizeof(*pc));
    return OK;
}

int tls_proxy_pre_connection(conn_rec *c)
{
    tls_conn_t *tc = ap_get_module_config(c->conn_config, &tls_module);

    if (!tc || !tc->outgoing || tc->filter) {
        return DECLINED;
    }
    tls_filter_add(tc);
    return OK;
}

/* The config offering the ALPN list mod_proxy noted; NULL (why in *err) when none can. */
static const mtls_client_config *alpn_config(tls_conn_t *tc, const char *note, const char **err)
{
    tls_global_t *g = tls_conf_srv_get(tc->c->base_server)->global;
    tls_proxy_state_t *st = g->proxy;
    const mtls_client_config *config;
    const char *wire, *key;
    apr_size_t len;

    if (!(wire = alpn_wire(tc->c->pool, note, &len))) {
        *err = apr_psprintf(tc->c->pool, "an ALPN protocol name in '%s' is too long", note);
        return NULL;
    }
    if (!len) {
        return tc->proxy->config;
    }
    if ((config = apr_hash_get(tc->proxy->by_alpn, wire, (apr_ssize_t)len))) {
        return config;
    }
    if (!st->lock) {
        *err = "the lock for settings met at runtime is missing";
        return NULL;
    }
    key = apr_pstrcat(tc->c->pool, tc->proxy->key, "\nalpn ", note, NULL);
    apr_thread_mutex_lock(st->lock);
    if (!(config = apr_hash_get(st->late, key, APR_HASH_KEY_STRING))
        && (*err = add_alpn_variant(st->late_pool, st->late, key, strlen(key), wire, len,
                                    tc->proxy->config, &config))) {
        config = NULL;
    }
    apr_thread_mutex_unlock(st->lock);
    return config;
}

apr_status_t tls_proxy_start(tls_conn_t *tc)
{
    conn_rec *c = tc->c;
    const char *note = apr_table_get(c->notes, TLS_ALPN_NOTE);
    const mtls_client_config *config = tc->proxy->config;
    const char *err = NULL;
    mtls_result rr;

    /* The name to verify, and to send as SNI unless it is an IP address (rustls sends none
     * then, as RFC 6066 wants). */
    tc->sni = tc->bound->peer_name ? tc->bound->peer_name : apr_table_get(c->notes, TLS_HOST_NOTE);
    if (!tc->sni) {
        tc->sni = c->client_ip;
    }
    if (note && !(config = alpn_config(tc, note, &err))) {
        return tls_proxy_fail(tc, APR_EGENERAL, "handshake start", err);
    }
    rr = mtls_conn_new_client(config, (const uint8_t *)tc->sni, strlen(tc->sni),
                              c->client_addr ? c->client_addr->port : 0, &tc->rc);
    if (rr != MTLS_OK) {
        return tls_proxy_fail(tc, APR_EGENERAL, "handshake start", rr == MTLS_INVALID
                              ? "the name is neither a DNS name nor an IP address "
                                "(see TLSProxyPeerName)"
                              : "rustls could not make the connection");
    }
    tls_conn_transit(tc, TLS_ST_HANDSHAKE);
    return APR_SUCCESS;
}

apr_status_t tls_proxy_on_handshake_done(tls_conn_t *tc)
{
    conn_rec *c = tc->c;
    const char *note = apr_table_get(c->notes, TLS_ALPN_NOTE);
    const uint8_t *proto;
    size_t len;

    if (mtls_conn_alpn(tc->rc, &proto, &len) == MTLS_OK && len) {
        tc->alpn = apr_pstrmemdup(c->pool, (const char *)proto, len);
    }
    /* A backend without ALPN speaks HTTP/1.1: good enough only where that was offered. */
    if (note && !tc->alpn && !ap_strstr_c(note, "http/1.1") && strspn(note, ", ") < strlen(note)) {
        return tls_proxy_fail(tc, APR_ECONNABORTED, "handshake", apr_psprintf(c->pool,
                              "it agreed on no ALPN protocol, and '%s' was asked for (for "
                              "h2:// URLs the backend needs 'Protocols h2' on TLS)", note));
    }
    return APR_SUCCESS;
}

apr_status_t tls_proxy_check_scope(tls_conn_t *tc)
{
    if (!tc->other_scope) {
        return APR_SUCCESS;
    }
    /* Sending would skip the checks this scope asks for (another CA, peer name, version or
     * client certificate): refused, and closed, so that the next request connects anew. */
    tc->c->keepalive = AP_CONN_CLOSE;
    return tls_proxy_fail(tc, APR_ECONNABORTED, "reuse",
                          "mod_proxy kept this connection for a request in a scope with other "
                          "TLSProxy* settings, so it is closed and the request refused; give "
                          "such scopes their own ProxyPass URL (or disablereuse=on)");
}

apr_status_t tls_proxy_fail(tls_conn_t *tc, apr_status_t rv, const char *during,
                            const char *why)
{
    conn_rec *c = tc->c;
    char buf[256];

    /* mod_proxy answers 502 (504 for a timeout) only for an aborted connection; and aborted
     * is ours to set here, so it tells that this was logged. */
    if (!c->aborted) {
        ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, c,
                      TLSLOGNO(00035) "tls: backend %s at %s:%u failed during %s: %s",
                      tc->sni ? tc->sni : "-", c->client_ip,
                      c->client_addr ? (unsigned)c->client_addr->port : 0, during,
                      why ? why : apr_strerror(rv, buf, sizeof(buf)));
        c->aborted = 1;
    }
    if (tc->state != TLS_ST_FAILED) {
        tls_conn_transit(tc, TLS_ST_FAILED);
    }
    return rv;
}

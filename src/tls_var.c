/* tls_var.c: answers about our connections for the rest of Apache (ap_ssl_* hooks, the
 * SSL_* variables mod_ssl users know, CGI environments) and guards which requests may
 * travel on a connection whose TLS settings were chosen by SNI. */
#include <httpd.h>
#include <apr_strings.h>
#include <ap_expr.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_ssl.h>
#include <mod_log_config.h>

#include "tls_cert.h"
#include "tls_cipher.h"
#include "tls_conn.h"
#include "tls_var.h"

APLOG_USE_MODULE(tls);

#define TLS_VERSION_INTERFACE "mod_tls/" MOD_TLS_VERSION

/* Variables exported with TLSOptions +StdEnvVars. */
static const char *const STD_VARS[] = {
    "SSL_PROTOCOL", "SSL_CIPHER", "SSL_TLS_SNI", "SSL_SESSION_RESUMED",
    "SSL_VERSION_INTERFACE", "SSL_VERSION_LIBRARY", NULL
};

int tls_var_conn_is_ssl(conn_rec *c)
{
    return tls_conn_get(c) ? OK : DECLINED;
}

static const char *protocol_name(uint16_t version)
{
    switch (version) {
    case 0x0304: return "TLSv1.3";
    case 0x0303: return "TLSv1.2";
    default: return NULL;
    }
}

static const char *lookup(apr_pool_t *p, const tls_conn_t *tc, const char *name)
{
    if (!strcmp(name, "HTTPS")) {
        return "on";
    }
    if (strncmp(name, "SSL_", 4)) {
        return NULL;
    }
    name += 4;
    if (!strcmp(name, "VERSION_INTERFACE")) {
        return TLS_VERSION_INTERFACE;
    }
    if (!strcmp(name, "VERSION_LIBRARY")) {
        return mtls_version();
    }
    if (!strcmp(name, "TLS_SNI")) {
        return tc->sni;
    }
    if (tc->state < TLS_ST_TRAFFIC && tc->state != TLS_ST_CLOSED) {
        /* Asked during the handshake (e.g. by mod_http2 at ALPN): not settled yet. */
        return NULL;
    }
    if (!strcmp(name, "PROTOCOL")) {
        return protocol_name(tc->version);
    }
    if (!strcmp(name, "CIPHER")) {
        return tc->suite ? tls_cipher_name(p, tc->suite) : NULL;
    }
    if (!strcmp(name, "SESSION_RESUMED")) {
        return tc->resumed ? "Resumed" : "Initial";
    }
    if (!strcmp(name, "SERVER_CERT") && tc->settings && tc->certkey_index >= 0
        && tc->certkey_index < tc->settings->certkeys->nelts) {
        return tls_cert_leaf_pem(p, APR_ARRAY_IDX(tc->settings->certkeys, tc->certkey_index,
                                                  mtls_certkey *));
    }
    return NULL;
}

const char *tls_var_lookup(apr_pool_t *p, server_rec *s, conn_rec *c, request_rec *r,
                           const char *name)
{
    tls_conn_t *tc;

    (void)s;
    if (!c && r) {
        c = r->connection;
    }
    if (!c || !name || !(tc = tls_conn_get(c))) {
        return NULL;
    }
    return lookup(p, tc, name);
}

/* %{NAME}x in a LogFormat. Asks every TLS module through ap_ssl_var_lookup, so it serves
 * mod_ssl's connections too when both modules are loaded and this one registered last. */
static const char *log_x(request_rec *r, char *name)
{
    const char *v = ap_ssl_var_lookup(r->pool, r->server, r->connection, r, name);

    return (v && *v) ? v : NULL;
}

void tls_var_register_log(apr_pool_t *p)
{
    APR_OPTIONAL_FN_TYPE(ap_register_log_handler) *reg;

    reg = APR_RETRIEVE_OPTIONAL_FN(ap_register_log_handler);
    if (reg) {
        reg(p, "x", log_x, 0);
    }
}

static const char *expr_var(ap_expr_eval_ctx_t *ctx, const void *data)
{
    return ap_ssl_var_lookup(ctx->p, ctx->s, ctx->c, ctx->r, data);
}

static const char *expr_func(ap_expr_eval_ctx_t *ctx, const void *data, const char *arg)
{
    (void)data;
    return ap_ssl_var_lookup(ctx->p, ctx->s, ctx->c, ctx->r, arg);
}

int tls_var_expr_lookup(ap_expr_lookup_parms *parms)
{
    if (parms->type == AP_EXPR_FUNC_VAR && !strncasecmp(parms->name, "SSL_", 4)) {
        *parms->func = (const void *)expr_var;
        *parms->data = parms->name;
        return OK;
    }
    if (parms->type == AP_EXPR_FUNC_STRING && !strcasecmp(parms->name, "SSL")) {
        *parms->func = (const void *)expr_func;
        *parms->data = NULL;
        return OK;
    }
    return DECLINED;
}

int tls_var_fixups(request_rec *r)
{
    tls_conn_t *tc = tls_conn_get(r->connection);
    tls_dir_conf_t *dc;
    const char *v;
    int i;

    if (!tc) {
        return DECLINED;
    }
    apr_table_setn(r->subprocess_env, "HTTPS", "on");
    dc = tls_conf_dir_get(r);
    if (dc->std_env_vars > 0) {
        for (i = 0; STD_VARS[i]; ++i) {
            if ((v = lookup(r->pool, tc, STD_VARS[i]))) {
                apr_table_setn(r->subprocess_env, STD_VARS[i], v);
            }
        }
    }
    if (dc->export_cert_data > 0 && (v = lookup(r->pool, tc, "SSL_SERVER_CERT"))) {
        apr_table_setn(r->subprocess_env, "SSL_SERVER_CERT", v);
    }
    return DECLINED;
}

const char *tls_var_http_scheme(const request_rec *r)
{
    return tls_conn_get(r->connection) ? "https" : NULL;
}

apr_port_t tls_var_default_port(const request_rec *r)
{
    return tls_conn_get(r->connection) ? 443 : 0;
}

int tls_var_check_request(request_rec *r)
{
    tls_conn_t *tc = tls_conn_get(r->connection);

    if (!tc || !tc->server || r->server == tc->server) {
        return DECLINED;
    }
    /* Equal settings share one prebuilt config: then this connection is as good as one made
     * for r->server (and HTTP/2 clients may reuse it, RFC 7540 9.1.1), if that vhost also
     * allows the protocol the connection speaks. */
    if (tls_conf_srv_get(r->server)->settings != tc->settings
        || (tc->alpn && !ap_is_allowed_protocol(r->connection, r, r->server, tc->alpn))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "tls: request for %s on a connection "
                      "made for %s (SNI %s), whose TLS settings or protocols differ: 421",
                      r->hostname ? r->hostname : "-", tc->server->server_hostname,
                      tc->sni ? tc->sni : "none");
        return HTTP_MISDIRECTED_REQUEST;
    }
    return DECLINED;
}

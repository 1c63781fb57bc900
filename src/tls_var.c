/* tls_var.c: answers about our connections for the rest of Apache (ap_ssl_* hooks, the
 * SSL_* variables mod_ssl users know, CGI environments) and guards which requests may
 * travel on a connection whose TLS settings were chosen by SNI. */
#include <httpd.h>
#include <stdlib.h>

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
#include "tls_log.h"

APLOG_USE_MODULE(tls);

#define TLS_VERSION_INTERFACE "mod_tls/" MOD_TLS_VERSION

/* Variables exported with TLSOptions +StdEnvVars, besides the certificate fields. */
static const char *const STD_VARS[] = {
    "SSL_PROTOCOL", "SSL_CIPHER", "SSL_TLS_SNI", "SSL_SESSION_RESUMED",
    "SSL_VERSION_INTERFACE", "SSL_VERSION_LIBRARY", "SSL_CLIENT_VERIFY",
    "SSL_CIPHER_EXPORT", "SSL_CIPHER_USEKEYSIZE", "SSL_CIPHER_ALGKEYSIZE",
    "SSL_COMPRESS_METHOD", "SSL_SECURE_RENEG", NULL
};

#define TLS_FIELD_MAX 8192

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

/* Whether the client sent certificate i (0: its own, then its chain); *der borrows it from
 * the handshake's snapshot, never from the live rustls connection. */
static int peer_der(const tls_conn_t *tc, size_t i, const uint8_t **der, size_t *len)
{
    const tls_der_t *d;

    if (!tc->hs || i >= (size_t)tc->hs->peer_chain->nelts) {
        return 0;
    }
    d = &APR_ARRAY_IDX(tc->hs->peer_chain, (int)i, tls_der_t);
    *der = d->der;
    *len = d->len;
    return 1;
}

static int server_der(const tls_conn_t *tc, const uint8_t **der, size_t *len)
{
    int i = tc->hs ? tc->hs->certkey_index : -1;

    return tc->settings && i >= 0 && i < tc->settings->certkeys->nelts
           && mtls_certkey_leaf_der(APR_ARRAY_IDX(tc->settings->certkeys, i, mtls_certkey *),
                                    der, len) == MTLS_OK;
}

/* A certificate field as the bridge formats it (escaped as mod_ssl does). A value whose
 * length disagrees with strlen carries a NUL that would shorten it for every C reader
 * (a user name, a Require, a CGI script): it counts as unset. */
static const char *cert_var(apr_pool_t *p, conn_rec *c, const uint8_t *der, size_t len,
                            const char *field)
{
    char stack[TLS_FIELD_MAX], *buf = stack;
    size_t n = 0;
    mtls_result rr;
    int64_t now = (int64_t)apr_time_sec(apr_time_now());

    if (!strcmp(field, "CERT")) {
        return tls_cert_pem(p, der, len);
    }
    rr = mtls_x509_field(der, len, field, now, buf, sizeof(stack), &n);
    if (rr == MTLS_BUFFER_TOO_SMALL) {
        /* a certificate with many names: ask again with room for all of it */
        buf = apr_palloc(p, n + 1);
        rr = mtls_x509_field(der, len, field, now, buf, n + 1, &n);
    }
    if (rr != MTLS_OK) {
        return NULL;
    }
    if (strlen(buf) != n) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c,
                      TLSLOGNO(00025) "tls: certificate field %s has a NUL "
                      "byte among its %" APR_SIZE_T_FMT " bytes: treated as unset", field, n);
        return NULL;
    }
    return apr_pstrmemdup(p, buf, n);
}

static const char *client_var(apr_pool_t *p, const tls_conn_t *tc, const char *field)
{
    const uint8_t *der;
    size_t len;
    char *end;
    long n;

    if (!strcmp(field, "VERIFY")) {
        /* A certificate that failed verification failed the handshake: no FAILED here. */
        return peer_der(tc, 0, &der, &len) ? "SUCCESS" : "NONE";
    }
    /* mod_ssl's name is CERT_CHAIN_n; CHAIN_n is accepted as well. */
    if (!strncmp(field, "CERT_CHAIN_", 11) || !strncmp(field, "CHAIN_", 6)) {
        field = strchr(field, '_') + 1;
        field += strncmp(field, "CHAIN_", 6) ? 0 : 6;
        n = strtol(field, &end, 10);
        return (!*end && end != field && n >= 0 && peer_der(tc, (size_t)n + 1, &der, &len))
               ? tls_cert_pem(p, der, len) : NULL;
    }
    return peer_der(tc, 0, &der, &len) ? cert_var(p, tc->c, der, len, field) : NULL;
}

/* The symmetric key size of a suite, from its name: every suite rustls offers is AES-128,
 * AES-256 or ChaCha20 (256 bits). */
static const char *key_bits(const char *suite)
{
    if (strstr(suite, "_AES_128_")) {
        return "128";
    }
    if (strstr(suite, "_AES_256_") || strstr(suite, "_CHACHA20_")) {
        return "256";
    }
    return NULL;
}

static const char *lookup(apr_pool_t *p, const tls_conn_t *tc, const char *name)
{
    const uint8_t *der;
    size_t len;

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
    if (!tc->hs) {
        /* Asked during the handshake (e.g. by mod_http2 at ALPN): not settled yet. */
        return NULL;
    }
    if (!strcmp(name, "PROTOCOL")) {
        return protocol_name(tc->hs->version);
    }
    if (!strcmp(name, "CIPHER")) {
        return tc->hs->suite ? tls_cipher_name(p, tc->hs->suite) : NULL;
    }
    if (!strcmp(name, "CIPHER_USEKEYSIZE") || !strcmp(name, "CIPHER_ALGKEYSIZE")) {
        return tc->hs->suite ? key_bits(tls_cipher_name(p, tc->hs->suite)) : NULL;
    }
    /* Facts of every rustls connection, for scripts written for mod_ssl: no export
     * ciphers, no TLS compression (CRIME), and no renegotiation at all, so none that
     * is "secure" either. */
    if (!strcmp(name, "CIPHER_EXPORT") || !strcmp(name, "SECURE_RENEG")) {
        return "false";
    }
    if (!strcmp(name, "COMPRESS_METHOD")) {
        return "NULL";
    }
    if (!strcmp(name, "SESSION_RESUMED")) {
        return tc->hs->resumed ? "Resumed" : "Initial";
    }
    if (!strncmp(name, "CLIENT_", 7)) {
        return client_var(p, tc, name + 7);
    }
    if (!strncmp(name, "SERVER_", 7) && server_der(tc, &der, &len)) {
        return cert_var(p, tc->c, der, len, name + 7);
    }
    return NULL;
}

/* Exports what StdEnvVars exports of one certificate, from one parse of it: "NAME\tvalue\n"
 * lines, whose values the bridge escaped (no tab, newline or NUL inside a value). */
static void export_cert(request_rec *r, const char *prefix, const uint8_t *der, size_t len)
{
    char *lines = (char *)cert_var(r->pool, r->connection, der, len, "ENV"), *line, *last, *tab;

    for (line = lines ? apr_strtok(lines, "\n", &last) : NULL; line;
         line = apr_strtok(NULL, "\n", &last)) {
        if ((tab = strchr(line, '\t'))) {
            *tab = '\0';
            apr_table_setn(r->subprocess_env, apr_pstrcat(r->pool, prefix, line, NULL), tab + 1);
        }
    }
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
    const uint8_t *der;
    size_t len;
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
        if (peer_der(tc, 0, &der, &len)) {
            export_cert(r, "SSL_CLIENT_", der, len);
        }
        if (server_der(tc, &der, &len)) {
            export_cert(r, "SSL_SERVER_", der, len);
        }
    }
    if (dc->export_cert_data > 0) {
        if (server_der(tc, &der, &len)) {
            apr_table_setn(r->subprocess_env, "SSL_SERVER_CERT", tls_cert_pem(r->pool, der, len));
        }
        for (i = 0; peer_der(tc, (size_t)i, &der, &len); ++i) {
            v = tls_cert_pem(r->pool, der, len);
            if (!i) {
                apr_table_setn(r->subprocess_env, "SSL_CLIENT_CERT", v);
                continue;
            }
            /* mod_ssl's name, and the shorter one this module documented first */
            apr_table_setn(r->subprocess_env,
                           apr_psprintf(r->pool, "SSL_CLIENT_CERT_CHAIN_%d", i - 1), v);
            apr_table_setn(r->subprocess_env, apr_psprintf(r->pool, "SSL_CLIENT_CHAIN_%d", i - 1), v);
        }
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

    if (!tc || !tc->server) {
        return DECLINED;
    }
    if (tc->unavailable) {
        /* No request is served over a stand-in certificate or a challenge's (mod_ssl does
         * the same). */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      TLSLOGNO(00038) "tls: %s has no certificate of its own yet: 503",
                      tc->server->server_hostname);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (r->server == tc->server) {
        return DECLINED;
    }
    /* Equal settings share one prebuilt config: then this connection is as good as one made
     * for r->server (and HTTP/2 clients may reuse it, RFC 7540 9.1.1), if that vhost also
     * allows the protocol the connection speaks. */
    if (tls_conf_srv_get(r->server)->settings != tc->settings
        || (tc->alpn && !ap_is_allowed_protocol(r->connection, r, r->server, tc->alpn))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      TLSLOGNO(00026) "tls: request for %s on a connection "
                      "made for %s (SNI %s), whose TLS settings or protocols differ: 421",
                      r->hostname ? r->hostname : "-", tc->server->server_hostname,
                      tc->sni ? tc->sni : "none");
        return HTTP_MISDIRECTED_REQUEST;
    }
    return DECLINED;
}

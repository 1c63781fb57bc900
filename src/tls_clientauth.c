/* tls_clientauth.c: client certificates. rustls verifies them in the handshake (webpki,
 * with the CRLs for the whole chain); here the files are read, the admin's mistakes are
 * named, and the verified certificate can name the request's user. Client authentication is
 * per vhost: rustls has no renegotiation, so no per-directory handshake either. */
#include <httpd.h>
#include <apr_strings.h>
#include <http_log.h>
#include <http_request.h>
#include <http_ssl.h>

#include "tls_cert.h"
#include "tls_clientauth.h"
#include "tls_conn.h"
#include "tls_log.h"

APLOG_USE_MODULE(tls);

const char *tls_clientauth_key(apr_pool_t *p, const tls_srv_conf_t *sc)
{
    const char *key;
    int i;

    if (tls_conf_client_mode(sc) == TLS_CLIENT_NONE) {
        return "";
    }
    key = apr_psprintf(p, "\nclient %d %s", tls_conf_client_mode(sc), sc->client_ca);
    for (i = 0; sc->client_crls && i < sc->client_crls->nelts; ++i) {
        key = apr_pstrcat(p, key, " ", APR_ARRAY_IDX(sc->client_crls, i, const char *), NULL);
    }
    return key;
}

/* All TLSClientCRL files, one after the other (each followed by a newline), joined by their
 * sizes: a NUL byte in a file, which PEM ignores between blocks, must neither cut off what
 * follows it nor leave the count larger than the copy. */
static const char *read_crls(const tls_srv_conf_t *sc, apr_pool_t *p, const char **pem,
                             apr_size_t *len)
{
    int i, n = sc->client_crls ? sc->client_crls->nelts : 0;
    const char **data = apr_pcalloc(p, sizeof(*data) * (apr_size_t)(n + 1)), *err;
    apr_size_t *sizes = apr_pcalloc(p, sizeof(*sizes) * (apr_size_t)(n + 1)), total = 0;
    char *joined;

    *pem = "";
    *len = 0;
    for (i = 0; i < n; ++i) {
        const char *path = APR_ARRAY_IDX(sc->client_crls, i, const char *);
        int64_t next;
        if ((err = tls_cert_read_file(p, path, &data[i], &sizes[i]))) {
            return err;
        }
        if (mtls_crl_next_update((const uint8_t *)data[i], sizes[i], &next) != MTLS_OK) {
            return apr_psprintf(p, "TLSClientCRL '%s' does not parse as PEM 'X509 CRL' blocks; "
                                "a broken list would silently disable revocation checks",
                                path);
        }
        total += sizes[i] + 1;
    }
    if (!total) {
        return NULL;
    }
    joined = apr_palloc(p, total);
    for (i = 0, total = 0; i < n; ++i) {
        memcpy(joined + total, data[i], sizes[i]);
        total += sizes[i];
        joined[total++] = '\n';
    }
    *pem = joined;
    *len = total;
    return NULL;
}

const char *tls_clientauth_configure(const tls_srv_conf_t *sc, mtls_server_config_builder *b,
                                     apr_pool_t *ptemp)
{
    const char *ca, *crl, *err;
    apr_size_t ca_len, crl_len;
    char detail[512];
    int mode = tls_conf_client_mode(sc);

    if (mode == TLS_CLIENT_NONE) {
        return NULL;
    }
    if (!sc->client_ca) {
        return apr_psprintf(ptemp, "%s:%u: 'TLSClientCertificate %s' but no TLSClientCA: "
                            "name the file with the CAs client certificates must chain to",
                            sc->client_where.file, sc->client_where.line,
                            mode == TLS_CLIENT_REQUIRED ? "required" : "optional");
    }
    if ((err = tls_cert_read_file(ptemp, sc->client_ca, &ca, &ca_len))
        || (err = read_crls(sc, ptemp, &crl, &crl_len))) {
        return err;
    }
    detail[0] = '\0';
    if (mtls_server_config_builder_set_client_auth(b, (const uint8_t *)ca, ca_len,
                                                   (const uint8_t *)crl, crl_len,
                                                   mode == TLS_CLIENT_REQUIRED, detail,
                                                   sizeof(detail)) != MTLS_OK) {
        return apr_psprintf(ptemp, "client certificates: %s (TLSClientCA %s%s)", detail,
                            sc->client_ca, sc->client_crls ? ", TLSClientCRL" : "");
    }
    return NULL;
}

void tls_clientauth_warn(server_rec *base, apr_pool_t *ptemp)
{
    apr_hash_t *seen = apr_hash_make(ptemp);
    apr_time_exp_t tm;
    apr_size_t n, len;
    const char *path, *pem;
    char date[64];
    int64_t next;
    server_rec *s;
    int i;

    for (s = base; s; s = s->next) {
        const tls_srv_conf_t *sc = tls_conf_srv_get(s);
        for (i = 0; sc->settings && sc->client_crls && i < sc->client_crls->nelts; ++i) {
            path = APR_ARRAY_IDX(sc->client_crls, i, const char *);
            if (apr_hash_get(seen, path, APR_HASH_KEY_STRING)
                || tls_cert_read_file(ptemp, path, &pem, &len)
                || mtls_crl_next_update((const uint8_t *)pem, len, &next) != MTLS_OK
                || !next || next > (int64_t)apr_time_sec(apr_time_now())) {
                continue;
            }
            apr_hash_set(seen, path, APR_HASH_KEY_STRING, path);
            apr_time_exp_gmt(&tm, apr_time_from_sec(next));
            apr_strftime(date, &n, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", &tm);
            /* Warn, not fail: its revocations still hold, and a stale list is better than
             * none; a CRL that does not parse stops the start instead. */
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, base,
                         TLSLOGNO(00006) "TLSClientCRL '%s' should have "
                         "been updated by %s; its revocations are still enforced, fetch a "
                         "current list from the CA and reload", path, date);
        }
    }
}

static const char *user_from_cert(request_rec *r)
{
    tls_dir_conf_t *dc = tls_conf_dir_get(r);
    const char *v;

    if (!dc->user_name || !tls_conn_get(r->connection)) {
        return NULL;
    }
    v = ap_ssl_var_lookup(r->pool, r->server, r->connection, r, dc->user_name);
    return (v && *v) ? v : NULL;
}

int tls_clientauth_access(request_rec *r)
{
    const char *user;

    /* Early, like mod_ssl: the user is known (and logged) also when access is then denied. */
    if (!r->user && (user = user_from_cert(r))) {
        r->user = (char *)user;
    }
    return DECLINED;
}

int tls_clientauth_check_user(request_rec *r)
{
    const char *user = r->user ? r->user : user_from_cert(r);

    if (!user) {
        return DECLINED;
    }
    r->user = (char *)user;
    r->ap_auth_type = "TLS";
    return OK;
}

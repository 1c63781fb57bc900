/* tls_cert.c: certificate files into rustls certified keys. The PEM parsing and the key
 * check happen in the bridge; here we read files, cache, tie lifetimes to pconf and say
 * what went wrong in the admin's terms. */
#include <httpd.h>
#include <string.h>
#include <apr_base64.h>
#include <apr_file_io.h>
#include <apr_strings.h>

#include "tls_cert.h"

const char *tls_cert_read_file(apr_pool_t *p, const char *path, const char **data,
                               apr_size_t *len)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    char *buf, ebuf[256];

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
        if (rv == APR_SUCCESS) {
            buf = apr_palloc(p, (apr_size_t)fi.size + 1);
            rv = apr_file_read_full(f, buf, (apr_size_t)fi.size, len);
            buf[*len] = '\0';
            *data = buf;
        }
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "cannot read '%s' (%s); check the path and its permissions",
                            path, apr_strerror(rv, ebuf, sizeof(ebuf)));
    }
    return NULL;
}

static apr_status_t certkey_cleanup(void *data)
{
    mtls_certkey_free(data);
    return APR_SUCCESS;
}

static const char *certkey_id(apr_pool_t *p, const tls_cert_spec_t *spec)
{
    return apr_pstrcat(p, spec->cert_file, "\n", spec->key_file, NULL);
}

mtls_certkey *tls_cert_loaded(const tls_global_t *global, apr_pool_t *p,
                              const tls_cert_spec_t *spec)
{
    return apr_hash_get(global->certkeys, certkey_id(p, spec), APR_HASH_KEY_STRING);
}

const char *tls_cert_load(tls_global_t *global, apr_pool_t *pconf, apr_pool_t *ptemp,
                          const tls_cert_spec_t *spec, mtls_certkey **ck)
{
    const char *id = certkey_id(ptemp, spec);
    const char *cert, *key, *err, *key_file;
    apr_size_t cert_len, key_len;
    char detail[512];
    mtls_result rr;

    if ((*ck = apr_hash_get(global->certkeys, id, APR_HASH_KEY_STRING))) {
        return NULL;
    }
    if ((err = tls_cert_read_file(ptemp, spec->cert_file, &cert, &cert_len))) {
        return err;
    }
    key_file = spec->key_file ? spec->key_file : spec->cert_file;
    key = cert;
    key_len = cert_len;
    if (spec->key_file && (err = tls_cert_read_file(ptemp, spec->key_file, &key, &key_len))) {
        return err;
    }
    detail[0] = '\0';
    rr = mtls_certkey_load((const uint8_t *)cert, cert_len, (const uint8_t *)key, key_len,
                           ck, detail, sizeof(detail));
    /* The bridge holds what it needs; the PEM key read here must not linger in ptemp's
     * freed memory (read above into buffers of ours, so writable). */
    explicit_bzero((char *)key, key_len);
    switch (rr) {
    case MTLS_OK:
        break;
    case MTLS_CERT_NONE:
    case MTLS_CERT_BAD:
        return apr_psprintf(ptemp, "'%s' holds no usable certificate (%s); it must contain "
                            "the PEM certificate, then its intermediates", spec->cert_file, detail);
    case MTLS_KEY_NONE:
        return apr_psprintf(ptemp, "no private key in '%s'; give the key file as the second "
                            "argument of TLSCertificate or append the PEM key to the file",
                            key_file);
    case MTLS_KEY_MISMATCH:
        return apr_psprintf(ptemp, "the key in '%s' does not match the certificate in "
                            "'%s'; pair each certificate with its own key",
                            key_file, spec->cert_file);
    default:
        return apr_psprintf(ptemp, "'%s': %s", key_file, detail);
    }
    apr_pool_cleanup_register(pconf, *ck, certkey_cleanup, apr_pool_cleanup_null);
    apr_hash_set(global->certkeys, apr_pstrdup(pconf, id), APR_HASH_KEY_STRING, *ck);
    return NULL;
}

int tls_cert_covers(apr_pool_t *p, const apr_array_header_t *certkeys, const char *name)
{
    int i;

    /* A wildcard alias is covered when some name under it is, e.g. by a wildcard cert. */
    if (!strncmp(name, "*.", 2)) {
        name = apr_pstrcat(p, "wildcard-check", name + 1, NULL);
    }
    for (i = 0; i < certkeys->nelts; ++i) {
        if (mtls_certkey_covers_name(APR_ARRAY_IDX(certkeys, i, mtls_certkey *), name)) {
            return 1;
        }
    }
    return 0;
}

#define TLS_EXPIRY_WARN_DAYS 30

const char *tls_cert_check_expiry(apr_pool_t *p, const mtls_certkey *ck, const char *cert_file)
{
    char date[64];
    apr_time_exp_t tm;
    apr_size_t len;
    int64_t not_after, now = (int64_t)apr_time_sec(apr_time_now());

    if (mtls_certkey_not_after(ck, &not_after) != MTLS_OK
        || not_after > now + TLS_EXPIRY_WARN_DAYS * 86400) {
        return NULL;
    }
    apr_time_exp_gmt(&tm, apr_time_from_sec(not_after));
    apr_strftime(date, &len, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (not_after <= now) {
        return apr_psprintf(p, "the certificate in '%s' expired on %s: clients will refuse "
                            "it; renew it", cert_file, date);
    }
    return apr_psprintf(p, "the certificate in '%s' expires on %s, in %d days: renew it soon",
                        cert_file, date, (int)((not_after - now) / 86400));
}

const char *tls_cert_pem(apr_pool_t *p, const uint8_t *der, size_t der_len)
{
    size_t i, n;
    char *b64, *pem, *out;

    b64 = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)der_len));
    n = (size_t)apr_base64_encode_binary(b64, der, (int)der_len) - 1;
    pem = out = apr_palloc(p, n + n / 64 + 64);
    out += sprintf(out, "-----BEGIN CERTIFICATE-----\n");
    for (i = 0; i < n; i += 64) {
        size_t line = (n - i) < 64 ? (n - i) : 64;
        memcpy(out, b64 + i, line);
        out += line;
        *out++ = '\n';
    }
    strcpy(out, "-----END CERTIFICATE-----\n");
    return pem;
}

/* tls_ocsp.c: OCSP stapling. mod_md fetches and renews the OCSP responses (MDStapling,
 * MDStapleOthers); mod_tls offers it each certificate it serves at startup
 * (ap_ssl_ocsp_prime) and staples what it answers (ap_ssl_ocsp_get_resp). The bridge keeps
 * the response with the certificate and serves it until it expires. mod_md answers only with
 * a connection at hand, so the response is taken in a handshake, but at most every
 * TLS_OCSP_LOOK seconds per certificate and process (TLS_OCSP_LOOK_NONE while there is none):
 * one thread looks, the others go on with what is stapled. */
#include <httpd.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include <string.h>
#include <http_log.h>
#include <http_ssl.h>

#include "tls_cert.h"
#include "tls_ocsp.h"
#include "tls_log.h"

APLOG_USE_MODULE(tls);

#define TLS_OCSP_LOOK 10           /* seconds between looks for a certificate's response */
#define TLS_OCSP_LOOK_NONE 2       /* the same while there is none (mod_md may be fetching) */

/* One stapled certificate. */
struct tls_staple {
    server_rec *s;                 /* primed for this server */
    const char *id;                /* as primed: the certificate file */
    mtls_certkey *ck;
    apr_uint32_t looked;           /* apr_time_sec() of the last look; 0: never */
    apr_uint32_t stapled;          /* the last look found a response */
};

#define PEM_BEGIN "-----BEGIN CERTIFICATE-----"
#define PEM_END "-----END CERTIFICATE-----"

/* The certificates of a certificate file (the leaf, then its chain), and nothing else: the
 * file may hold the private key too, which is no other module's business. The file's text is
 * zeroed once read. NULL when the file cannot be read, or holds no issuer after the leaf
 * (OCSP needs the issuer, and mod_md would log an error for each start). */
static const char *certificates_of(apr_pool_t *p, const char *file)
{
    int n = 0;
    const char *text, *begin, *end;
    char *found, *to;
    apr_size_t len;

    if (tls_cert_read_file(p, file, &text, &len)) {
        return NULL;
    }
    to = found = apr_palloc(p, len + 1);
    for (begin = strstr(text, PEM_BEGIN); begin && (end = strstr(begin, PEM_END));
         begin = strstr(end, PEM_BEGIN)) {
        end += strlen(PEM_END);
        memcpy(to, begin, (apr_size_t)(end - begin));
        to += end - begin;
        *to++ = '\n';
        ++n;
    }
    *to = '\0';
    /* read into a buffer of ours, so writable */
    explicit_bzero((char *)text, len);
    return n >= 2 ? found : NULL;
}

void tls_ocsp_prime(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *base)
{
    const char *pem;
    server_rec *s;
    int i;

    for (s = base; s; s = s->next) {
        const tls_srv_conf_t *sc = tls_conf_srv_get(s);
        /* the settings as the cycle keeps them, to be filled in; shared by vhosts alike */
        tls_settings_t *st = sc->settings ? apr_hash_get(sc->global->settings, sc->settings->key,
                                                         APR_HASH_KEY_STRING) : NULL;
        if (!st || st->fallback || st->staples) {
            continue;               /* none, a stand-in, or primed with another vhost */
        }
        st->staples = apr_array_make(pconf, st->certkeys->nelts, sizeof(tls_staple_t *));
        for (i = 0; i < st->certkeys->nelts; ++i) {
            const char *file = APR_ARRAY_IDX(st->cert_files, i, const char *);
            tls_staple_t *sp = NULL;
            if ((pem = certificates_of(ptemp, file)) != NULL
                && ap_ssl_ocsp_prime(s, pconf, file, strlen(file), pem) == APR_SUCCESS) {
                sp = apr_pcalloc(pconf, sizeof(*sp));
                sp->s = s;
                sp->id = file;
                sp->ck = APR_ARRAY_IDX(st->certkeys, i, mtls_certkey *);
                ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                             TLSLOGNO(00040) "tls: OCSP responses for %s come from another "
                             "module (mod_md) and are stapled", file);
            }
            APR_ARRAY_PUSH(st->staples, tls_staple_t *) = sp;
        }
    }
}

static void take_response(const unsigned char *der, apr_size_t der_len, void *userdata)
{
    tls_staple_t *sp = userdata;

    /* An expired or broken response is not stapled (the bridge says so); without one, the
     * handshake goes without a staple. */
    apr_atomic_set32(&sp->stapled, der && der_len
                     && mtls_certkey_set_ocsp(sp->ck, der, der_len, NULL) == MTLS_OK);
    if (!der || !der_len) {
        mtls_certkey_set_ocsp(sp->ck, NULL, 0, NULL);
    }
}

void tls_ocsp_update(tls_conn_t *tc)
{
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now()), looked;
    const apr_array_header_t *staples = tc->settings->staples;
    int i;

    for (i = 0; staples && i < staples->nelts; ++i) {
        tls_staple_t *sp = APR_ARRAY_IDX(staples, i, tls_staple_t *);
        if (!sp || now - (looked = apr_atomic_read32(&sp->looked))
                       < (apr_atomic_read32(&sp->stapled) ? TLS_OCSP_LOOK : TLS_OCSP_LOOK_NONE)
            || apr_atomic_cas32(&sp->looked, now, looked) != looked) {
            continue;
        }
        if (ap_ssl_ocsp_get_resp(sp->s, tc->c, sp->id, strlen(sp->id), take_response, sp)
            != APR_SUCCESS) {
            take_response(NULL, 0, sp);
        }
    }
}

/* tls_challenge.c: tls-alpn-01 (RFC 8737). An ACME server proves control of a name by a TLS
 * handshake to it with ALPN acme-tls/1, in which it must get a certificate made for that
 * challenge. mod_md makes it and gives it through ap_ssl_answer_challenge; the connection
 * serves that handshake and nothing else. Such handshakes are a few per certificate and
 * renewal, so their config is made per connection, not at startup. */
#include <httpd.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_ssl.h>

#include "tls_challenge.h"
#include "tls_log.h"

APLOG_USE_MODULE(tls);

static apr_status_t config_cleanup(void *data)
{
    mtls_server_config_free(data);
    return APR_SUCCESS;
}

static void challenge_failed(tls_conn_t *tc, const char *why)
{
    ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, tc->c,
                  TLSLOGNO(00039) "tls: tls-alpn-01 challenge for %s from %s not answered: %s",
                  tc->sni ? tc->sni : "(no SNI)", tc->c->client_ip, why);
}

const mtls_server_config *tls_challenge_config(tls_conn_t *tc)
{
    conn_rec *c = tc->c;
    const char *cert_pem = NULL, *key_pem = NULL;
    const mtls_server_config *base, *config = NULL;
    mtls_server_config_builder *b;
    mtls_certkey *ck;
    char detail[256];

    if (!tc->sni) {
        challenge_failed(tc, "the client sent no SNI");
        return NULL;
    }
    /* mod_md answers only on a connection switched to the protocol. */
    if (ap_switch_protocol(c, NULL, tc->server, TLS_CHALLENGE_ALPN) != APR_SUCCESS
        || !ap_ssl_answer_challenge(c, tc->sni, &cert_pem, &key_pem) || !cert_pem) {
        challenge_failed(tc, "no module has a challenge certificate for the name");
        return NULL;
    }
    if (!key_pem) {
        key_pem = cert_pem;
    }
    detail[0] = '\0';
    if (mtls_certkey_load((const uint8_t *)cert_pem, strlen(cert_pem), (const uint8_t *)key_pem,
                          strlen(key_pem), &ck, detail, sizeof(detail)) != MTLS_OK) {
        challenge_failed(tc, detail);
        return NULL;
    }
    b = mtls_server_config_builder_new();
    mtls_server_config_builder_add_certkey(b, ck);
    mtls_certkey_free(ck);
    if (mtls_server_config_builder_build(b, &base, detail, sizeof(detail)) != MTLS_OK) {
        challenge_failed(tc, detail);
        return NULL;
    }
    if (mtls_server_config_with_alpn(base, (const uint8_t *)TLS_CHALLENGE_ALPN,
                                     strlen(TLS_CHALLENGE_ALPN), &config) != MTLS_OK) {
        challenge_failed(tc, "no config with the challenge's ALPN protocol could be made");
        config = NULL;
    }
    else {
        apr_pool_cleanup_register(c->pool, config, config_cleanup, apr_pool_cleanup_null);
        tc->unavailable = 1;
    }
    mtls_server_config_free(base);
    return config;
}

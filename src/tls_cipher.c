/* tls_cipher.c: cipher suite names. rustls only knows ids; admins write IANA or OpenSSL
 * names, and variables report IANA names, so the translation lives here. */
#include <stdlib.h>

#include <apr_strings.h>

#include "mtls.h"
#include "tls_cipher.h"

typedef struct {
    uint16_t id;
    const char *iana;
    const char *openssl;     /* NULL: same as IANA (all TLS 1.3 suites) */
} tls_cipher_t;

/* The suites rustls offers, and the common ones it deliberately does not (CBC, RSA key
 * exchange, DHE, CCM, RC4, 3DES): naming those gets a warning, not a startup failure. */
static const tls_cipher_t CIPHERS[] = {
    { 0x1301, "TLS_AES_128_GCM_SHA256", NULL },
    { 0x1302, "TLS_AES_256_GCM_SHA384", NULL },
    { 0x1303, "TLS_CHACHA20_POLY1305_SHA256", NULL },
    { 0x1304, "TLS_AES_128_CCM_SHA256", NULL },
    { 0x1305, "TLS_AES_128_CCM_8_SHA256", NULL },
    { 0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256" },
    { 0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384" },
    { 0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305" },
    { 0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256" },
    { 0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384" },
    { 0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305" },
    { 0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA" },
    { 0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA" },
    { 0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA" },
    { 0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA" },
    { 0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256" },
    { 0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "ECDHE-ECDSA-AES256-SHA384" },
    { 0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256" },
    { 0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "ECDHE-RSA-AES256-SHA384" },
    { 0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", "ECDHE-ECDSA-AES128-CCM" },
    { 0xC0AD, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM", "ECDHE-ECDSA-AES256-CCM" },
    { 0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE-RSA-AES128-GCM-SHA256" },
    { 0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "DHE-RSA-AES256-GCM-SHA384" },
    { 0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "DHE-RSA-CHACHA20-POLY1305" },
    { 0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", "DHE-RSA-AES128-SHA" },
    { 0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "DHE-RSA-AES256-SHA" },
    { 0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256" },
    { 0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384" },
    { 0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA" },
    { 0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA" },
    { 0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256" },
    { 0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", "AES256-SHA256" },
    { 0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA" },
    { 0x0005, "TLS_RSA_WITH_RC4_128_SHA", "RC4-SHA" },
};

#define CIPHERS_LEN (sizeof(CIPHERS) / sizeof(CIPHERS[0]))

int tls_cipher_is_supported(uint16_t id)
{
    size_t i, n = mtls_suites_count();

    for (i = 0; i < n; ++i) {
        if (mtls_suite_id(i) == id) {
            return 1;
        }
    }
    return 0;
}

static int cipher_lookup(const char *name, uint16_t *id)
{
    size_t i;
    char *end;
    unsigned long v;

    if (!strncasecmp(name, "TLS_CIPHER_0x", 13)) {
        v = strtoul(name + 13, &end, 16);
        if (*end || end == name + 13 || v > 0xFFFF) {
            return 0;
        }
        *id = (uint16_t)v;
        return 1;
    }
    for (i = 0; i < CIPHERS_LEN; ++i) {
        if (!strcasecmp(name, CIPHERS[i].iana)
            || (CIPHERS[i].openssl && !strcasecmp(name, CIPHERS[i].openssl))) {
            *id = CIPHERS[i].id;
            return 1;
        }
    }
    return 0;
}

const char *tls_cipher_parse_list(apr_pool_t *p, const char *list, apr_array_header_t *ids,
                                  apr_array_header_t *unsupported)
{
    char *rest = apr_pstrdup(p, list), *name;
    uint16_t id;

    while ((name = apr_strtok(rest, " \t:", &rest)) != NULL) {
        if (!cipher_lookup(name, &id)) {
            return apr_psprintf(p, "unknown cipher '%s': use IANA names like "
                                "TLS_AES_128_GCM_SHA256 or TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "
                                "OpenSSL names like ECDHE-ECDSA-AES256-GCM-SHA384, or "
                                "TLS_CIPHER_0xNNNN", name);
        }
        if (tls_cipher_is_supported(id)) {
            APR_ARRAY_PUSH(ids, uint16_t) = id;
        }
        else {
            APR_ARRAY_PUSH(unsupported, const char *) = name;
        }
    }
    return NULL;
}

const char *tls_cipher_name(apr_pool_t *p, uint16_t id)
{
    size_t i;

    for (i = 0; i < CIPHERS_LEN; ++i) {
        if (CIPHERS[i].id == id) {
            return CIPHERS[i].iana;
        }
    }
    return apr_psprintf(p, "TLS_CIPHER_0x%04X", id);
}

/* tls_cipher.h: cipher suite names (IANA, OpenSSL, TLS_CIPHER_0xNNNN) and their ids. */
#ifndef TLS_CIPHER_H
#define TLS_CIPHER_H

#include <apr_pools.h>
#include <apr_tables.h>

/* Parses a space or colon separated list into uint16_t ids. On an unknown name, returns a
 * sentence for the admin; NULL on success. `unsupported` gets the names this build knows
 * but rustls does not offer (for a warning); they are left out of `ids`. */
const char *tls_cipher_parse_list(apr_pool_t *p, const char *list, apr_array_header_t *ids,
                                  apr_array_header_t *unsupported);

/* The IANA name of a suite id, or "TLS_CIPHER_0xNNNN" for ones without a known name. */
const char *tls_cipher_name(apr_pool_t *p, uint16_t id);

/* Whether rustls offers this suite here. */
int tls_cipher_is_supported(uint16_t id);

#endif

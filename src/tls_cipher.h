/* tls_cipher.h: cipher suite names (IANA, OpenSSL, TLS13_*, TLS_CIPHER_0xNNNN) and their ids. */
#ifndef TLS_CIPHER_H
#define TLS_CIPHER_H

#include <apr_pools.h>
#include <apr_tables.h>

/* Parses a space or colon separated list into uint16_t ids. Names are IANA, OpenSSL (for the
 * common suites), rustls' TLS13_* or TLS_CIPHER_0xNNNN. On a name in none of these, returns a
 * sentence for the admin; NULL on success. Suites rustls does not offer (every registered one
 * is known) are left out of `ids`; `unsupported` gets each as text for a warning, the name as
 * written followed by its IANA name when they differ, allocated from `p`. */
const char *tls_cipher_parse_list(apr_pool_t *p, const char *list, apr_array_header_t *ids,
                                  apr_array_header_t *unsupported);

/* The IANA name of a suite id, or "TLS_CIPHER_0xNNNN" for ones without a known name. */
const char *tls_cipher_name(apr_pool_t *p, uint16_t id);

/* Whether rustls offers this suite here. */
int tls_cipher_is_supported(uint16_t id);

#endif

/* tls_cert.h: certificate files into rustls certified keys, and the admin's checks on them. */
#ifndef TLS_CERT_H
#define TLS_CERT_H

#include "tls_conf.h"

/* Loads (once per cycle, cached in global) the certificate and key of spec. The handle lives
 * until pconf is cleared. On failure returns a sentence naming the file and what to fix. */
const char *tls_cert_load(tls_global_t *global, apr_pool_t *pconf, apr_pool_t *ptemp,
                          const tls_cert_spec_t *spec, mtls_certkey **ck);

/* The certificate and key of spec as tls_cert_load() loaded them earlier; NULL if it did
 * not. Only reads the cache, so a child may call it. */
mtls_certkey *tls_cert_loaded(const tls_global_t *global, apr_pool_t *p,
                              const tls_cert_spec_t *spec);

/* Whether any of the certificates covers host name `name` (wildcard patterns too). */
int tls_cert_covers(apr_pool_t *p, const apr_array_header_t *certkeys, const char *name);

/* A warning sentence when the certificate in cert_file has expired or expires within 30
 * days, NULL otherwise. */
const char *tls_cert_check_expiry(apr_pool_t *p, const mtls_certkey *ck, const char *cert_file);

/* A DER certificate as PEM text. */
const char *tls_cert_pem(apr_pool_t *p, const uint8_t *der, size_t der_len);

/* Reads a whole file into p (NUL-terminated); a sentence for the admin on failure. */
const char *tls_cert_read_file(apr_pool_t *p, const char *path, const char **data,
                               apr_size_t *len);

#endif

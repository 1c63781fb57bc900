/* tls_ocsp.h: OCSP stapling, with the responses another module (mod_md) fetches. */
#ifndef TLS_OCSP_H
#define TLS_OCSP_H

#include "tls_conn.h"

/* post_config: offers every certificate a vhost serves to ap_ssl_ocsp_prime; those a module
 * takes on get stapled. */
void tls_ocsp_prime(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *base);

/* Before a handshake with tc's settings: takes the current responses for their certificates
 * from the module, at most every TLS_OCSP_LOOK seconds per certificate and process. */
void tls_ocsp_update(tls_conn_t *tc);

#endif

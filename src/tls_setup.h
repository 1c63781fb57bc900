/* tls_setup.h: startup: TLS addresses, per-vhost rustls configs, the admin's checks. */
#ifndef TLS_SETUP_H
#define TLS_SETUP_H

#include "tls_conf.h"

/* Validates the configuration and builds every vhost's settings. Runs in check_config, so
 * `apache2 -t` reports the same errors as a start. Returns OK or !OK (errors logged). */
int tls_setup_check(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *base);

/* post_config, after other modules' own setup (mod_md's): the certificates they give
 * (ap_ssl_add_cert_files, or a stand-in for now) for the vhosts that serve TLS, first in
 * their list; the vhosts they change get their settings anew. OK or !OK (errors logged). */
int tls_setup_given(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *base);

/* Logs the startup warnings, once the error log is open. */
void tls_setup_warn(apr_pool_t *ptemp, server_rec *base);

/* The cipher suites of a policy in preference order (uint16_t ids, from p): the preferred
 * ones first, then rustls' defaults, less the suppressed ones. */
apr_array_header_t *tls_setup_suite_order(apr_pool_t *p, const tls_policy_t *policy);

/* Whether a connection to this local address is to be served with TLS. */
int tls_setup_is_tls_addr(const tls_global_t *global, const apr_sockaddr_t *local);

#endif

/* tls_clientauth.h: client certificates per vhost (TLSClientCA, TLSClientCertificate,
 * TLSClientCRL) and TLSUserName. */
#ifndef TLS_CLIENTAUTH_H
#define TLS_CLIENTAUTH_H

#include "tls_conf.h"

/* The part of a vhost's settings key that client authentication adds. */
const char *tls_clientauth_key(apr_pool_t *p, const tls_srv_conf_t *sc);

/* Checks the vhost's client settings and gives them to the builder. Returns a sentence for
 * the admin on failure. */
const char *tls_clientauth_configure(const tls_srv_conf_t *sc, mtls_server_config_builder *b,
                                     apr_pool_t *ptemp);

/* post_config: warns about CRLs past their nextUpdate. */
void tls_clientauth_warn(server_rec *base, apr_pool_t *ptemp);

/* access_checker: with TLSUserName, r->user comes from the certificate (for logs and CGI,
 * also when access is then denied). */
int tls_clientauth_access(request_rec *r);

/* check_authn: with TLSUserName, the certificate authenticates the user (no AuthType needed). */
int tls_clientauth_check_user(request_rec *r);

#endif

/* tls_var.h: what the rest of Apache may ask about our connections: is it TLS, the SSL_*
 * variables, the environment for CGI, and whether a request may use this connection. */
#ifndef TLS_VAR_H
#define TLS_VAR_H

#include <httpd.h>
#include <ap_expr.h>

int tls_var_conn_is_ssl(conn_rec *c);
const char *tls_var_lookup(apr_pool_t *p, server_rec *s, conn_rec *c, request_rec *r,
                           const char *name);
/* pre_config: the %{NAME}x LogFormat item, as mod_ssl users know it. */
void tls_var_register_log(apr_pool_t *p);
/* expr_lookup: %{SSL:NAME} and %{SSL_NAME} in expressions (<If>, Require expr, ...). */
int tls_var_expr_lookup(ap_expr_lookup_parms *parms);
/* fixups: HTTPS=on, plus the TLSOptions exports. */
int tls_var_fixups(request_rec *r);
/* http_scheme and default_port: "https" and 443 for our connections, so self-referring
 * URLs (redirects, ap_construct_url) come out right. */
const char *tls_var_http_scheme(const request_rec *r);
apr_port_t tls_var_default_port(const request_rec *r);
/* post_read_request: 421 when the request's vhost has other TLS settings. */
int tls_var_check_request(request_rec *r);

#endif

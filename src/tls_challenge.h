/* tls_challenge.h: tls-alpn-01 (RFC 8737), ACME's challenge in the TLS handshake. */
#ifndef TLS_CHALLENGE_H
#define TLS_CHALLENGE_H

#include "tls_conn.h"

/* The ALPN protocol of the challenge. */
#define TLS_CHALLENGE_ALPN "acme-tls/1"

/* ALPN chose the challenge protocol for this connection: the config that answers it with the
 * certificate a module (mod_md) made for tc->sni, made for this connection and freed with it;
 * the connection answers no request (tc->unavailable). NULL when no module answers. */
const mtls_server_config *tls_challenge_config(tls_conn_t *tc);

#endif

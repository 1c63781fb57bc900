/* tls_filter.h: the connection filters that move bytes between Apache's brigades and rustls. */
#ifndef TLS_FILTER_H
#define TLS_FILTER_H

#include "tls_conn.h"

void tls_filter_register(void);

/* create_request: marks an HTTP/1 request's response for TLS_OUT (see tls_filter.c). */
int tls_filter_create_request(request_rec *r);

/* Puts our input and output filters on the connection of tc. */
void tls_filter_add(tls_conn_t *tc);

/* Whether the peer has sent any byte yet. */
int tls_filter_in_started(const tls_conn_t *tc);

#endif

/* tls_filter.h: the connection filters that move bytes between Apache's brigades and rustls. */
#ifndef TLS_FILTER_H
#define TLS_FILTER_H

#include "tls_conn.h"

void tls_filter_register(void);

/* Puts our input and output filters on the connection of tc. */
void tls_filter_add(tls_conn_t *tc);

#endif

/* tls_filter.h: the connection filters that move bytes between Apache's brigades and rustls. */
#ifndef TLS_FILTER_H
#define TLS_FILTER_H

#include "tls_conn.h"

void tls_filter_register(void);

/* pre_close_connection: sends close_notify if the connection still stands. */
int tls_filter_pre_close(conn_rec *c);

/* Puts our input and output filters on the connection of tc. */
void tls_filter_add(tls_conn_t *tc);

#endif

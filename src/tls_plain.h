/* tls_plain.h: plain HTTP sent to a TLS address (someone typed http:// for an https port):
 * recognising it from the connection's first bytes, and the 400 that names the https:// URL
 * to use instead. The filter reads the bytes; this knows what they mean. */
#ifndef TLS_PLAIN_H
#define TLS_PLAIN_H

#include <httpd.h>

#define TLS_PLAIN_METHOD_MAX 20      /* longest method token taken for one ("BASELINE-CONTROL") */
#define TLS_PLAIN_SNIFF_MAX  (TLS_PLAIN_METHOD_MAX + 2)   /* bytes that always decide */
#define TLS_PLAIN_HEAD_MAX   8192    /* what is read of a plain request head, at most */

typedef enum {
    TLS_PLAIN_NOT,                   /* not plain HTTP: TLS, or garbage for rustls to refuse */
    TLS_PLAIN_MORE,                  /* too few bytes yet to tell */
    TLS_PLAIN_HTTP                   /* an HTTP request line starts here */
} tls_plain_e;

/* What the first len bytes of a connection are. Only bytes no TLS client starts with can be
 * HTTP, so a TLS connection is never taken for one. */
tls_plain_e tls_plain_sniff(const char *data, apr_size_t len);

/* Whether data holds a whole request head (or an HTTP/0.9 request line). */
int tls_plain_head_done(const char *data, apr_size_t len);

/* The whole 400 answer to the request head in data (what was read of it), in c->pool, and
 * the info line that tells of it. */
const char *tls_plain_answer(conn_rec *c, const char *data, apr_size_t len, apr_size_t *alen);

#endif

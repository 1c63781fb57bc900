/* tls_ticket.h: session ticket keys shared by all child processes (shared memory), by a
 * fleet (through the session cache) or by whoever has the same key file, and rotated. */
#ifndef TLS_TICKET_H
#define TLS_TICKET_H

#include "tls_conf.h"

/* pre_config: makes `Mutex tls-ticket-keys ...` known. */
void tls_ticket_register_mutex(apr_pool_t *pconf);

/* check_config: reads and checks the key file, makes the ticketer every config shares.
 * Returns a sentence for the admin on failure. */
const char *tls_ticket_create(tls_global_t *g, apr_pool_t *pconf, apr_pool_t *ptemp);

/* Gives the builder the ticketer, when tickets are on. */
void tls_ticket_configure(const tls_global_t *g, mtls_server_config_builder *b);

/* post_config: the shared memory with the first keys, and its mutex. */
apr_status_t tls_ticket_init(tls_global_t *g, apr_pool_t *pconf, server_rec *s);

void tls_ticket_child_init(tls_global_t *g, apr_pool_t *p, server_rec *s);

/* Before a handshake: rotates when due and brings this process' keys up to date. Costs an
 * atomic read when nothing changed. */
void tls_ticket_refresh(tls_global_t *g, conn_rec *c);

#endif

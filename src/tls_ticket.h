/* tls_ticket.h: session ticket keys shared by all child processes (shared memory), by a
 * fleet (through the session cache) or by whoever has the same key file, and rotated by a
 * mod_watchdog task in every child. */
#ifndef TLS_TICKET_H
#define TLS_TICKET_H

#include "tls_conf.h"

/* pre_config: makes `Mutex tls-ticket-keys ...` known. */
void tls_ticket_register_mutex(apr_pool_t *pconf);

/* check_config: reads and checks the key file, makes the ticketer every config shares.
 * Returns a sentence for the admin on failure, also when the keys need rotating and
 * mod_watchdog is not loaded. */
const char *tls_ticket_create(tls_global_t *g, apr_pool_t *pconf, apr_pool_t *ptemp);

/* Gives the builder the ticketer, when tickets are on. */
void tls_ticket_configure(const tls_global_t *g, mtls_server_config_builder *b);

/* post_config: the shared memory with the first keys, its mutex, and the watchdog task.
 * Must run before mod_watchdog's post_config. */
apr_status_t tls_ticket_init(tls_global_t *g, apr_pool_t *pconf, server_rec *s);

/* child_init: attaches the mutex; must run before mod_watchdog starts the task's thread. */
void tls_ticket_child_init(tls_global_t *g, apr_pool_t *p, server_rec *s);

/* Worker threads, before a handshake: installs the keys another child (or this child's
 * watchdog task) just put in shared memory, when they are newer than this process' ticketer
 * has. An atomic read and a compare when nothing changed; never a rotation or a cache round
 * trip, which the mod_watchdog task does. */
void tls_ticket_update(tls_global_t *g);

/* The ticket keys as the status page shows them. Read without the mutex: a page may show a
 * rotation half done, never wrong keys, since it shows none. */
typedef struct {
    const char *mode;          /* "off", "on", "shared", or "file" (TLSSessionTicketKeyFile) */
    apr_uint32_t generation;   /* of the keys in use; 0: none */
    apr_time_t rotated_at;     /* when the current key became current; 0: not known (file) */
    int alone;                 /* shared: the cache is out of reach, this server rotates alone */
} tls_ticket_state_t;

void tls_ticket_state(const tls_global_t *g, tls_ticket_state_t *st);

#endif

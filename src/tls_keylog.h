/* tls_keylog.h: SSLKEYLOGFILE, as mod_ssl has it: the TLS secrets of every connection,
 * incoming and to backends, appended to that file in the NSS key log format, so that
 * Wireshark can decrypt a capture. A debugging aid, off unless the variable is set in the
 * environment Apache starts in. */
#ifndef TLS_KEYLOG_H
#define TLS_KEYLOG_H

#include "tls_conf.h"

/* check_config, before any TLS config is built: when SSLKEYLOGFILE is set and Apache starts to
 * serve (not for `apache2 -t`), opens that file for appending, created with mode 0600, as the
 * user Apache starts as; the children inherit the descriptor after they dropped privileges.
 * A file it refuses (see tls_keylog.c) or cannot open leaves the log off, to be said at
 * post_config: the server starts anyway. */
void tls_keylog_open(tls_global_t *g, apr_pool_t *pconf);

/* post_config: the warning that secrets are being logged (at every start and restart), or the
 * error saying why they are not. */
void tls_keylog_warn(const tls_global_t *g, server_rec *s);

/* Point a config's secrets at the key log, when there is one; nothing otherwise. */
void tls_keylog_configure_server(const tls_global_t *g, mtls_server_config_builder *b);
void tls_keylog_configure_client(const tls_global_t *g, mtls_client_config_builder *b);

#endif

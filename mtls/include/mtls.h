/* mtls.h: the C side of the mtls bridge crate (mtls/src), mod_tls' only way to rustls.
 *
 * Conventions:
 * - All types are opaque handles. Whoever gets a handle from a *_new/_load/_build/_with_alpn
 *   call owns it and frees it with the matching *_free (NULL is allowed, twice is not).
 * - Fallible calls return an mtls_result; out-parameters are written only on MTLS_OK.
 * - Borrowed pointers returned by a call are valid as long as the handle they came from,
 *   and strings returned that way are NOT NUL-terminated (they come with a length).
 * - No call ever unwinds a Rust panic into C: it becomes MTLS_PANIC or a neutral value.
 * - Nothing here knows about Apache.
 */
#ifndef MTLS_H
#define MTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    MTLS_OK = 0,
    MTLS_WOULD_BLOCK = 7001,      /* needs more TLS input / no plaintext available yet */
    MTLS_EOF = 7002,              /* the peer sent close_notify */
    MTLS_NULL_PARAM = 7003,
    MTLS_PANIC = 7004,
    MTLS_INVALID = 7005,
    MTLS_HELLO = 7006,            /* ClientHello read: pick a config, call mtls_conn_start */
    MTLS_WRONG_PHASE = 7007,
    MTLS_BUFFER_TOO_SMALL = 7009, /* buf too small: the call says where the size needed is */

    MTLS_CERT_NONE = 7100,        /* admin's fault: certificates, keys, settings */
    MTLS_CERT_BAD = 7101,
    MTLS_KEY_NONE = 7102,
    MTLS_KEY_ENCRYPTED = 7103,
    MTLS_KEY_UNSUPPORTED = 7104,
    MTLS_KEY_MISMATCH = 7105,
    MTLS_CONFIG = 7106,

    MTLS_PEER_INVALID = 7200,     /* the peer's fault */
    MTLS_PEER_INCOMPATIBLE = 7201,
    MTLS_PEER_MISBEHAVED = 7202,
    MTLS_PEER_ALERT = 7203,
    MTLS_PEER_UNEXPECTED_EOF = 7204,
    MTLS_PEER_CERT = 7205,
    MTLS_PEER_BAD_SNI = 7206,     /* its SNI is no DNS host name: see mtls_conn_refused_sni */

    MTLS_ERROR = 7300
} mtls_result;

/* Whether r blames the peer (worth an info line) rather than this server. Every rustls error
 * a peer can cause is in the peer range (7200-7299). Codes travel as numbers: any value is
 * safe to pass. */
bool mtls_result_is_peer_fault(unsigned int r);
/* A generic text for r, NUL-terminated and truncated into buf. */
void mtls_result_text(unsigned int r, char *buf, size_t len);
/* "rustls/" and the exact rustls version this was built with, e.g. "rustls/0.23.26"; static. */
const char *mtls_version(void);

/* Cipher suites this build supports, by IANA id, in rustls' default preference order. */
size_t mtls_suites_count(void);
uint16_t mtls_suite_id(size_t i);

/* ---- certificate + key ------------------------------------------------------------------ */
typedef struct mtls_certkey mtls_certkey;

/* Loads a PEM chain (leaf first) and a PEM private key; err gets a sentence on failure. */
mtls_result mtls_certkey_load(const uint8_t *cert_pem, size_t cert_len,
                              const uint8_t *key_pem, size_t key_len,
                              mtls_certkey **out, char *err, size_t err_len);
void mtls_certkey_free(mtls_certkey *ck);
/* Whether the leaf is valid for DNS name `name` (NUL-terminated). */
bool mtls_certkey_covers_name(const mtls_certkey *ck, const char *name);
/* The leaf's notAfter, in seconds since the Unix epoch. */
mtls_result mtls_certkey_not_after(const mtls_certkey *ck, int64_t *secs);
/* Borrows the leaf's DER bytes. */
mtls_result mtls_certkey_leaf_der(const mtls_certkey *ck, const uint8_t **der, size_t *der_len);

/* ---- server config ---------------------------------------------------------------------- */
typedef struct mtls_server_config mtls_server_config;
typedef struct mtls_server_config_builder mtls_server_config_builder;

mtls_server_config_builder *mtls_server_config_builder_new(void);
/* The builder takes its own reference to ck. */
mtls_result mtls_server_config_builder_add_certkey(mtls_server_config_builder *b,
                                                   const mtls_certkey *ck);
/* 0x0303 (TLS 1.2 and up) or 0x0304 (TLS 1.3 only). */
mtls_result mtls_server_config_builder_set_min_version(mtls_server_config_builder *b,
                                                       uint16_t version);
/* Suites to offer in server preference order; every id must be supported (MTLS_INVALID). */
mtls_result mtls_server_config_builder_set_suites(mtls_server_config_builder *b,
                                                  const uint16_t *ids, size_t n);
mtls_result mtls_server_config_builder_set_honor_client_order(mtls_server_config_builder *b,
                                                              bool honor);
/* Session state callbacks. They run inside mtls_conn_start/mtls_conn_process with the
 * userdata given by mtls_conn_set_userdata. get: 0 and *out_len when found (it fits buf). */
typedef int (*mtls_session_get_cb)(void *userdata, const uint8_t *key, size_t key_len,
                                   uint8_t *buf, size_t buf_len, size_t *out_len);
typedef int (*mtls_session_put_cb)(void *userdata, const uint8_t *key, size_t key_len,
                                   const uint8_t *val, size_t val_len);
typedef void (*mtls_session_remove_cb)(void *userdata, const uint8_t *key, size_t key_len);
/* Server-side session state through the callbacks; all NULL: none at all. Without this call,
 * rustls keeps a small cache in each process. */
mtls_result mtls_server_config_builder_set_session_store(mtls_server_config_builder *b,
                                                         mtls_session_get_cb get,
                                                         mtls_session_put_cb put,
                                                         mtls_session_remove_cb remove);

/* Tickets: sealed (AES-256-GCM) with the first of the keys given, opened with any. */
typedef struct mtls_ticketer mtls_ticketer;
#define MTLS_TICKET_KEY_LEN 48       /* 16 bytes key name, 32 bytes AES key */
mtls_ticketer *mtls_ticketer_new(uint32_t lifetime_secs);
/* n keys of MTLS_TICKET_KEY_LEN bytes; the ticketer copies them. */
mtls_result mtls_ticketer_set_keys(const mtls_ticketer *t, const uint8_t *keys, size_t n);
/* Configs using the ticketer keep it alive. */
void mtls_ticketer_free(mtls_ticketer *t);
mtls_result mtls_server_config_builder_set_ticketer(mtls_server_config_builder *b,
                                                    const mtls_ticketer *t);

/* Client certificates, verified against the CAs in ca_pem and the CRLs in crl_pem (may be
 * empty) for the whole chain. required false: clients without a certificate get in, clients
 * with an invalid one do not. err gets a sentence on failure. */
mtls_result mtls_server_config_builder_set_client_auth(mtls_server_config_builder *b,
                                                       const uint8_t *ca_pem, size_t ca_len,
                                                       const uint8_t *crl_pem, size_t crl_len,
                                                       bool required, char *err, size_t err_len);
/* The earliest nextUpdate (Unix seconds) of the CRLs in crl_pem (webpki requires every CRL to
 * have one); 0 when crl_pem holds none. MTLS_CERT_BAD: a CRL does not parse. */
mtls_result mtls_crl_next_update(const uint8_t *crl_pem, size_t crl_len, int64_t *secs);

/* Consumes b, also on failure; err gets a sentence on failure. */
mtls_result mtls_server_config_builder_build(mtls_server_config_builder *b,
                                             const mtls_server_config **out,
                                             char *err, size_t err_len);
/* Only for a builder that is never built. */
void mtls_server_config_builder_free(mtls_server_config_builder *b);
/* A copy of base agreeing on ALPN protocol proto (len 0: no ALPN). */
mtls_result mtls_server_config_with_alpn(const mtls_server_config *base,
                                         const uint8_t *proto, size_t proto_len,
                                         const mtls_server_config **out);
/* Connections started with a config keep it alive by themselves. */
void mtls_server_config_free(const mtls_server_config *c);

/* ---- connection --------------------------------------------------------------------------
 * Life: mtls_conn_new; feed with mtls_conn_read_tls + mtls_conn_process until MTLS_HELLO;
 * look at mtls_conn_sni / mtls_conn_hello_alpn; then mtls_conn_start(config) or
 * mtls_conn_refuse(alert). After that: read_tls/process, read/write plaintext, write_tls out.
 * After any error, send what mtls_conn_write_tls still gives (the alert), then close.
 *
 * One owner: a connection is not synchronised, and every call on it (the const ones too)
 * must come from the thread that owns it at that moment. mod_tls' owner is the connection's
 * filter chain; anything another thread needs (HTTP/2 requests) is copied out once when the
 * handshake completes. Pointers it lends (SNI, ALPN, peer certificates) are to be copied
 * before the next call that takes a non-const conn. */
typedef struct mtls_conn mtls_conn;

mtls_conn *mtls_conn_new(void);
/* What the session callbacks get as userdata for this connection. */
void mtls_conn_set_userdata(mtls_conn *conn, void *userdata);
void mtls_conn_free(mtls_conn *conn);
/* len 0 tells of the transport's EOF. *n_read < len only when rustls holds all it will
 * unprocessed: process, then offer the rest. */
mtls_result mtls_conn_read_tls(mtls_conn *conn, const uint8_t *buf, size_t len, size_t *n_read);
mtls_result mtls_conn_process(mtls_conn *conn);
/* The SNI host name (borrowed, not NUL-terminated); *len 0 when the client sent none. An IP
 * address sent as SNI counts as none (rustls drops it). */
mtls_result mtls_conn_sni(const mtls_conn *conn, const char **name, size_t *len);
/* After mtls_conn_process returned MTLS_PEER_BAD_SNI (rustls refused the ClientHello with a
 * decode_error alert, already queued): the server name the client sent, exactly as sent.
 * Any bytes, NUL and control characters included, and up to 65535 of them: escape and bound
 * it before showing it. Borrowed, not NUL-terminated, valid until conn is freed. MTLS_INVALID
 * when there is none. */
mtls_result mtls_conn_refused_sni(const mtls_conn *conn, const uint8_t **name, size_t *len);
size_t mtls_conn_hello_alpn_count(const mtls_conn *conn);
mtls_result mtls_conn_hello_alpn(const mtls_conn *conn, size_t i,
                                 const uint8_t **proto, size_t *len);
mtls_result mtls_conn_start(mtls_conn *conn, const mtls_server_config *config);
/* A fatal alert instead of a handshake, e.g. 112 (unrecognized_name). */
mtls_result mtls_conn_refuse(mtls_conn *conn, uint8_t alert_description);
bool mtls_conn_wants_write(const mtls_conn *conn);
mtls_result mtls_conn_write_tls(mtls_conn *conn, uint8_t *buf, size_t len, size_t *n_written);
bool mtls_conn_is_handshaking(const mtls_conn *conn);
/* MTLS_OK with *n_read > 0, MTLS_WOULD_BLOCK, MTLS_EOF or MTLS_PEER_UNEXPECTED_EOF. */
mtls_result mtls_conn_read(mtls_conn *conn, uint8_t *buf, size_t len, size_t *n_read);
/* The peer has nothing more to send for now: rustls may shrink its receive buffer. */
void mtls_conn_shrink(mtls_conn *conn);
/* Encrypts application data given as n pieces, as one stream: small pieces share records,
 * uncopied. *n_taken (over all pieces) < their sum when rustls' send buffer is full: drain
 * it with mtls_conn_write_tls, offer the rest again. */
mtls_result mtls_conn_writev(mtls_conn *conn, const uint8_t *const *bufs, const size_t *lens,
                             size_t n, size_t *n_taken);
void mtls_conn_send_close_notify(mtls_conn *conn);
uint16_t mtls_conn_protocol_version(const mtls_conn *conn);
uint16_t mtls_conn_cipher_suite(const mtls_conn *conn);
bool mtls_conn_is_resumed(const mtls_conn *conn);
/* Which certificate (order added to the config) this client got; -1 if none. */
int32_t mtls_conn_certkey_index(const mtls_conn *conn);
/* The client's certificates (0: its own, then its chain), borrowed while conn lives. */
size_t mtls_conn_peer_cert_count(const mtls_conn *conn);
mtls_result mtls_conn_peer_cert(const mtls_conn *conn, size_t i,
                                const uint8_t **der, size_t *der_len);
/* The last error's detail, NUL-terminated into buf. */
void mtls_conn_error(const mtls_conn *conn, char *buf, size_t len);

/* ---- certificate fields --------------------------------------------------------------- */
/* A field by its variable name without the SSL_CLIENT_/SSL_SERVER_ prefix ("S_DN", "S_DN_CN",
 * "I_DN_O", "M_SERIAL", "M_VERSION", "V_START", "V_END", "V_REMAIN", "A_SIG", "A_KEY",
 * "SAN_DNS_0", "SAN_Email_0", ...), formatted as mod_ssl formats it, NUL-terminated into buf.
 * "ENV" gives all that mod_ssl's StdEnvVars exports, as "NAME\tvalue\n" lines. Every value is
 * escaped as mod_ssl escapes names (a control character as "\\XX": a NUL is "\\00", a newline
 * "\\0A"; a backslash doubled), so none holds a NUL, tab or newline: *out_len == strlen(buf).
 * now (Unix seconds) is for V_REMAIN. MTLS_INVALID: no such field in this certificate.
 * MTLS_BUFFER_TOO_SMALL: *out_len says how long the value is (buf needs one more byte). */
mtls_result mtls_x509_field(const uint8_t *der, size_t der_len, const char *name, int64_t now,
                            char *buf, size_t buf_len, size_t *out_len);

#endif /* MTLS_H */

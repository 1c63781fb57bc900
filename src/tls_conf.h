/* tls_conf.h: mod_tls' directives and the per-server / per-directory settings they fill. */
#ifndef TLS_CONF_H
#define TLS_CONF_H

#include <apr_hash.h>
#include <httpd.h>
#include <http_config.h>

#include "mtls.h"

#define TLS_UNSET (-1)

/* Where a directive stood, so later checks can point the admin at it. */
typedef struct {
    const char *file;
    unsigned line;
} tls_where_t;

/* One `TLSEngine [address:]port`. */
typedef struct {
    const char *spec;        /* as written, for messages */
    apr_sockaddr_t *addr;    /* NULL: any address with this port */
    apr_port_t port;
    tls_where_t where;
} tls_engine_t;

/* One `TLSCertificate cert [key]`, paths already made absolute; or a certificate another
 * module gave (mod_md), from then standing where its server is defined. */
typedef struct {
    const char *cert_file;
    const char *key_file;    /* NULL: the key is in cert_file */
    tls_where_t where;
    const char *from;        /* NULL: the TLSCertificate line at where; else what gave it */
} tls_cert_spec_t;

typedef struct tls_staple tls_staple_t;

/* The rustls side of a vhost's settings, built at startup and shared by every vhost whose
 * settings are the same (which is also what allows a request to such a vhost on the
 * connection: see tls_var.c's 421 check). */
typedef struct {
    const char *key;                   /* the settings as text; equal text, equal settings */
    apr_array_header_t *certkeys;      /* mtls_certkey*, in the order served (see
                                        * tls_setup.c's certificates()) */
    apr_array_header_t *cert_files;    /* const char*: the file of each of certkeys */
    int fallback;                      /* only a stand-in certificate (mod_md's, before it
                                        * has one): every request gets 503 */
    apr_array_header_t *staples;       /* tls_staple_t*, one per certkeys, NULL where not
                                        * stapled; filled in post_config (tls_ocsp.c) */
    const mtls_server_config *config;  /* no ALPN */
    apr_hash_t *by_alpn;               /* protocol name -> mtls_server_config* */
} tls_settings_t;

/* Where one server's TLSCiphersPrefer or TLSCiphersSuppress lines named suites, and where
 * they said `default`/`none` instead, so that the two are not mixed. */
typedef struct {
    tls_where_t names_at;    /* the first line naming suites; file NULL: none */
    tls_where_t none_at;     /* the `default`/`none` line; file NULL: none */
    const char *none_word;   /* as written on that line */
} tls_cipher_lines_t;

/* The protocol versions and cipher suites a config allows: TLSProtocol, TLSCiphersPrefer and
 * TLSCiphersSuppress for the vhosts, their TLSProxy* twins for the backends. */
typedef struct {
    int min_version;                   /* 0x0303 or 0x0304; TLS_UNSET: TLS 1.2 */
    apr_array_header_t *prefer;        /* uint16_t suite ids; NULL: unset, empty: `default` */
    apr_array_header_t *suppress;      /* uint16_t suite ids; NULL: unset, empty: `none` */
    tls_cipher_lines_t prefer_lines;   /* only while reading the config: not merged */
    tls_cipher_lines_t suppress_lines; /* the same */
} tls_policy_t;

typedef enum {
    TLS_CLIENT_NONE = 0,
    TLS_CLIENT_OPTIONAL = 1,
    TLS_CLIENT_REQUIRED = 2
} tls_client_e;

typedef enum {
    TLS_TICKETS_OFF = 0,
    TLS_TICKETS_ON = 1,          /* keys shared by this server's processes */
    TLS_TICKETS_SHARED = 2       /* keys shared through the session cache (a fleet) */
} tls_tickets_e;

/* TLS to backends: the TLSProxy* settings of a section (server, vhost, <Proxy>, <Location>,
 * <Directory>), merged field by field like the rest. */
typedef struct {
    int engine;                        /* TLSProxyEngine; TLS_UNSET: off */
    tls_where_t engine_where;          /* that line */
    const char *ca;                    /* TLSProxyCA file, absolute; NULL: unset, the system
                                        * bundle (TLS_PROXY_CA_SYSTEM) */
    tls_where_t ca_where;
    tls_policy_t policy;               /* TLSProxyProtocol, TLSProxyCiphers* */
    apr_array_header_t *machine_certs; /* tls_cert_spec_t; NULL: unset */
    const char *peer_name;             /* TLSProxyPeerName; NULL: the name mod_proxy gives */
} tls_proxy_conf_t;

/* A section with TLSProxy* lines, and the server it stands in, so that startup can build
 * what it merges into. */
typedef struct {
    server_rec *server;
    const tls_proxy_conf_t *conf;
} tls_proxy_section_t;

/* Debian's bundle of the CAs the system trusts (package ca-certificates). */
#define TLS_PROXY_CA_SYSTEM "/etc/ssl/certs/ca-certificates.crt"

typedef struct tls_cache tls_cache_t;
typedef struct tls_tickets tls_tickets_t;
typedef struct tls_keylog tls_keylog_t;

/* Module-wide state, one per configuration cycle, shared by all server configs. */
typedef struct {
    apr_array_header_t *engines;       /* tls_engine_t */
    apr_hash_t *settings;              /* key text -> tls_settings_t* */
    apr_hash_t *certkeys;              /* "cert\nkey" -> mtls_certkey*, loaded once */
    apr_hash_t *standins;              /* certificate files other modules gave as stand-ins */
    apr_array_header_t *warnings;      /* sentences to log once the error log is open */
    const char *cache_spec;            /* TLSSessionCache; NULL: default */
    tls_where_t cache_where;
    int cache_timeout;                 /* seconds; TLS_UNSET: 300 */
    int tickets;                       /* tls_tickets_e; TLS_UNSET: on */
    tls_where_t tickets_where;
    const char *ticket_key_file;       /* NULL: keys made and rotated here */
    tls_where_t ticket_key_where;
    int ticket_rotation;               /* seconds; TLS_UNSET: 12 hours */
    apr_array_header_t *proxy_confs;   /* tls_proxy_section_t: sections with TLSProxy* lines */
    struct tls_proxy_state *proxy;     /* outgoing TLS, private to tls_proxy.c */
    tls_cache_t *cache;                /* NULL: no shared session cache */
    tls_tickets_t *ticket_keys;        /* NULL: no tickets */
    tls_keylog_t *keylog;              /* NULL: SSLKEYLOGFILE unset (see tls_keylog.c) */
} tls_global_t;

typedef struct {
    tls_global_t *global;
    apr_array_header_t *certs;         /* tls_cert_spec_t; NULL: unset */
    tls_policy_t policy;
    int honor_client_order;            /* TLS_UNSET: on */
    int strict_sni;                    /* TLS_UNSET: on */
    const char *client_ca;             /* TLSClientCA file; NULL: unset */
    int client_mode;                   /* tls_client_e; TLS_UNSET: none */
    tls_where_t client_where;          /* the TLSClientCertificate line */
    apr_array_header_t *client_crls;   /* TLSClientCRL files; NULL: unset */
    int serves_tls;                    /* set by tls_setup: a TLS address serves this one */
    const tls_settings_t *settings;    /* filled by tls_setup; NULL: not serving TLS (or not
                                        * yet: certificates other modules give come in
                                        * post_config) */
} tls_srv_conf_t;

typedef struct {
    tls_proxy_conf_t proxy;
    int std_env_vars;                  /* TLS_UNSET: off */
    int export_cert_data;              /* TLS_UNSET: off */
    const char *user_name;             /* TLSUserName variable; NULL: unset */
} tls_dir_conf_t;

extern module AP_MODULE_DECLARE_DATA tls_module;
extern const command_rec tls_conf_cmds[];

void *tls_conf_create_srv(apr_pool_t *p, server_rec *s);
void *tls_conf_merge_srv(apr_pool_t *p, void *basev, void *addv);
void *tls_conf_create_dir(apr_pool_t *p, char *dir);
void *tls_conf_merge_dir(apr_pool_t *p, void *basev, void *addv);

/* n = base with what add sets over it, field by field. */
void tls_conf_merge_proxy(tls_proxy_conf_t *n, const tls_proxy_conf_t *base,
                          const tls_proxy_conf_t *add);

tls_srv_conf_t *tls_conf_srv_get(server_rec *s);
tls_dir_conf_t *tls_conf_dir_get(request_rec *r);

/* Effective values, defaults applied. */
int tls_conf_strict_sni(const tls_srv_conf_t *sc);
int tls_conf_honor_client_order(const tls_srv_conf_t *sc);
int tls_conf_min_version(const tls_policy_t *policy);
/* A TLSProtocol / TLSProxyProtocol value: the lowest version it allows (0x0303 or 0x0304), or 0
 * when it is not one; `*legacy` is set for the TLS 1.0 and 1.1 spellings, which get TLS 1.2
 * and deserve a warning. Pure, apart from the directive so that the fuzzer reaches it. */
int tls_conf_parse_protocol(const char *arg, int *legacy);
int tls_conf_client_mode(const tls_srv_conf_t *sc);
int tls_conf_cache_timeout(const tls_global_t *g);
int tls_conf_tickets(const tls_global_t *g);
int tls_conf_ticket_rotation(const tls_global_t *g);

#endif

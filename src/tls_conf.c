/* tls_conf.c: the TLS* directives. Values start unset and merge field by field, so a vhost
 * inherits exactly what it does not say itself; defaults live in the tls_conf_* getters. */
#include <httpd.h>
#include <stdlib.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <http_log.h>

#include "tls_cipher.h"
#include "tls_conf.h"

APLOG_USE_MODULE(tls);

/* The main server's config is created first in each configuration cycle (reading the
 * config is single-threaded); the vhosts parsed after it share its global state. */
static tls_global_t *cycle_global;

void *tls_conf_create_srv(apr_pool_t *p, server_rec *s)
{
    tls_srv_conf_t *sc = apr_pcalloc(p, sizeof(*sc));

    if (!s->is_virtual || !cycle_global) {
        cycle_global = apr_pcalloc(p, sizeof(*cycle_global));
        cycle_global->engines = apr_array_make(p, 4, sizeof(tls_engine_t));
        cycle_global->settings = apr_hash_make(p);
        cycle_global->certkeys = apr_hash_make(p);
        cycle_global->standins = apr_hash_make(p);
        cycle_global->warnings = apr_array_make(p, 4, sizeof(const char *));
        cycle_global->proxy_confs = apr_array_make(p, 4, sizeof(tls_proxy_section_t));
        cycle_global->cache_timeout = TLS_UNSET;
        cycle_global->tickets = TLS_UNSET;
        cycle_global->ticket_rotation = TLS_UNSET;
    }
    sc->global = cycle_global;
    sc->policy.min_version = TLS_UNSET;
    sc->honor_client_order = TLS_UNSET;
    sc->strict_sni = TLS_UNSET;
    sc->client_mode = TLS_UNSET;
    return sc;
}

#define MERGE_INT(f) n->f = (add->f != TLS_UNSET) ? add->f : base->f
#define MERGE_PTR(f) n->f = add->f ? add->f : base->f

static void merge_policy(tls_policy_t *n, const tls_policy_t *base, const tls_policy_t *add)
{
    MERGE_INT(min_version);
    MERGE_PTR(prefer);
    MERGE_PTR(suppress);
}

void *tls_conf_merge_srv(apr_pool_t *p, void *basev, void *addv)
{
    tls_srv_conf_t *base = basev, *add = addv, *n = apr_pcalloc(p, sizeof(*n));

    MERGE_PTR(global);
    /* The main server's certificates are the default only for vhosts without any. */
    MERGE_PTR(certs);
    merge_policy(&n->policy, &base->policy, &add->policy);
    MERGE_INT(honor_client_order);
    MERGE_INT(strict_sni);
    MERGE_PTR(client_ca);
    MERGE_INT(client_mode);
    n->client_where = add->client_mode != TLS_UNSET ? add->client_where : base->client_where;
    MERGE_PTR(client_crls);
    return n;
}

void *tls_conf_create_dir(apr_pool_t *p, char *dir)
{
    tls_dir_conf_t *dc = apr_pcalloc(p, sizeof(*dc));

    (void)dir;
    dc->proxy.engine = TLS_UNSET;
    dc->proxy.policy.min_version = TLS_UNSET;
    dc->std_env_vars = TLS_UNSET;
    dc->export_cert_data = TLS_UNSET;
    return dc;
}

void tls_conf_merge_proxy(tls_proxy_conf_t *n, const tls_proxy_conf_t *base,
                          const tls_proxy_conf_t *add)
{
    MERGE_INT(engine);
    n->engine_where = add->engine != TLS_UNSET ? add->engine_where : base->engine_where;
    MERGE_PTR(ca);
    n->ca_where = add->ca ? add->ca_where : base->ca_where;
    merge_policy(&n->policy, &base->policy, &add->policy);
    MERGE_PTR(machine_certs);
    MERGE_PTR(peer_name);
}

void *tls_conf_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    tls_dir_conf_t *base = basev, *add = addv, *n = apr_pcalloc(p, sizeof(*n));

    tls_conf_merge_proxy(&n->proxy, &base->proxy, &add->proxy);
    MERGE_INT(std_env_vars);
    MERGE_INT(export_cert_data);
    MERGE_PTR(user_name);
    return n;
}

tls_srv_conf_t *tls_conf_srv_get(server_rec *s)
{
    return ap_get_module_config(s->module_config, &tls_module);
}

tls_dir_conf_t *tls_conf_dir_get(request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &tls_module);
}

int tls_conf_strict_sni(const tls_srv_conf_t *sc)
{
    return sc->strict_sni != 0;
}

int tls_conf_honor_client_order(const tls_srv_conf_t *sc)
{
    return sc->honor_client_order != 0;
}

int tls_conf_min_version(const tls_policy_t *policy)
{
    return policy->min_version == TLS_UNSET ? 0x0303 : policy->min_version;
}

int tls_conf_client_mode(const tls_srv_conf_t *sc)
{
    return sc->client_mode == TLS_UNSET ? TLS_CLIENT_NONE : sc->client_mode;
}

int tls_conf_cache_timeout(const tls_global_t *g)
{
    return g->cache_timeout == TLS_UNSET ? 300 : g->cache_timeout;
}

int tls_conf_tickets(const tls_global_t *g)
{
    return g->tickets == TLS_UNSET ? TLS_TICKETS_ON : g->tickets;
}

int tls_conf_ticket_rotation(const tls_global_t *g)
{
    return g->ticket_rotation == TLS_UNSET ? 12 * 3600 : g->ticket_rotation;
}

static tls_where_t where_of(cmd_parms *cmd)
{
    tls_where_t w = { cmd->directive->filename, cmd->directive->line_num };
    return w;
}

/* The module-wide settings, for directives that belong outside any <VirtualHost>. */
static const char *global_of(cmd_parms *cmd, tls_global_t **g)
{
    *g = tls_conf_srv_get(cmd->server)->global;
    return ap_check_cmd_context(cmd, GLOBAL_ONLY);
}

static const char *set_engine(cmd_parms *cmd, void *dc, const char *arg)
{
    /* Module-wide wherever it stands: the earlier mod_tls took it inside <VirtualHost> too,
     * and an address is TLS for every vhost on it or for none. */
    tls_global_t *g = tls_conf_srv_get(cmd->server)->global;
    tls_engine_t *e;
    char *host = NULL, *scope = NULL;
    apr_port_t port = 0;
    apr_status_t rv;

    (void)dc;
    rv = apr_parse_addr_port(&host, &scope, &port, arg, cmd->pool);
    if (rv != APR_SUCCESS || port == 0 || scope) {
        return apr_psprintf(cmd->pool, "TLSEngine '%s': give a port or address:port, "
                            "like 443 or 192.0.2.1:443 or [::1]:443", arg);
    }
    e = apr_array_push(g->engines);
    e->spec = arg;
    e->port = port;
    e->where = where_of(cmd);
    e->addr = NULL;
    if (host && strcmp(host, "*")) {
        rv = apr_sockaddr_info_get(&e->addr, host, APR_UNSPEC, port, 0, cmd->pool);
        if (rv != APR_SUCCESS) {
            return apr_psprintf(cmd->pool, "TLSEngine '%s': cannot resolve address '%s'",
                                arg, host);
        }
    }
    return NULL;
}

static const char *check_readable(cmd_parms *cmd, const char *directive, const char *what,
                                  const char *path)
{
    apr_file_t *f;
    apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_READ, 0, cmd->temp_pool);
    char buf[256];

    if (rv != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: cannot read the %s file '%s' (%s); "
                            "check the path and its permissions", directive, what, path,
                            apr_strerror(rv, buf, sizeof(buf)));
    }
    apr_file_close(f);
    return NULL;
}

static const char *set_certificate(cmd_parms *cmd, void *dc, const char *cert, const char *key)
{
    tls_srv_conf_t *sc = tls_conf_srv_get(cmd->server);
    tls_cert_spec_t *spec;
    const char *err;

    (void)dc;
    if (!sc->certs) {
        sc->certs = apr_array_make(cmd->pool, 2, sizeof(tls_cert_spec_t));
    }
    spec = apr_array_push(sc->certs);
    spec->cert_file = ap_server_root_relative(cmd->pool, cert);
    spec->key_file = key ? ap_server_root_relative(cmd->pool, key) : NULL;
    spec->where = where_of(cmd);
    if (!spec->cert_file || (key && !spec->key_file)) {
        return "TLSCertificate: invalid file path";
    }
    if ((err = check_readable(cmd, "TLSCertificate", "certificate", spec->cert_file))) {
        return err;
    }
    return spec->key_file ? check_readable(cmd, "TLSCertificate", "key", spec->key_file) : NULL;
}

/* The section's settings for backends, remembered (once) with the server it stands in, so
 * that startup builds the client config each merges into. */
static tls_proxy_conf_t *proxy_of(cmd_parms *cmd, void *dcv)
{
    tls_global_t *g = tls_conf_srv_get(cmd->server)->global;
    tls_dir_conf_t *dc = dcv;
    tls_proxy_section_t *sec;
    int i;

    for (i = 0; i < g->proxy_confs->nelts; ++i) {
        if (APR_ARRAY_IDX(g->proxy_confs, i, tls_proxy_section_t).conf == &dc->proxy) {
            return &dc->proxy;
        }
    }
    sec = apr_array_push(g->proxy_confs);
    sec->server = cmd->server;
    sec->conf = &dc->proxy;
    return &dc->proxy;
}

/* The policy a directive fills: the vhost's, or for a TLSProxy* twin (cmd->info set) the
 * section's, for its backends. */
static tls_policy_t *policy_of(cmd_parms *cmd, void *dc)
{
    return cmd->info ? &proxy_of(cmd, dc)->policy : &tls_conf_srv_get(cmd->server)->policy;
}

int tls_conf_parse_protocol(const char *arg, int *legacy)
{
    const char *v = arg;

    *legacy = 0;
    if (!strcasecmp(arg, "default")) {
        return 0x0303;
    }
    if (!strncasecmp(v, "TLS", 3)) {
        v += 3;
    }
    if (!strcasecmp(v, "v1.2+") || !strcasecmp(v, "v0x0303+")) {
        return 0x0303;
    }
    if (!strcasecmp(v, "v1.3+") || !strcasecmp(v, "v0x0304+")) {
        return 0x0304;
    }
    if (!strcasecmp(v, "v1.0+") || !strcasecmp(v, "v1.1+") || !strcasecmp(v, "v0x0301+")
        || !strcasecmp(v, "v0x0302+")) {
        /* Configurations for the earlier mod_tls may ask for these; it served TLS 1.2 and
         * up instead, and so does this one: asking for less gets no less. */
        *legacy = 1;
        return 0x0303;
    }
    return 0;
}

static const char *set_protocol(cmd_parms *cmd, void *dc, const char *arg)
{
    tls_srv_conf_t *sc = tls_conf_srv_get(cmd->server);
    tls_policy_t *policy = policy_of(cmd, dc);
    int legacy, version = tls_conf_parse_protocol(arg, &legacy);

    if (!version) {
        return apr_psprintf(cmd->pool, "%s '%s' is not known or not safe: use "
                            "'default' (TLS 1.2 and 1.3), 'TLSv1.2+' or 'TLSv1.3+' "
                            "(TLS 1.0 and 1.1 are not offered)", cmd->cmd->name, arg);
    }
    policy->min_version = version;
    if (legacy) {
        APR_ARRAY_PUSH(sc->global->warnings, const char *) = apr_psprintf(cmd->pool,
            "%s:%d: %s %s: TLS 1.0 and 1.1 are never offered, so TLS 1.2 is the "
            "minimum here; write '%s default' to silence this warning",
            cmd->directive->filename, cmd->directive->line_num, cmd->cmd->name, arg,
            cmd->cmd->name);
    }
    return NULL;
}

/* What TLSCiphersPrefer and TLSCiphersSuppress tell the admin differently. */
typedef struct {
    const char *none_means;    /* what `default`/`none` stands for */
    const char *unoffered;     /* the end of the warning for a suite rustls lacks */
} tls_cipher_directive_t;

static const tls_cipher_directive_t CIPHERS_PREFER = {
    "no preference", "so it cannot be preferred; the name is ignored"
};
static const tls_cipher_directive_t CIPHERS_SUPPRESS = {
    "nothing suppressed", "so there is nothing to suppress; the name is harmless and ignored"
};

static const char *ciphers_mixed(cmd_parms *cmd, const tls_cipher_directive_t *d,
                                 const char *word, const tls_where_t *other)
{
    tls_where_t here = where_of(cmd);
    const char *also = "";

    if (other->line != here.line || strcmp(other->file, here.file)) {
        also = apr_psprintf(cmd->pool, " (the other part is at %s:%u)", other->file,
                            other->line);
    }
    return apr_psprintf(cmd->pool, "%s: '%s' means %s and cannot be combined with suite "
                        "names%s; keep either '%s %s' or the names", cmd->cmd->name, word,
                        d->none_means, also, cmd->cmd->name, word);
}

/* One name of a TLSCiphersPrefer/Suppress line. `default` or `none` alone is an explicitly
 * empty list, so that a vhost can undo what the main server says (merging goes by pointer). */
static const char *add_cipher(cmd_parms *cmd, const tls_cipher_directive_t *d,
                              apr_array_header_t **ids, tls_cipher_lines_t *lines,
                              const char *arg)
{
    tls_srv_conf_t *sc = tls_conf_srv_get(cmd->server);
    apr_array_header_t *unsupported = apr_array_make(cmd->temp_pool, 2, sizeof(const char *));
    const char *err;
    int i;

    if (!strcasecmp(arg, "default") || !strcasecmp(arg, "none")) {
        if (lines->names_at.file) {
            return ciphers_mixed(cmd, d, arg, &lines->names_at);
        }
        lines->none_at = where_of(cmd);
        lines->none_word = arg;
        if (!*ids) {
            *ids = apr_array_make(cmd->pool, 1, sizeof(uint16_t));
        }
        return NULL;
    }
    if (lines->none_at.file) {
        return ciphers_mixed(cmd, d, lines->none_word, &lines->none_at);
    }
    if (!lines->names_at.file) {
        lines->names_at = where_of(cmd);
    }
    if (!*ids) {
        *ids = apr_array_make(cmd->pool, 8, sizeof(uint16_t));
    }
    err = tls_cipher_parse_list(cmd->pool, arg, *ids, unsupported);
    if (err) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", err, NULL);
    }
    for (i = 0; i < unsupported->nelts; ++i) {
        APR_ARRAY_PUSH(sc->global->warnings, const char *) = apr_psprintf(
            cmd->pool, "%s:%d: %s: %s is never offered by mod_tls (rustls does not implement "
            "it), %s", cmd->directive->filename, cmd->directive->line_num, cmd->cmd->name,
            APR_ARRAY_IDX(unsupported, i, const char *), d->unoffered);
    }
    return NULL;
}

/* One word of the line: names may also be separated by colons, as in OpenSSL. */
static const char *add_ciphers(cmd_parms *cmd, const tls_cipher_directive_t *d,
                               apr_array_header_t **ids, tls_cipher_lines_t *lines,
                               const char *arg)
{
    char *rest = apr_pstrdup(cmd->pool, arg), *name;
    const char *err;

    while ((name = apr_strtok(rest, ":", &rest)) != NULL) {
        if ((err = add_cipher(cmd, d, ids, lines, name))) {
            return err;
        }
    }
    return NULL;
}

static const char *set_prefer(cmd_parms *cmd, void *dc, const char *arg)
{
    tls_policy_t *policy = policy_of(cmd, dc);

    return add_ciphers(cmd, &CIPHERS_PREFER, &policy->prefer, &policy->prefer_lines, arg);
}

static const char *set_suppress(cmd_parms *cmd, void *dc, const char *arg)
{
    tls_policy_t *policy = policy_of(cmd, dc);

    return add_ciphers(cmd, &CIPHERS_SUPPRESS, &policy->suppress, &policy->suppress_lines, arg);
}

static const char *set_honor_order(cmd_parms *cmd, void *dc, int flag)
{
    (void)dc;
    tls_conf_srv_get(cmd->server)->honor_client_order = flag;
    return NULL;
}

static const char *set_strict_sni(cmd_parms *cmd, void *dc, int flag)
{
    (void)dc;
    tls_conf_srv_get(cmd->server)->strict_sni = flag;
    return NULL;
}

/* As SSLOptions (and the earlier mod_tls) have it: +name and -name change what the section
 * inherits; the first name without a sign starts the line from all options off, so
 * `TLSOptions StdEnvVars` means exactly that one. `Defaults` is all off. */
static const char *set_options(cmd_parms *cmd, void *dcv, const char *args)
{
    tls_dir_conf_t *dc = dcv;
    const char *word, *name;
    int value, reset = 0, *field;

    while (*(word = ap_getword_conf(cmd->temp_pool, &args))) {
        name = word;
        value = 1;
        if (*name == '+' || *name == '-') {
            value = (*name == '+');
            ++name;
        }
        else if (!reset) {
            dc->std_env_vars = dc->export_cert_data = 0;
            reset = 1;
        }
        if (!strcasecmp(name, "StdEnvVars")) {
            field = &dc->std_env_vars;
        }
        else if (!strcasecmp(name, "ExportCertData")) {
            field = &dc->export_cert_data;
        }
        else if (!strcasecmp(name, "Defaults") && name == word) {
            continue;
        }
        else {
            return apr_psprintf(cmd->pool, "TLSOptions: unknown option '%s'; known are "
                                "StdEnvVars and ExportCertData, with + or -, and Defaults "
                                "(all off)", word);
        }
        *field = value;
    }
    return NULL;
}

/* A number of seconds for a module-wide setting, from min up to 30 days. */
static const char *set_seconds(cmd_parms *cmd, const char *arg, int min, int *field)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (*end || end == arg || v < min || v > 30 * 86400) {
        return apr_psprintf(cmd->pool, "%s '%s': give a number of seconds, at least %d",
                            cmd->cmd->name, arg, min);
    }
    *field = (int)v;
    return NULL;
}

static const char *set_cache(cmd_parms *cmd, void *dc, const char *arg)
{
    tls_global_t *g;
    const char *err = global_of(cmd, &g);

    (void)dc;
    if (err) {
        return err;
    }
    g->cache_spec = arg;
    g->cache_where = where_of(cmd);
    return NULL;
}

static const char *set_cache_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    tls_global_t *g;
    const char *err = global_of(cmd, &g);

    (void)dc;
    return err ? err : set_seconds(cmd, arg, 1, &g->cache_timeout);
}

static const char *set_tickets(cmd_parms *cmd, void *dc, const char *arg)
{
    tls_global_t *g;
    const char *err = global_of(cmd, &g);

    (void)dc;
    if (err) {
        return err;
    }
    if (!strcasecmp(arg, "on")) {
        g->tickets = TLS_TICKETS_ON;
    }
    else if (!strcasecmp(arg, "off")) {
        g->tickets = TLS_TICKETS_OFF;
    }
    else if (!strcasecmp(arg, "shared")) {
        g->tickets = TLS_TICKETS_SHARED;
    }
    else {
        return "TLSSessionTickets: use on, off or shared";
    }
    g->tickets_where = where_of(cmd);
    return NULL;
}

static const char *set_ticket_key_file(cmd_parms *cmd, void *dc, const char *arg)
{
    tls_global_t *g;
    const char *err = global_of(cmd, &g);

    (void)dc;
    if (err) {
        return err;
    }
    g->ticket_key_file = ap_server_root_relative(cmd->pool, arg);
    g->ticket_key_where = where_of(cmd);
    return g->ticket_key_file ? NULL : "TLSSessionTicketKeyFile: invalid file path";
}

static const char *set_ticket_rotation(cmd_parms *cmd, void *dc, const char *arg)
{
    tls_global_t *g;
    const char *err = global_of(cmd, &g);

    (void)dc;
    return err ? err : set_seconds(cmd, arg, 1, &g->ticket_rotation);
}

static const char *set_client_ca(cmd_parms *cmd, void *dc, const char *arg)
{
    tls_srv_conf_t *sc = tls_conf_srv_get(cmd->server);

    (void)dc;
    sc->client_ca = ap_server_root_relative(cmd->pool, arg);
    if (!sc->client_ca) {
        return "TLSClientCA: invalid file path";
    }
    return check_readable(cmd, "TLSClientCA", "CA", sc->client_ca);
}

static const char *set_client_cert(cmd_parms *cmd, void *dc, const char *arg)
{
    tls_srv_conf_t *sc = tls_conf_srv_get(cmd->server);

    (void)dc;
    if (cmd->path) {
        /* Asking for a certificate per directory would need renegotiation or post-handshake
         * authentication, which rustls does not offer: say so instead of ignoring it. */
        return "TLSClientCertificate cannot be used inside <Directory>, <Location> or <Files>: "
               "the certificate is asked for in the handshake, before any URL is known. Put it "
               "in the <VirtualHost> (use a separate vhost for the protected part, or "
               "'optional' and 'Require expr %{SSL_CLIENT_VERIFY} == \"SUCCESS\"' per "
               "directory)";
    }
    if (!strcasecmp(arg, "required")) {
        sc->client_mode = TLS_CLIENT_REQUIRED;
    }
    else if (!strcasecmp(arg, "optional")) {
        sc->client_mode = TLS_CLIENT_OPTIONAL;
    }
    else if (!strcasecmp(arg, "none")) {
        sc->client_mode = TLS_CLIENT_NONE;
    }
    else {
        return "TLSClientCertificate: use required, optional or none";
    }
    sc->client_where = where_of(cmd);
    return NULL;
}

static const char *add_client_crl(cmd_parms *cmd, void *dc, const char *arg)
{
    tls_srv_conf_t *sc = tls_conf_srv_get(cmd->server);
    const char *path = ap_server_root_relative(cmd->pool, arg);

    (void)dc;
    if (!path) {
        return "TLSClientCRL: invalid file path";
    }
    if (!sc->client_crls) {
        sc->client_crls = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(sc->client_crls, const char *) = path;
    return check_readable(cmd, "TLSClientCRL", "CRL", path);
}

/* ---- TLS to backends: TLSProxy* (and the twins above, with cmd->info set) ------------- */

static const char *set_proxy_engine(cmd_parms *cmd, void *dc, int flag)
{
    tls_proxy_conf_t *pc = proxy_of(cmd, dc);

    pc->engine = flag;
    pc->engine_where = where_of(cmd);
    return NULL;
}

static const char *set_proxy_ca(cmd_parms *cmd, void *dc, const char *arg)
{
    tls_proxy_conf_t *pc = proxy_of(cmd, dc);

    pc->ca_where = where_of(cmd);
    if (!strcasecmp(arg, "system")) {
        pc->ca = TLS_PROXY_CA_SYSTEM;
        return NULL;
    }
    if (!(pc->ca = ap_server_root_relative(cmd->pool, arg))) {
        return "TLSProxyCA: invalid file path";
    }
    return check_readable(cmd, "TLSProxyCA", "CA", pc->ca);
}

static const char *add_proxy_cert(cmd_parms *cmd, void *dc, const char *cert, const char *key)
{
    tls_proxy_conf_t *pc = proxy_of(cmd, dc);
    tls_cert_spec_t *spec;
    const char *err;

    /* Its own list: a section's line replaces what it inherits, not adds to it. */
    if (!pc->machine_certs) {
        pc->machine_certs = apr_array_make(cmd->pool, 2, sizeof(tls_cert_spec_t));
    }
    spec = apr_array_push(pc->machine_certs);
    spec->cert_file = ap_server_root_relative(cmd->pool, cert);
    spec->key_file = key ? ap_server_root_relative(cmd->pool, key) : NULL;
    spec->where = where_of(cmd);
    if (!spec->cert_file || (key && !spec->key_file)) {
        return "TLSProxyMachineCertificate: invalid file path";
    }
    if ((err = check_readable(cmd, "TLSProxyMachineCertificate", "certificate", spec->cert_file))) {
        return err;
    }
    return spec->key_file ? check_readable(cmd, "TLSProxyMachineCertificate", "key",
                                           spec->key_file) : NULL;
}

/* A DNS name (letters, digits, '-', '.', a leading '*.' not: backends are one host) or an IP
 * address. */
static int is_peer_name(apr_pool_t *p, const char *name)
{
    apr_ipsubnet_t *ip;
    const char *s;

    if (apr_ipsubnet_create(&ip, name, NULL, p) == APR_SUCCESS) {
        return 1;
    }
    for (s = name; *s && (apr_isalnum(*s) || *s == '-' || *s == '.'); ++s)
        ;
    return *name && !*s && *name != '.' && *name != '-';
}

static const char *set_proxy_peer_name(cmd_parms *cmd, void *dc, const char *arg)
{
    tls_proxy_conf_t *pc = proxy_of(cmd, dc);

    if (!is_peer_name(cmd->temp_pool, arg)) {
        return apr_psprintf(cmd->pool, "TLSProxyPeerName '%s': give the DNS name (or IP "
                            "address) the backend's certificate is valid for", arg);
    }
    pc->peer_name = arg;
    return NULL;
}

static const char *set_user_name(cmd_parms *cmd, void *dcv, const char *arg)
{
    tls_dir_conf_t *dc = dcv;

    (void)cmd;
    dc->user_name = arg;
    return NULL;
}

const command_rec tls_conf_cmds[] = {
    AP_INIT_ITERATE("TLSEngine", set_engine, NULL, RSRC_CONF,
        "[address:]port of a Listen to serve with TLS"),
    AP_INIT_TAKE12("TLSCertificate", set_certificate, NULL, RSRC_CONF,
        "certificate (chain) PEM file, and the key PEM file if not in the same file"),
    AP_INIT_TAKE1("TLSProtocol", set_protocol, NULL, RSRC_CONF,
        "minimum TLS version: default, TLSv1.2+ or TLSv1.3+"),
    AP_INIT_ITERATE("TLSCiphersPrefer", set_prefer, NULL, RSRC_CONF,
        "cipher suites to prefer, in order, or 'default' for no preference"),
    AP_INIT_ITERATE("TLSCiphersSuppress", set_suppress, NULL, RSRC_CONF,
        "cipher suites never to use, or 'none'"),
    AP_INIT_FLAG("TLSHonorClientOrder", set_honor_order, NULL, RSRC_CONF,
        "on: the client's cipher preference wins (default), off: ours"),
    AP_INIT_FLAG("TLSStrictSNI", set_strict_sni, NULL, RSRC_CONF,
        "on: refuse SNI names no vhost serves (default), off: use the default vhost"),
    AP_INIT_RAW_ARGS("TLSOptions", set_options, NULL, RSRC_CONF | OR_OPTIONS,
        "[+-]StdEnvVars [+-]ExportCertData, or Defaults"),
    AP_INIT_TAKE1("TLSClientCA", set_client_ca, NULL, RSRC_CONF,
        "PEM file with the CA certificates client certificates must chain to"),
    AP_INIT_TAKE1("TLSClientCertificate", set_client_cert, NULL, RSRC_CONF | ACCESS_CONF,
        "required, optional or none (default)"),
    AP_INIT_TAKE1("TLSClientCRL", add_client_crl, NULL, RSRC_CONF,
        "PEM file with certificate revocation lists (repeatable)"),
    AP_INIT_TAKE1("TLSUserName", set_user_name, NULL, RSRC_CONF | ACCESS_CONF | OR_AUTHCFG,
        "variable whose value becomes the request's user, e.g. SSL_CLIENT_S_DN_CN"),
    AP_INIT_FLAG("TLSProxyEngine", set_proxy_engine, NULL, RSRC_CONF | ACCESS_CONF,
        "on: mod_tls makes this scope's TLS connections to backends (default off)"),
    AP_INIT_TAKE1("TLSProxyCA", set_proxy_ca, NULL, RSRC_CONF | ACCESS_CONF,
        "PEM file with the CAs backends' certificates must chain to, or 'system' (default)"),
    AP_INIT_TAKE1("TLSProxyProtocol", set_protocol, (void *)1, RSRC_CONF | ACCESS_CONF,
        "minimum TLS version to backends: default, TLSv1.2+ or TLSv1.3+"),
    AP_INIT_ITERATE("TLSProxyCiphersPrefer", set_prefer, (void *)1,
        RSRC_CONF | ACCESS_CONF, "cipher suites to prefer with backends, or 'default'"),
    AP_INIT_ITERATE("TLSProxyCiphersSuppress", set_suppress, (void *)1,
        RSRC_CONF | ACCESS_CONF, "cipher suites never to use with backends, or 'none'"),
    AP_INIT_TAKE12("TLSProxyMachineCertificate", add_proxy_cert, NULL, RSRC_CONF | ACCESS_CONF,
        "client certificate (chain) PEM file for backends that ask, and its key file if not "
        "in it (repeatable)"),
    AP_INIT_TAKE1("TLSProxyPeerName", set_proxy_peer_name, NULL, RSRC_CONF | ACCESS_CONF,
        "the name backends' certificates must be valid for, instead of the URL's host"),
    AP_INIT_TAKE1("TLSSessionCache", set_cache, NULL, RSRC_CONF,
        "none, default, or provider:args of a mod_socache provider (shmcb, redis, memcache, dbm)"),
    AP_INIT_TAKE1("TLSSessionCacheTimeout", set_cache_timeout, NULL, RSRC_CONF,
        "seconds a session may be resumed (default 300)"),
    AP_INIT_TAKE1("TLSSessionTickets", set_tickets, NULL, RSRC_CONF,
        "on (default), off, or shared (keys rotated through the session cache)"),
    AP_INIT_TAKE1("TLSSessionTicketKeyFile", set_ticket_key_file, NULL, RSRC_CONF,
        "file of 48-byte ticket keys, the first one current"),
    AP_INIT_TAKE1("TLSSessionTicketKeyRotation", set_ticket_rotation, NULL, RSRC_CONF,
        "seconds between new ticket keys (default 43200)"),
    { NULL }
};

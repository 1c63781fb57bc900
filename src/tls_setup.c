/* tls_setup.c: what happens once per configuration cycle. Which addresses speak TLS, which
 * vhosts serve them, and one prebuilt rustls config per distinct set of vhost settings, so
 * connections only pick a config and never build one. */
#include <httpd.h>
#include <apr_strings.h>
#include <ap_listen.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_ssl.h>

#include "tls_cache.h"
#include "tls_cert.h"
#include "tls_challenge.h"
#include "tls_clientauth.h"
#include "tls_proxy.h"
#include "tls_setup.h"
#include "tls_ticket.h"
#include "tls_keylog.h"
#include "tls_log.h"

APLOG_USE_MODULE(tls);

static int addr_matches(const apr_sockaddr_t *want, apr_port_t want_port,
                        const apr_sockaddr_t *have, apr_port_t have_port)
{
    if (have_port && want_port && have_port != want_port) {
        return 0;
    }
    return !want || !have || apr_sockaddr_is_wildcard(have) || apr_sockaddr_is_wildcard(want)
           || apr_sockaddr_equal(want, have);
}

int tls_setup_is_tls_addr(const tls_global_t *global, const apr_sockaddr_t *local)
{
    int i;

    for (i = 0; i < global->engines->nelts; ++i) {
        const tls_engine_t *e = &APR_ARRAY_IDX(global->engines, i, tls_engine_t);
        /* Exact here: the local address is concrete, only the engine's may be "any". */
        if (e->port == local->port && (!e->addr || apr_sockaddr_equal(e->addr, local))) {
            return 1;
        }
    }
    return 0;
}

static int engine_has_listen(const tls_engine_t *e)
{
    ap_listen_rec *lr;

    for (lr = ap_listeners; lr; lr = lr->next) {
        if (lr->bind_addr->port == e->port
            && addr_matches(e->addr, e->port, lr->bind_addr, lr->bind_addr->port)) {
            return 1;
        }
    }
    return 0;
}

/* Whether one of the vhost's addresses (a <VirtualHost> may list several) falls on e. */
static int vhost_on_engine(const server_rec *s, const tls_engine_t *e)
{
    const server_addr_rec *sa;

    for (sa = s->addrs; sa; sa = sa->next) {
        if (addr_matches(e->addr, e->port, sa->host_addr, sa->host_port)) {
            return 1;
        }
    }
    return 0;
}

/* The first engine a vhost's addresses fall on, or NULL when it serves no TLS address. */
static const tls_engine_t *vhost_engine(const tls_global_t *global, const server_rec *s)
{
    int i;

    for (i = 0; i < global->engines->nelts; ++i) {
        const tls_engine_t *e = &APR_ARRAY_IDX(global->engines, i, tls_engine_t);
        if (engine_has_listen(e) && vhost_on_engine(s, e)) {
            return e;
        }
    }
    return NULL;
}

static const char *vhost_name(apr_pool_t *p, const server_rec *s)
{
    if (!s->is_virtual) {
        return "the main server";
    }
    return apr_psprintf(p, "<VirtualHost> %s (%s:%u)", s->server_hostname ? s->server_hostname
                        : "without ServerName", s->defn_name, s->defn_line_number);
}

/* The suites in preference order: preferred first, then rustls' defaults, minus suppressed. */
apr_array_header_t *tls_setup_suite_order(apr_pool_t *p, const tls_policy_t *policy)
{
    apr_array_header_t *ids = apr_array_make(p, 16, sizeof(uint16_t));
    size_t i, n = mtls_suites_count();
    int j;

    for (j = 0; policy->prefer && j < policy->prefer->nelts; ++j) {
        APR_ARRAY_PUSH(ids, uint16_t) = APR_ARRAY_IDX(policy->prefer, j, uint16_t);
    }
    for (i = 0; i < n; ++i) {
        APR_ARRAY_PUSH(ids, uint16_t) = mtls_suite_id(i);
    }
    for (j = 0; j < ids->nelts; ++j) {
        uint16_t id = APR_ARRAY_IDX(ids, j, uint16_t);
        int k, drop = 0;
        for (k = 0; k < j && !drop; ++k) {
            drop = APR_ARRAY_IDX(ids, k, uint16_t) == id;
        }
        for (k = 0; policy->suppress && k < policy->suppress->nelts && !drop; ++k) {
            drop = APR_ARRAY_IDX(policy->suppress, k, uint16_t) == id;
        }
        if (drop) {
            memmove(&APR_ARRAY_IDX(ids, j, uint16_t), &APR_ARRAY_IDX(ids, j + 1, uint16_t),
                    (size_t)(ids->nelts - j - 1) * sizeof(uint16_t));
            --ids->nelts;
            --j;
        }
    }
    return ids;
}

static const char *settings_key(apr_pool_t *p, const tls_srv_conf_t *sc,
                                const apr_array_header_t *suites,
                                const apr_array_header_t *certs, int fallback)
{
    const char *key = apr_psprintf(p, "v%x h%d f%d", tls_conf_min_version(&sc->policy),
                                   tls_conf_honor_client_order(sc), fallback);
    int i;

    for (i = 0; i < suites->nelts; ++i) {
        key = apr_psprintf(p, "%s %x", key, APR_ARRAY_IDX(suites, i, uint16_t));
    }
    for (i = 0; i < certs->nelts; ++i) {
        const tls_cert_spec_t *c = &APR_ARRAY_IDX(certs, i, tls_cert_spec_t);
        key = apr_pstrcat(p, key, "\n", c->cert_file, " ", c->key_file, NULL);
    }
    return apr_pstrcat(p, key, tls_clientauth_key(p, sc), NULL);
}

static apr_status_t config_cleanup(void *data)
{
    mtls_server_config_free(data);
    return APR_SUCCESS;
}

static const char *build_settings(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                  const apr_array_header_t *certs, int fallback,
                                  tls_settings_t **out)
{
    tls_srv_conf_t *sc = tls_conf_srv_get(s);
    apr_array_header_t *suites = tls_setup_suite_order(ptemp, &sc->policy);
    const char *key = settings_key(pconf, sc, suites, certs, fallback), *err;
    mtls_server_config_builder *b;
    tls_settings_t *st;
    mtls_certkey *ck;
    char detail[512];
    int i;

    if ((*out = apr_hash_get(sc->global->settings, key, APR_HASH_KEY_STRING))) {
        return NULL;
    }
    st = apr_pcalloc(pconf, sizeof(*st));
    st->key = key;
    st->fallback = fallback;
    st->certkeys = apr_array_make(pconf, certs->nelts, sizeof(mtls_certkey *));
    st->cert_files = apr_array_make(pconf, certs->nelts, sizeof(const char *));
    st->by_alpn = apr_hash_make(pconf);
    b = mtls_server_config_builder_new();
    for (i = 0; i < certs->nelts; ++i) {
        const tls_cert_spec_t *spec = &APR_ARRAY_IDX(certs, i, tls_cert_spec_t);
        if ((err = tls_cert_load(sc->global, pconf, ptemp, spec, &ck))) {
            mtls_server_config_builder_free(b);
            return apr_psprintf(ptemp, "%s:%u: %s: %s", spec->where.file, spec->where.line,
                                spec->from ? spec->from : "TLSCertificate", err);
        }
        APR_ARRAY_PUSH(st->certkeys, mtls_certkey *) = ck;
        APR_ARRAY_PUSH(st->cert_files, const char *) = spec->cert_file;
        mtls_server_config_builder_add_certkey(b, ck);
    }
    mtls_server_config_builder_set_min_version(b, (uint16_t)tls_conf_min_version(&sc->policy));
    mtls_server_config_builder_set_suites(b, (const uint16_t *)suites->elts, (size_t)suites->nelts);
    mtls_server_config_builder_set_honor_client_order(b, tls_conf_honor_client_order(sc));
    tls_cache_configure(sc->global, b);
    tls_ticket_configure(sc->global, b);
    tls_keylog_configure_server(sc->global, b);
    if ((err = tls_clientauth_configure(sc, b, ptemp))) {
        mtls_server_config_builder_free(b);
        return err;
    }
    detail[0] = '\0';
    if (mtls_server_config_builder_build(b, &st->config, detail, sizeof(detail)) != MTLS_OK) {
        return apr_psprintf(ptemp, "the TLS settings cannot work: %s", detail);
    }
    apr_pool_cleanup_register(pconf, st->config, config_cleanup, apr_pool_cleanup_null);
    apr_hash_set(sc->global->settings, key, APR_HASH_KEY_STRING, st);
    *out = st;
    return NULL;
}

/* A config variant per ALPN protocol the vhost's `Protocols` allow, so that the connection
 * only looks one up after ap_select_protocol() decided. */
static void add_alpn_variants(apr_pool_t *pconf, server_rec *s, tls_settings_t *st)
{
    core_server_config *core = ap_get_core_module_config(s->module_config);
    const mtls_server_config *variant;
    int i;

    for (i = 0; core->protocols && i < core->protocols->nelts; ++i) {
        const char *proto = APR_ARRAY_IDX(core->protocols, i, const char *);
        /* the challenge protocol is answered with the challenge's certificate, never ours */
        if (apr_hash_get(st->by_alpn, proto, APR_HASH_KEY_STRING)
            || !strcmp(proto, TLS_CHALLENGE_ALPN)) {
            continue;
        }
        if (mtls_server_config_with_alpn(st->config, (const uint8_t *)proto, strlen(proto),
                                         &variant) == MTLS_OK) {
            apr_pool_cleanup_register(pconf, variant, config_cleanup, apr_pool_cleanup_null);
            apr_hash_set(st->by_alpn, apr_pstrdup(pconf, proto), APR_HASH_KEY_STRING, variant);
        }
    }
    if (!apr_hash_get(st->by_alpn, AP_PROTOCOL_HTTP1, APR_HASH_KEY_STRING)
        && mtls_server_config_with_alpn(st->config, (const uint8_t *)AP_PROTOCOL_HTTP1,
                                        strlen(AP_PROTOCOL_HTTP1), &variant) == MTLS_OK) {
        apr_pool_cleanup_register(pconf, variant, config_cleanup, apr_pool_cleanup_null);
        apr_hash_set(st->by_alpn, AP_PROTOCOL_HTTP1, APR_HASH_KEY_STRING, variant);
    }
}

/* Adds the files another module gives (one array of certificates, one of keys) as specs,
 * marked with where they came from. */
static void add_given(server_rec *s, apr_array_header_t *to,
                      const apr_array_header_t *cert_files, const apr_array_header_t *key_files,
                      const char *from)
{
    tls_cert_spec_t *spec;
    int i;

    for (i = 0; i < cert_files->nelts; ++i) {
        spec = apr_array_push(to);
        spec->cert_file = APR_ARRAY_IDX(cert_files, i, const char *);
        spec->key_file = i < key_files->nelts ? APR_ARRAY_IDX(key_files, i, const char *) : NULL;
        spec->where.file = s->defn_name ? s->defn_name : "(the main server)";
        spec->where.line = s->defn_line_number;
        spec->from = from;
    }
}

/* The certificates a server serves: those other modules give for it (mod_md's, for its
 * domains) first, as they are the ones made for its names, then its TLSCertificate lines
 * (its own or the main server's). With none at all, a stand-in another module may give
 * (mod_md's, until it has the real one): *fallback is set, and requests get 503. */
static apr_array_header_t *certificates(apr_pool_t *pconf, server_rec *s,
                                        const tls_srv_conf_t *sc, int *fallback)
{
    apr_array_header_t *certs = apr_array_make(pconf, 2, sizeof(tls_cert_spec_t));
    apr_array_header_t *cert_files = apr_array_make(pconf, 2, sizeof(const char *));
    apr_array_header_t *key_files = apr_array_make(pconf, 2, sizeof(const char *));
    int i;

    *fallback = 0;
    ap_ssl_add_cert_files(s, pconf, cert_files, key_files);
    add_given(s, certs, cert_files, key_files, "a certificate given by another module");
    if (sc->certs) {
        apr_array_cat(certs, sc->certs);
    }
    if (!certs->nelts) {
        ap_ssl_add_fallback_cert_files(s, pconf, cert_files, key_files);
        add_given(s, certs, cert_files, key_files, "a stand-in certificate");
        *fallback = certs->nelts > 0;
        for (i = 0; i < cert_files->nelts; ++i) {
            apr_hash_set(tls_conf_srv_get(s)->global->standins,
                         APR_ARRAY_IDX(cert_files, i, const char *), APR_HASH_KEY_STRING, "");
        }
    }
    return certs;
}

static int fail(server_rec *base, const char *msg)
{
    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, base, TLSLOGNO(00021) "%s", msg);
    return !OK;
}

static const char *no_certificate(apr_pool_t *p, const tls_global_t *global, server_rec *s)
{
    const tls_engine_t *e = s->is_virtual ? vhost_engine(global, s) : NULL;

    return apr_psprintf(p, "%s serves the TLS address %s but has no certificate: add a "
                        "TLSCertificate line to it (or to the main server, as default for vhosts "
                        "without one), or an MDomain for its names (mod_md)", vhost_name(p, s),
                        e ? e->spec : "of a TLSEngine without <VirtualHost>");
}

/* Whether a module (mod_md) may give certificates: then a vhost may have no TLSCertificate.
 * Modules give them in post_config, after their own setup (mod_md orders itself so). */
static int others_give_certificates(void)
{
    /* an array only once some module registered */
    apr_array_header_t *given = ap_hook_get_ssl_add_cert_files();
    apr_array_header_t *standins = ap_hook_get_ssl_add_fallback_cert_files();

    return (given && given->nelts > 0) || (standins && standins->nelts > 0);
}

/* Builds (or finds) the vhost's settings for these certificates, with the ALPN variants. */
static const char *setup_vhost(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                               const apr_array_header_t *certs, int fallback)
{
    tls_settings_t *st;
    const char *err;

    if ((err = build_settings(pconf, ptemp, s, certs, fallback, &st))) {
        return apr_psprintf(ptemp, "%s: %s", vhost_name(ptemp, s), err);
    }
    add_alpn_variants(pconf, s, st);
    tls_conf_srv_get(s)->settings = st;
    return NULL;
}

int tls_setup_given(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *base)
{
    tls_global_t *global = tls_conf_srv_get(base)->global;
    apr_array_header_t *certs;
    const char *err;
    server_rec *s;
    int fallback;

    for (s = base; s; s = s->next) {
        tls_srv_conf_t *sc = tls_conf_srv_get(s);
        if (!sc->serves_tls) {
            continue;
        }
        certs = certificates(pconf, s, sc, &fallback);
        if (sc->settings && certs->nelts == sc->certs->nelts) {
            continue;                /* nothing given: as check_config built it */
        }
        if (!certs->nelts) {
            return fail(base, no_certificate(ptemp, global, s));
        }
        if (fallback) {
            APR_ARRAY_PUSH(global->warnings, const char *) = apr_psprintf(pconf,
                "%s has no certificate yet, only another module's stand-in: it answers every "
                "request with 503 until it has one (mod_md: once it obtained it, at the next "
                "graceful restart)", vhost_name(pconf, s));
        }
        if ((err = setup_vhost(pconf, ptemp, s, certs, fallback))) {
            return fail(base, err);
        }
    }
    return OK;
}


int tls_setup_check(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *base)
{
    tls_global_t *global = tls_conf_srv_get(base)->global;
    int i, main_needed = 0;
    const char *err;
    server_rec *s;

    if ((err = tls_cache_create(global, pconf, ptemp))
        || (err = tls_ticket_create(global, pconf, ptemp))) {
        return fail(base, err);
    }

    for (i = 0; i < global->engines->nelts; ++i) {
        const tls_engine_t *e = &APR_ARRAY_IDX(global->engines, i, tls_engine_t);
        int covered = 0;
        if (!engine_has_listen(e)) {
            /* A warning, not a refusal: Debian's ports.conf opens 443 only while mod_ssl is
             * enabled, and `a2dismod ssl` must not stop the whole server. */
            APR_ARRAY_PUSH(global->warnings, const char *) = apr_psprintf(pconf,
                "%s:%u: TLSEngine %s: no Listen directive opens this address, so nothing "
                "is served there; add 'Listen %s' or correct the address", e->where.file,
                e->where.line, e->spec, e->spec);
            continue;
        }
        for (s = base->next; s && !covered; s = s->next) {
            covered = vhost_on_engine(s, e);
        }
        main_needed |= !covered;
    }
    for (s = base; s; s = s->next) {
        tls_srv_conf_t *sc = tls_conf_srv_get(s);
        const tls_engine_t *e = s->is_virtual ? vhost_engine(global, s) : NULL;

        sc->settings = NULL;
        sc->serves_tls = 0;
        if (s->is_virtual ? !e : (!main_needed && !sc->certs)) {
            continue;
        }
        sc->serves_tls = 1;
        if (!sc->certs || !sc->certs->nelts) {
            if (others_give_certificates()) {
                continue;            /* tls_setup_given() asks them, in post_config */
            }
            return fail(base, no_certificate(ptemp, global, s));
        }
        if ((err = setup_vhost(pconf, ptemp, s, sc->certs, 0))) {
            return fail(base, err);
        }
    }
    if ((err = tls_proxy_setup(global, pconf, ptemp, base))) {
        return fail(base, err);
    }
    return OK;
}

static int names_covered(apr_pool_t *p, const server_rec *s, const tls_settings_t *st)
{
    int i;

    if (!s->server_hostname || tls_cert_covers(p, st->certkeys, s->server_hostname)) {
        return 1;
    }
    for (i = 0; s->names && i < s->names->nelts; ++i) {
        if (tls_cert_covers(p, st->certkeys, APR_ARRAY_IDX(s->names, i, const char *))) {
            return 1;
        }
    }
    for (i = 0; s->wild_names && i < s->wild_names->nelts; ++i) {
        if (tls_cert_covers(p, st->certkeys, APR_ARRAY_IDX(s->wild_names, i, const char *))) {
            return 1;
        }
    }
    return 0;
}

void tls_setup_warn(apr_pool_t *ptemp, server_rec *base)
{
    tls_global_t *global = tls_conf_srv_get(base)->global;
    server_rec *s;
    int i;

    apr_hash_index_t *hi;

    tls_clientauth_warn(base, ptemp);
    for (hi = apr_hash_first(ptemp, global->certkeys); hi; hi = apr_hash_next(hi)) {
        const char *id = apr_hash_this_key(hi), *msg;
        const char *cert_file = apr_pstrndup(ptemp, id, strcspn(id, "\n"));
        /* a stand-in is short-lived by design; its vhost has its own warning */
        if (apr_hash_get(global->standins, cert_file, APR_HASH_KEY_STRING)) {
            continue;
        }
        if ((msg = tls_cert_check_expiry(ptemp, apr_hash_this_val(hi), cert_file))) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, base, TLSLOGNO(00022) "%s", msg);
        }
    }
    for (i = 0; i < global->warnings->nelts; ++i) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, base, TLSLOGNO(00023) "%s",
                     APR_ARRAY_IDX(global->warnings, i, const char *));
    }
    for (s = base; s; s = s->next) {
        const tls_settings_t *st = tls_conf_srv_get(s)->settings;
        if (st && s->is_virtual && !names_covered(ptemp, s, st)) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, base,
                         TLSLOGNO(00024) "%s: its certificates cover "
                         "neither ServerName %s nor any ServerAlias; clients will reject them",
                         vhost_name(ptemp, s), s->server_hostname);
        }
    }
}

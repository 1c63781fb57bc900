/* mod_tls.c: TLS for Apache httpd through rustls. This file only wires hooks; each
 * concern lives in its tls_*.c file. */
#include <httpd.h>
#include <http_config.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_auth.h>
#include <http_ssl.h>
#include <mod_status.h>

#include "tls_cache.h"
#include "tls_clientauth.h"
#include "tls_conf.h"
#include "tls_conn.h"
#include "tls_filter.h"
#include "tls_keylog.h"
#include "tls_ocsp.h"
#include "tls_proxy.h"
#include "tls_setup.h"
#include "tls_status.h"
#include "tls_ticket.h"
#include "tls_var.h"

static int tls_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    tls_var_register_log(pconf);
    tls_cache_register_mutex(pconf);
    tls_ticket_register_mutex(pconf);
    return OK;
}

static int tls_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                            server_rec *s)
{
    (void)plog;
    /* the key log first: every config built from here on writes to it */
    tls_keylog_open(tls_conf_srv_get(s)->global, pconf);
    return tls_setup_check(pconf, ptemp, s);
}

static int tls_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                           server_rec *s)
{
    tls_global_t *g = tls_conf_srv_get(s)->global;

    (void)plog;
    tls_status_init(s);
    if (tls_setup_given(pconf, ptemp, s) != OK) {
        return !OK;
    }
    tls_ocsp_prime(pconf, ptemp, s);
    /* At the first start Apache reads its config twice, the first time only to check it:
     * warn once, in the pass that goes on to serve (restarts have only that one). */
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
        tls_setup_warn(ptemp, s);
        tls_proxy_warn(g, s);
        tls_keylog_warn(g, s);
    }
    if (tls_cache_init(g, pconf, s) != APR_SUCCESS || tls_ticket_init(g, pconf, s) != APR_SUCCESS) {
        return !OK;
    }
    return OK;
}

static void tls_child_init(apr_pool_t *p, server_rec *s)
{
    tls_global_t *g = tls_conf_srv_get(s)->global;

    tls_cache_child_init(g, p, s);
    tls_ticket_child_init(g, p, s);
    tls_proxy_child_init(g, p);
}

/* Our %x and expression lookups ask every TLS module; mod_ssl's only know its own. */
static const char *const tls_after_ssl[] = { "mod_ssl.c", NULL };
static const char *const tls_before_ssl[] = { "mod_ssl.c", NULL };
/* The ticket key task is registered with mod_watchdog before its post_config starts the
 * watchdogs, and the key mutex is attached before its child_init starts their threads. */
static const char *const tls_before_watchdog[] = { "mod_watchdog.c", NULL };
/* The handshake runs inside mod_reqtimeout's handshake stage and before mod_http2. */
static const char *const tls_handshake_pred[] = { "mod_reqtimeout.c", NULL };
static const char *const tls_handshake_succ[] = { "mod_http2.c", NULL };
/* A request's last filter goes in after the HTTP ones: one added before them all would
 * become the request's first, and the response would skip them. */
static const char *const tls_after_http[] = { "http_core.c", NULL };

static void tls_register_hooks(apr_pool_t *p)
{
    (void)p;
    /* lifecycle; %x log items registered after mod_ssl's, to answer for both */
    ap_hook_pre_config(tls_pre_config, tls_after_ssl, NULL, APR_HOOK_LAST);
    ap_hook_check_config(tls_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(tls_post_config, NULL, tls_before_watchdog, APR_HOOK_MIDDLE);
    ap_hook_child_init(tls_child_init, NULL, tls_before_watchdog, APR_HOOK_MIDDLE);

    /* connections: before mod_http2 and the core look at them */
    ap_hook_pre_connection(tls_conn_pre_connection, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_process_connection(tls_conn_process_connection, tls_handshake_pred,
                               tls_handshake_succ, APR_HOOK_MIDDLE);
    tls_filter_register();
    ap_hook_create_request(tls_filter_create_request, tls_after_http, NULL,
                           APR_HOOK_REALLY_LAST);

    /* mod_proxy's connections to backends, where TLSProxyEngine says so; mod_ssl gets those
     * we leave */
    ap_hook_ssl_bind_outgoing(tls_proxy_bind_outgoing, NULL, tls_before_ssl, APR_HOOK_MIDDLE);
    ap_hook_fixups(tls_proxy_fixups, NULL, NULL, APR_HOOK_MIDDLE);

    /* what others may ask */
    ap_hook_ssl_conn_is_ssl(tls_var_conn_is_ssl, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_ssl_var_lookup(tls_var_lookup, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_expr_lookup(tls_var_expr_lookup, NULL, tls_before_ssl, APR_HOOK_MIDDLE);

    /* requests */
    ap_hook_http_scheme(tls_var_http_scheme, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_default_port(tls_var_default_port, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_read_request(tls_var_check_request, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(tls_var_fixups, NULL, NULL, APR_HOOK_MIDDLE);
    /* Both per configuration, as mod_ssl's: one plain access_checker would make httpd redo
     * authorization for every internal redirect and subrequest of the server. */
    ap_hook_check_authn(tls_clientauth_check_user, NULL, NULL, APR_HOOK_FIRST,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_check_access(tls_clientauth_access, NULL, NULL, APR_HOOK_FIRST,
                         AP_AUTH_INTERNAL_PER_CONF);

    /* statistics in server-status, when mod_status is loaded */
    APR_OPTIONAL_HOOK(ap, status_hook, tls_status_hook, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(tls) = {
    STANDARD20_MODULE_STUFF,
    tls_conf_create_dir,
    tls_conf_merge_dir,
    tls_conf_create_srv,
    tls_conf_merge_srv,
    tls_conf_cmds,
    tls_register_hooks,
#if defined(AP_MODULE_FLAG_NONE)
    AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};

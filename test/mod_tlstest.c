/* mod_tlstest.c: a test-only module for edge cases no real module produces on demand.
 * Built by the test harness with apxs, loaded only by the tests that ask for it.
 *
 * - It proposes the ALPN protocol "x-no-switch" when a client offers it and `Protocols`
 *   allows it, and then implements no switch to it: ap_switch_protocol() fails, as it does
 *   when a protocol module refuses a connection after the handshake. */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>

#define TLSTEST_NO_SWITCH "x-no-switch"

static int tlstest_propose(conn_rec *c, request_rec *r, server_rec *s,
                           const apr_array_header_t *offers, apr_array_header_t *proposals)
{
    int i;

    (void)c;
    (void)r;
    (void)s;
    for (i = 0; offers && i < offers->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(offers, i, const char *), TLSTEST_NO_SWITCH)) {
            APR_ARRAY_PUSH(proposals, const char *) = TLSTEST_NO_SWITCH;
        }
    }
    return DECLINED;
}

static void tlstest_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_protocol_propose(tlstest_propose, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(tlstest) = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, NULL, tlstest_register_hooks
};

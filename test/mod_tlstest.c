/* mod_tlstest.c: a test-only module for edge cases no real module produces on demand.
 * Built by the test harness with apxs, loaded only by the tests that ask for it.
 *
 * - It proposes the ALPN protocol "x-no-switch" when a client offers it and `Protocols`
 *   allows it, and then implements no switch to it: ap_switch_protocol() fails, as it does
 *   when a protocol module refuses a connection after the handshake.
 * - The handler "tlstest-broken" answers with a body that breaks off: N bytes (the query
 *   string, default 10000), a metadata bucket of its own, then a bucket whose read fails, as
 *   a file that shrank or a backend that failed would. Its connection then closes.
 * - The handler "tlstest-ask" sends a line of its response ("ready"), without a FLUSH, before
 *   it reads the request body, and then echoes the body: a client that sends the body only
 *   once it has that line gets the answer only if the line is not held back while the
 *   server waits for the body.
 * - `TLSTestBreakWrite N` puts a connection filter below mod_tls' output filter that fails
 *   the pass which would take its connection past N bytes (ECONNRESET, the brigade dropped),
 *   and passes everything after it, so anything sent after a failed write reaches the
 *   client. (The core output filter drops all output after a real failure.) */
#include <stdlib.h>
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_connection.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#define TLSTEST_NO_SWITCH "x-no-switch"

static apr_off_t break_write = -1;      /* TLSTestBreakWrite; -1: off */

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

/* ---- a body that breaks off ----------------------------------------------------------- */

static apr_status_t broken_read(apr_bucket *b, const char **str, apr_size_t *len,
                                apr_read_type_e block)
{
    (void)b;
    (void)block;
    *str = NULL;
    *len = 0;
    return APR_EGENERAL;
}

static const apr_bucket_type_t bucket_type_broken = {
    "TLSTEST_BROKEN", 5, APR_BUCKET_DATA, apr_bucket_destroy_noop, broken_read,
    apr_bucket_setaside_notimpl, apr_bucket_split_notimpl, apr_bucket_copy_notimpl
};

static apr_status_t mark_read(apr_bucket *b, const char **str, apr_size_t *len,
                              apr_read_type_e block)
{
    (void)b;
    (void)block;
    *str = NULL;
    *len = 0;
    return APR_SUCCESS;
}

static const apr_bucket_type_t bucket_type_mark = {
    "TLSTEST_MARK", 5, APR_BUCKET_METADATA, apr_bucket_destroy_noop, mark_read,
    apr_bucket_setaside_noop, apr_bucket_split_notimpl, apr_bucket_simple_copy
};

static apr_bucket *bucket_make(const apr_bucket_type_t *type, apr_size_t len,
                               apr_bucket_alloc_t *list)
{
    apr_bucket *b = apr_bucket_alloc(sizeof(*b), list);

    APR_BUCKET_INIT(b);
    b->free = apr_bucket_free;
    b->list = list;
    b->type = type;
    b->length = len;
    b->start = 0;
    b->data = NULL;
    return b;
}

static int tlstest_handler(request_rec *r)
{
    apr_bucket_alloc_t *ba = r->connection->bucket_alloc;
    apr_bucket_brigade *bb;
    apr_size_t n;
    char *body;

    if (!r->handler || strcmp(r->handler, "tlstest-broken")) {
        return DECLINED;
    }
    n = r->args ? (apr_size_t)atol(r->args) : 10000;
    body = apr_palloc(r->pool, n);
    memset(body, 'x', n);
    ap_set_content_type(r, "application/octet-stream");
    bb = apr_brigade_create(r->pool, ba);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_pool_create(body, n, r->pool, ba));
    APR_BRIGADE_INSERT_TAIL(bb, bucket_make(&bucket_type_mark, 0, ba));
    APR_BRIGADE_INSERT_TAIL(bb, bucket_make(&bucket_type_broken, 100, ba));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(ba));
    if (ap_pass_brigade(r->output_filters, bb) != APR_SUCCESS) {
        r->connection->keepalive = AP_CONN_CLOSE;
        return AP_FILTER_ERROR;
    }
    return OK;
}

/* ---- a response that waits for the request body ---------------------------------------- */

static int tlstest_ask(request_rec *r)
{
    apr_bucket_alloc_t *ba = r->connection->bucket_alloc;
    apr_bucket_brigade *bb;
    char buf[1024];
    long n;

    if (!r->handler || strcmp(r->handler, "tlstest-ask")) {
        return DECLINED;
    }
    if (ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK) != OK) {
        return HTTP_BAD_REQUEST;
    }
    ap_set_content_type(r, "text/plain");
    bb = apr_brigade_create(r->pool, ba);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create("ready\n", 6, ba));
    if (ap_pass_brigade(r->output_filters, bb) != APR_SUCCESS) {
        return AP_FILTER_ERROR;
    }
    apr_brigade_cleanup(bb);
    if (ap_should_client_block(r)) {
        while ((n = ap_get_client_block(r, buf, sizeof(buf))) > 0) {
            apr_brigade_write(bb, NULL, NULL, buf, (apr_size_t)n);
        }
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(ba));
    return ap_pass_brigade(r->output_filters, bb) == APR_SUCCESS ? OK : AP_FILTER_ERROR;
}

/* ---- a write that fails once ------------------------------------------------------------ */

typedef struct {
    apr_off_t passed;
    int broken;
} break_ctx_t;

static apr_status_t tlstest_break_out(ap_filter_t *f, apr_bucket_brigade *bb)
{
    break_ctx_t *ctx = f->ctx;
    apr_off_t len = 0;

    if (!ctx->broken) {
        apr_brigade_length(bb, 1, &len);
        if (ctx->passed + len > break_write) {
            ctx->broken = 1;
            apr_brigade_cleanup(bb);
            return APR_ECONNRESET;
        }
        ctx->passed += len;
    }
    return ap_pass_brigade(f->next, bb);
}

static int tlstest_pre_connection(conn_rec *c, void *csd)
{
    (void)csd;
    if (break_write >= 0 && !c->master && !c->outgoing) {
        ap_add_output_filter("TLSTEST_BREAK", apr_pcalloc(c->pool, sizeof(break_ctx_t)),
                             NULL, c);
    }
    return OK;
}

static const char *set_break_write(cmd_parms *cmd, void *dc, const char *arg)
{
    (void)cmd;
    (void)dc;
    break_write = (apr_off_t)atol(arg);
    return NULL;
}

static const command_rec tlstest_cmds[] = {
    AP_INIT_TAKE1("TLSTestBreakWrite", set_break_write, NULL, RSRC_CONF,
                  "fail the connection's write that goes past this many bytes, once"),
    { NULL }
};

static void tlstest_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_protocol_propose(tlstest_propose, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(tlstest_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(tlstest_ask, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_pre_connection(tlstest_pre_connection, NULL, NULL, APR_HOOK_MIDDLE);
    /* below mod_tls' TLS_OUT (AP_FTYPE_CONNECTION + 5), above the network */
    ap_register_output_filter("TLSTEST_BREAK", tlstest_break_out, NULL,
                              AP_FTYPE_CONNECTION + 8);
}

AP_DECLARE_MODULE(tlstest) = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, tlstest_cmds, tlstest_register_hooks
};

/* httpd_stubs.c: fuzz_policy links tls_conf.c for its parser, and with it the directive
 * handlers, which call into httpd; the fuzzer never calls them. These stand in at link time
 * and abort should one ever be reached. */
#include <stdlib.h>

#include <httpd.h>
#include <http_config.h>

module AP_MODULE_DECLARE_DATA tls_module;

const char *ap_check_cmd_context(cmd_parms *cmd, unsigned forbidden)
{
    (void)cmd;
    (void)forbidden;
    abort();
}

char *ap_getword_conf(apr_pool_t *p, const char **line)
{
    (void)p;
    (void)line;
    abort();
}

char *ap_server_root_relative(apr_pool_t *p, const char *fname)
{
    (void)p;
    (void)fname;
    abort();
}

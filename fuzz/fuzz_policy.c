/* fuzz_policy.c: the C parsers of what admins write for the protocol and cipher policy:
 * TLSProtocol's value (tls_conf_parse_protocol) and the suite lists of TLSCiphersPrefer and
 * TLSCiphersSuppress (tls_cipher_parse_list), then the config a vhost would get from them
 * (tls_setup.c passes the ids and the version on to the bridge). The input is one config
 * line's argument, cut at the first NUL as httpd's reader would have it. */
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "fuzz_util.h"
#include "tls_cipher.h"
#include "tls_conf.h"

static apr_pool_t *pool;
static mtls_certkey *ck_ec;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    apr_pool_create(&pool, NULL);
    ck_ec = fuzz_certkey("ec");
    return 0;
}

static void build(int version, const apr_array_header_t *ids)
{
    mtls_server_config_builder *b = mtls_server_config_builder_new();
    const mtls_server_config *config;
    char err[256];

    fuzz_ok(mtls_server_config_builder_add_certkey(b, ck_ec));
    if (fuzz_ok(mtls_server_config_builder_set_min_version(b, (uint16_t)version)) != MTLS_OK) {
        abort();    /* the parser gave a version the bridge does not know */
    }
    if (ids->nelts) {
        /* the parser keeps only suites the bridge offers: it must take them all */
        if (fuzz_ok(mtls_server_config_builder_set_suites(b, (const uint16_t *)ids->elts,
                                                          (size_t)ids->nelts)) != MTLS_OK) {
            abort();
        }
    }
    if (fuzz_ok(mtls_server_config_builder_build(b, &config, err, sizeof(err))) == MTLS_OK) {
        mtls_server_config_free(config);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_array_header_t *ids, *unsupported;
    const char *err;
    char *line;
    int legacy, version, i;

    line = apr_pstrmemdup(pool, (const char *)data, size);
    version = tls_conf_parse_protocol(line, &legacy);
    if (version && version != 0x0303 && version != 0x0304) {
        abort();
    }
    ids = apr_array_make(pool, 8, sizeof(uint16_t));
    unsupported = apr_array_make(pool, 2, sizeof(const char *));
    err = tls_cipher_parse_list(pool, line, ids, unsupported);
    for (i = 0; !err && i < ids->nelts; ++i) {
        (void)tls_cipher_name(pool, APR_ARRAY_IDX(ids, i, uint16_t));
    }
    if (size >= 2) {
        (void)tls_cipher_name(pool, (uint16_t)(data[0] << 8 | data[1]));
    }
    if (!err && (version || ids->nelts)) {
        build(version ? version : 0x0303, ids);
    }
    apr_pool_clear(pool);
    return 0;
}

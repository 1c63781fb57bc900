/* fuzz_certs.c: the loaders of what admins give mod_tls as files: certificate chains with
 * their keys (tls_cert.c), CA bundles for backends (tls_proxy.c), client CAs with their CRLs
 * (tls_clientauth.c), and OCSP responses to staple (tls_ocsp.c). The first byte picks the
 * loader; the rest is the files, separated by FUZZ_SEP:
 *
 *   0: chain, key, OCSP response   mtls_certkey_load, then what startup asks of it
 *   1: CA bundle                   mtls_client_config_builder_add_ca (strict or not: bit 3)
 *   2: client CAs, CRLs            mtls_crl_next_update, ..._set_client_auth, and a build
 *   3: OCSP response               mtls_certkey_set_ocsp on a valid certificate */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

static mtls_certkey *ck_ec;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ck_ec = fuzz_certkey("ec");
    return 0;
}

/* Staples, and takes back, as tls_ocsp.c does when a response comes and goes. */
static void staple(const mtls_certkey *ck, const uint8_t *der, size_t len)
{
    int64_t until;

    if (fuzz_ok(mtls_certkey_set_ocsp(ck, der, len, &until)) == MTLS_OK) {
        fuzz_ok(mtls_certkey_set_ocsp(ck, NULL, 0, &until));
    }
}

/* A server config with the certificate, built: what startup does with every one it loads. */
static void serve(const mtls_certkey *ck)
{
    mtls_server_config_builder *b = mtls_server_config_builder_new();
    const mtls_server_config *config;
    char err[128];

    fuzz_ok(mtls_server_config_builder_add_certkey(b, ck));
    if (fuzz_ok(mtls_server_config_builder_build(b, &config, err, sizeof(err))) == MTLS_OK) {
        mtls_server_config_free(config);
    }
}

static void load_certkey(const uint8_t **part, const size_t *len, size_t n)
{
    mtls_certkey *ck = NULL;
    const uint8_t *der;
    size_t der_len;
    int64_t secs;
    char err[256];

    if (fuzz_ok(mtls_certkey_load(part[0], len[0], n > 1 ? part[1] : NULL, n > 1 ? len[1] : 0,
                                  &ck, err, sizeof(err))) != MTLS_OK) {
        return;
    }
    (void)mtls_certkey_covers_name(ck, "server.test");
    (void)mtls_certkey_covers_name(ck, "a.b.test");
    fuzz_ok(mtls_certkey_leaf_der(ck, &der, &der_len));
    fuzz_ok(mtls_certkey_not_after(ck, &secs));
    if (n > 2) {
        staple(ck, part[2], len[2]);
    }
    serve(ck);
    mtls_certkey_free(ck);
}

static void add_ca(const uint8_t *pem, size_t len, int strict)
{
    mtls_client_config_builder *b = mtls_client_config_builder_new();
    const mtls_client_config *config;
    size_t added;
    char err[256];

    if (fuzz_ok(mtls_client_config_builder_add_ca(b, pem, len, strict, &added, err, sizeof(err)))
        != MTLS_OK) {
        mtls_client_config_builder_free(b);
        return;
    }
    if (fuzz_ok(mtls_client_config_builder_build(b, &config, err, sizeof(err))) == MTLS_OK) {
        mtls_client_config_free(config);
    }
}

static void client_auth(const uint8_t **part, const size_t *len, size_t n, int required)
{
    mtls_server_config_builder *b;
    const mtls_server_config *config;
    const uint8_t *crl = n > 1 ? part[1] : NULL;
    size_t crl_len = n > 1 ? len[1] : 0;
    int64_t next;
    char err[256];

    fuzz_ok(mtls_crl_next_update(crl, crl_len, &next));
    b = mtls_server_config_builder_new();
    fuzz_ok(mtls_server_config_builder_add_certkey(b, ck_ec));
    if (fuzz_ok(mtls_server_config_builder_set_client_auth(b, part[0], len[0], crl, crl_len,
                                                           required, err, sizeof(err)))
        != MTLS_OK) {
        mtls_server_config_builder_free(b);
        return;
    }
    if (fuzz_ok(mtls_server_config_builder_build(b, &config, err, sizeof(err))) == MTLS_OK) {
        mtls_server_config_free(config);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[3];
    size_t len[3], n;

    if (size < 1) {
        return 0;
    }
    n = fuzz_split(data + 1, size - 1, part, len, 3);
    switch (data[0] & 3) {
    case 0:
        load_certkey(part, len, n);
        break;
    case 1:
        add_ca(part[0], len[0], data[0] & 8);
        break;
    case 2:
        client_auth(part, len, n, data[0] & 8);
        break;
    default:
        staple(ck_ec, part[0], len[0]);
        break;
    }
    return 0;
}

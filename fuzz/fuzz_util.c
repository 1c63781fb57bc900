/* fuzz_util.c: see fuzz_util.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

uint8_t *fuzz_file(const char *name, size_t *len)
{
    const char *dir = getenv("MTLS_FUZZ_CERTS");
    char path[4096];
    uint8_t *buf;
    FILE *f;
    long size;

    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : FUZZ_CERTS, name);
    if (!(f = fopen(path, "rb")) || fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET)) {
        fprintf(stderr, "fuzz: cannot read %s: make it with 'make fuzz-seeds' or point "
                "MTLS_FUZZ_CERTS at a directory made by fuzz/seeds.py\n", path);
        abort();
    }
    buf = malloc((size_t)size + 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "fuzz: cannot read %s\n", path);
        abort();
    }
    fclose(f);
    buf[size] = 0;
    *len = (size_t)size;
    return buf;
}

mtls_certkey *fuzz_certkey(const char *name)
{
    char file[256], err[256];
    size_t cert_len, key_len;
    uint8_t *cert, *key;
    mtls_certkey *ck = NULL;

    snprintf(file, sizeof(file), "%s.pem", name);
    cert = fuzz_file(file, &cert_len);
    snprintf(file, sizeof(file), "%s.key", name);
    key = fuzz_file(file, &key_len);
    if (mtls_certkey_load(cert, cert_len, key, key_len, &ck, err, sizeof(err)) != MTLS_OK) {
        fprintf(stderr, "fuzz: %s: %s\n", name, err);
        abort();
    }
    free(cert);
    free(key);
    return ck;
}

mtls_result fuzz_ok(mtls_result rr)
{
    if (rr == MTLS_PANIC) {
        fprintf(stderr, "fuzz: the bridge caught a panic\n");
        abort();
    }
    return rr;
}

size_t fuzz_split(const uint8_t *data, size_t len, const uint8_t **parts, size_t *lens, size_t max)
{
    size_t n = 0, sep = strlen(FUZZ_SEP);
    const uint8_t *at;

    while (n + 1 < max && (at = memmem(data, len, FUZZ_SEP, sep)) != NULL) {
        parts[n] = data;
        lens[n++] = (size_t)(at - data);
        len -= (size_t)(at - data) + sep;
        data = at + sep;
    }
    parts[n] = data;
    lens[n++] = len;
    return n;
}

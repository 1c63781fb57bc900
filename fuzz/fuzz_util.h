/* fuzz_util.h: what the fuzz targets share: the test certificates made at run time, and the
 * rule that a caught panic is a finding, not a result. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "mtls.h"

/* The file `name` of the certificate directory (MTLS_FUZZ_CERTS, else the one `make fuzz`
 * fills), read whole and NUL-terminated; aborts when it is missing: every target needs its
 * certificates, and a run without them would fuzz nothing but error paths. */
uint8_t *fuzz_file(const char *name, size_t *len);

/* A certificate chain with its key from the certificate directory (`name`.pem, `name`.key). */
mtls_certkey *fuzz_certkey(const char *name);

/* The bridge turns a panic into MTLS_PANIC so that httpd lives on; for the fuzzer it is a bug
 * like any crash, and aborting makes libFuzzer keep the input. Returns rr. */
mtls_result fuzz_ok(mtls_result rr);

/* Splits `data` at the separator FUZZ_SEP into at most `max` parts (the last takes the rest):
 * inputs made of several files. Returns the number of parts. */
#define FUZZ_SEP "\n=|mtls|=\n"
size_t fuzz_split(const uint8_t *data, size_t len, const uint8_t **parts, size_t *lens, size_t max);

#endif

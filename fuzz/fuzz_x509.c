/* fuzz_x509.c: the certificate field formatter behind the SSL_CLIENT_* and SSL_SERVER_*
 * variables (mtls_x509_field), over any DER, every field, with buffers from too small to
 * ample, asked as tls_var.c asks. A peer chooses its certificate's contents, and with optional
 * client certificates these fields are made from one that failed no check but parsing. The
 * first input byte picks the clock (V_REMAIN) and the first buffer size, the second two
 * fields besides ENV (which formats nearly all the others: asking for every field of every
 * input would cost twenty times the time); the rest is the DER. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

static const char *const FIELDS[] = {
    "M_VERSION", "M_SERIAL", "V_START", "V_END", "V_REMAIN", "A_SIG", "A_KEY",
    "S_DN", "I_DN", "ENV",
    "S_DN_CN", "S_DN_O", "S_DN_OU", "S_DN_OU_1", "S_DN_OU_2", "S_DN_C", "S_DN_ST", "S_DN_SP",
    "S_DN_L", "S_DN_T", "S_DN_I", "S_DN_G", "S_DN_S", "S_DN_D", "S_DN_UID", "S_DN_Email",
    "S_DN_DC", "I_DN_CN", "I_DN_O", "I_DN_OU_1", "I_DN_C", "I_DN_Email",
    "SAN_DNS_0", "SAN_DNS_1", "SAN_DNS_7", "SAN_Email_0", "SAN_Email_1", "SAN_DNS_x",
    "SAN_DNS_-1", "SAN_DNS_99999999999999999999", "CERT", "", "S_DN_", "NO_SUCH",
};

static void field(const uint8_t *der, size_t len, const char *name, int64_t now, size_t first)
{
    char small[64], *buf;
    size_t need = 0;
    mtls_result rr = fuzz_ok(mtls_x509_field(der, len, name, now, small, first, &need));

    if (rr == MTLS_BUFFER_TOO_SMALL) {
        /* the second ask, with room for all of it (tls_var.c's cert_var) */
        buf = malloc(need + 1);
        rr = fuzz_ok(mtls_x509_field(der, len, name, now, buf, need + 1, &need));
        /* mtls.h promises a value without NUL, its length as strlen gives it */
        if (rr != MTLS_OK || strlen(buf) != need) {
            abort();
        }
        free(buf);
    }
    else if (rr == MTLS_OK && strlen(small) != need) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* from before the epoch to far ahead: V_REMAIN is a difference of the two */
    static const int64_t NOWS[] = { 1700000000, 0, -2000000000LL, 4102444800LL };
    const size_t nfields = sizeof(FIELDS) / sizeof(FIELDS[0]);
    int64_t now;
    size_t first;

    if (size < 2) {
        return 0;
    }
    now = NOWS[data[0] & 3];
    first = 1 + (data[0] >> 2);
    field(data + 2, size - 2, "ENV", now, first);
    field(data + 2, size - 2, FIELDS[data[1] % nfields], now, first);
    field(data + 2, size - 2, FIELDS[(data[1] / nfields + 7 * data[1]) % nfields], now, first);
    return 0;
}

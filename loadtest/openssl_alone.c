/* OpenSSL alone, server side: what a handshake, a resumption and a 1 KiB response cost a
 * server with the OpenSSL that mod_ssl runs with, measured the way
 * mtls/benches/rustls_alone.rs measures rustls: a client and a server on one thread, talking
 * through memory BIOs, only the server's own calls timed (SSL_new and its BIOs, the
 * handshake, reading the request, writing the response with its header and close_notify; as
 * there, freeing the connection is not), the figures measured in rounds that take them in
 * turn. With it, the glue of mod_ssl (Apache's CPU per connection - plain HTTP's - this) can
 * be set beside mod_tls' (docs/performance.md). `make bench-openssl` runs it; argument: the
 * timed connections per figure (default 300). The keys and certificates are made in memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define ROUNDS 5

static const char REQUEST[] =
    "GET /1k.bin HTTP/1.1\r\nHost: a.test\r\nUser-Agent: bench\r\nConnection: close\r\n\r\n";
/* the head rustls_alone's response has, before its 1 KiB */
static const char HEAD[] =
    "HTTP/1.1 200 OK\r\nDate: Mon, 30 Nov 2026 01:00:00 GMT\r\nServer: Apache\r\n"
    "Last-Modified: Mon, 30 Nov 2026 00:00:00 GMT\r\nETag: \"400-5f0\"\r\n"
    "Accept-Ranges: bytes\r\nContent-Length: 1024\r\nConnection: close\r\n"
    "Content-Type: application/octet-stream\r\n\r\n";

static void fail(const char *what)
{
    fprintf(stderr, "openssl_alone: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A key of the kind and a certificate for a.test, signed by itself. */
static void make_identity(int rsa, EVP_PKEY **key, X509 **cert)
{
    X509_NAME *name;

    *key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    *cert = X509_new();
    if (!*key || !*cert || !X509_set_version(*cert, 2)
        || !ASN1_INTEGER_set(X509_get_serialNumber(*cert), 1)
        || !X509_gmtime_adj(X509_getm_notBefore(*cert), -3600)
        || !X509_gmtime_adj(X509_getm_notAfter(*cert), 86400)
        || !X509_set_pubkey(*cert, *key) || !(name = X509_get_subject_name(*cert))
        || !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                       (const unsigned char *)"a.test", -1, -1, 0)
        || !X509_set_issuer_name(*cert, name) || !X509_sign(*cert, *key, EVP_sha256())) {
        fail("making a key and certificate");
    }
}

/* Moves what one side wrote to the other side's input. */
static void carry(BIO *from, BIO *to)
{
    char buf[16384];
    int n;

    while ((n = BIO_read(from, buf, sizeof buf)) > 0) {
        if (BIO_write(to, buf, n) != n) {
            fail("carrying bytes in memory");
        }
    }
}

/* Adds the time `call` takes to *spent. */
#define TIMED(spent, call) do { double t0_ = now(); call; *(spent) += now() - t0_; } while (0)

/* the response: the head rustls_alone's has, then 1 KiB; made once in main() */
static char response[sizeof HEAD - 1 + 1024];

/* One connection, resuming `session` if not NULL. Returns the client's session for the next
 * one; *resumed says whether this one was; the server's time is added to *spent. */
static SSL_SESSION *connection(SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION *session,
                               double *spent, int *resumed)
{
    char buf[4096];
    SSL *s = NULL, *c;
    BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem()), *s_in, *s_out;
    SSL_SESSION *next;
    int i, r = 0;

    if (!(c = SSL_new(cctx)) || !c_in || !c_out) {
        fail("a client");
    }
    SSL_set_bio(c, c_in, c_out);
    SSL_set_connect_state(c);
    SSL_set_tlsext_host_name(c, "a.test");
    if (session && !SSL_set_session(c, session)) {
        fail("SSL_set_session");
    }
    TIMED(spent, s = SSL_new(sctx); s_in = BIO_new(BIO_s_mem()); s_out = BIO_new(BIO_s_mem());
          if (s && s_in && s_out) { SSL_set_bio(s, s_in, s_out); SSL_set_accept_state(s); });
    if (!s || !s_in || !s_out) {
        fail("a server");
    }
    for (i = 0; i < 8 && !(r == 1 && SSL_is_init_finished(c)); i++) {
        SSL_do_handshake(c);
        carry(c_out, s_in);
        TIMED(spent, r = SSL_do_handshake(s));
        carry(s_out, c_in);
    }
    if (r != 1 || SSL_write(c, REQUEST, sizeof REQUEST - 1) <= 0) {
        fail("the handshake");
    }
    carry(c_out, s_in);
    TIMED(spent, r = SSL_read(s, buf, sizeof buf));
    if (r != (int)sizeof REQUEST - 1) {
        fail("the server reading the request");
    }
    TIMED(spent, r = SSL_write(s, response, sizeof response); SSL_shutdown(s));
    if (r != (int)sizeof response) {
        fail("the server writing the response");
    }
    carry(s_out, c_in);
    while (SSL_read(c, buf, sizeof buf) > 0) {
    }
    *resumed = SSL_session_reused(c);
    next = SSL_get1_session(c);
    /* the client closes properly too: OpenSSL does not resume a session it dropped */
    SSL_shutdown(c);
    SSL_free(c);
    SSL_free(s);
    return next;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The p-quantile of n sorted samples, linear between the two around it. */
static double quantile(const double *t, int n, double p)
{
    double at = p * (n - 1);
    int lo = (int)at, hi = lo + (lo < n - 1);

    return t[lo] + (t[hi] - t[lo]) * (at - lo);
}

enum resume { FULL, TICKET, SESSION_ID };

/* what a figure measures */
struct kind {
    const char *label;
    int version, rsa;
    enum resume resume;
};

struct figure {
    const char *label;
    SSL_CTX *sctx, *cctx;
    enum resume resume;
    SSL_SESSION *session;              /* the client's last one, to resume */
    double *t;                         /* seconds per timed connection */
    int n;
};

static void figure_init(struct figure *f, const struct kind *k, int n)
{
    EVP_PKEY *key;
    X509 *cert;

    memset(f, 0, sizeof *f);
    f->label = k->label;
    f->resume = k->resume;
    f->sctx = SSL_CTX_new(TLS_server_method());
    f->cctx = SSL_CTX_new(TLS_client_method());
    f->t = calloc((size_t)n, sizeof *f->t);
    if (!f->sctx || !f->cctx || !f->t) {
        fail("setting up");
    }
    make_identity(k->rsa, &key, &cert);
    if (!SSL_CTX_use_certificate(f->sctx, cert) || !SSL_CTX_use_PrivateKey(f->sctx, key)
        || !SSL_CTX_set_min_proto_version(f->sctx, k->version)
        || !SSL_CTX_set_max_proto_version(f->sctx, k->version)
        || !SSL_CTX_set_session_id_context(f->sctx, (const unsigned char *)"bench", 5)) {
        fail("the server's settings");
    }
    EVP_PKEY_free(key);
    X509_free(cert);
    /* Tickets on, as with mod_ssl's defaults; session ids from OpenSSL's own cache, without
     * tickets. A client that does not resume asks for no ticket (TLS 1.2), as
     * rustls_alone's does not. */
    SSL_CTX_set_session_cache_mode(f->sctx, k->resume == SESSION_ID ? SSL_SESS_CACHE_SERVER
                                                                     : SSL_SESS_CACHE_OFF);
    if (k->resume == SESSION_ID) {
        SSL_CTX_set_options(f->sctx, SSL_OP_NO_TICKET);
    }
    if (k->resume == FULL) {
        SSL_CTX_set_options(f->cctx, SSL_OP_NO_TICKET);
    }
    SSL_CTX_set_session_cache_mode(f->cctx, SSL_SESS_CACHE_CLIENT);
    SSL_CTX_set_verify(f->cctx, SSL_VERIFY_NONE, NULL);
}

/* `timed` connections after a tenth of that, plus one, untimed: they give a resuming client
 * its session. Each timed one is checked to be of the figure's kind. */
static void figure_round(struct figure *f, int timed)
{
    SSL_SESSION *next;
    double spent;
    int i, resumed, warm = timed / 10 + 1;

    for (i = 0; i < warm + timed; i++) {
        spent = 0;
        next = connection(f->sctx, f->cctx, f->resume == FULL ? NULL : f->session, &spent,
                          &resumed);
        SSL_SESSION_free(f->session);
        f->session = next;
        if (i >= warm) {
            if (resumed != (f->resume != FULL)) {
                fprintf(stderr, "openssl_alone: %s: a connection %s\n", f->label,
                        resumed ? "resumed" : "did not resume");
                exit(1);
            }
            f->t[f->n++] = spent;
        }
    }
}

static void figure_finish(struct figure *f)
{
    qsort(f->t, (size_t)f->n, sizeof *f->t, by_value);
    printf("%-74s median %7.1f us (quartiles %.1f-%.1f, n=%d)\n", f->label,
           quantile(f->t, f->n, 0.5) * 1e6, quantile(f->t, f->n, 0.25) * 1e6,
           quantile(f->t, f->n, 0.75) * 1e6, f->n);
    SSL_SESSION_free(f->session);
    SSL_CTX_free(f->sctx);
    SSL_CTX_free(f->cctx);
    free(f->t);
}

/* the figures, in rustls_alone's order */
static const struct kind KINDS[] = {
    {"full TLS 1.3 handshake, ECDSA P-256, and a 1 KiB response", TLS1_3_VERSION, 0, FULL},
    {"full TLS 1.3 handshake, RSA 2048, and a 1 KiB response", TLS1_3_VERSION, 1, FULL},
    {"full TLS 1.2 handshake, ECDSA P-256, and a 1 KiB response", TLS1_2_VERSION, 0, FULL},
    {"full TLS 1.2 handshake, RSA 2048, and a 1 KiB response", TLS1_2_VERSION, 1, FULL},
    {"resumed handshake, TLS 1.3, ticket, ECDSA P-256, and a 1 KiB response", TLS1_3_VERSION,
     0, TICKET},
    {"resumed handshake, TLS 1.2, ticket, ECDSA P-256, and a 1 KiB response", TLS1_2_VERSION,
     0, TICKET},
    {"resumed handshake, TLS 1.2, session id, ECDSA P-256, and a 1 KiB response",
     TLS1_2_VERSION, 0, SESSION_ID},
};
#define COUNT (sizeof KINDS / sizeof *KINDS)

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 300, per_round, r;
    struct figure figures[COUNT];
    size_t i;

    if (n < ROUNDS) {
        fail("usage: openssl_alone [timed connections per figure, at least 5]");
    }
    per_round = (n + ROUNDS - 1) / ROUNDS;
    memcpy(response, HEAD, sizeof HEAD - 1);
    for (r = 0; r < 1024; r++) {
        response[sizeof HEAD - 1 + r] = (char)(r % 251);
    }
    for (i = 0; i < COUNT; i++) {
        figure_init(&figures[i], &KINDS[i], per_round * ROUNDS);
    }
    for (r = 0; r < ROUNDS; r++) {
        for (i = 0; i < COUNT; i++) {
            figure_round(&figures[i], per_round);
        }
    }
    printf("OpenSSL alone (%s), server side only, in memory, %d rounds:\n",
           OpenSSL_version(OPENSSL_VERSION), ROUNDS);
    for (i = 0; i < COUNT; i++) {
        figure_finish(&figures[i]);
    }
    return 0;
}

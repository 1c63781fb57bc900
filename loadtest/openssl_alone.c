/* OpenSSL alone, server side: what a handshake, a resumption and a 1 KiB response cost a
 * server with the OpenSSL that mod_ssl runs with, measured the way
 * mtls/benches/rustls_alone.rs measures rustls: a client and a server on one thread, talking
 * through memory BIOs, and only the server's own calls timed (SSL_new to SSL_free: the
 * handshake, reading the request, writing the response and close_notify). With it, the glue
 * of mod_ssl (Apache's CPU per connection - plain HTTP's - this) can be set beside mod_tls'
 * (docs/performance.md). `make bench-openssl` runs it; argument: the timed connections per
 * figure (default 1000), after 100 to warm up. The keys and certificates are made in memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define WARM_UP 100

static const char REQUEST[] =
    "GET /1k.bin HTTP/1.1\r\nHost: a.test\r\nUser-Agent: bench\r\nConnection: close\r\n\r\n";

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

struct server_time {
    double spent;
};

#define TIMED(st, call) do { double t0_ = now(); call; (st)->spent += now() - t0_; } while (0)

/* One connection, resuming `session` if not NULL. Returns the client's session for the next
 * one; *resumed says whether this one was. */
static SSL_SESSION *connection(SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION *session,
                               struct server_time *st, int *resumed)
{
    static char response[1024];
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
    TIMED(st, s = SSL_new(sctx); s_in = BIO_new(BIO_s_mem()); s_out = BIO_new(BIO_s_mem());
          if (s && s_in && s_out) { SSL_set_bio(s, s_in, s_out); SSL_set_accept_state(s); });
    if (!s || !s_in || !s_out) {
        fail("a server");
    }
    for (i = 0; i < 8 && !(r == 1 && SSL_is_init_finished(c)); i++) {
        SSL_do_handshake(c);
        carry(c_out, s_in);
        TIMED(st, r = SSL_do_handshake(s));
        carry(s_out, c_in);
    }
    if (r != 1 || SSL_write(c, REQUEST, sizeof REQUEST - 1) <= 0) {
        fail("the handshake");
    }
    carry(c_out, s_in);
    TIMED(st, r = SSL_read(s, buf, sizeof buf));
    if (r != (int)sizeof REQUEST - 1) {
        fail("the server reading the request");
    }
    memset(response, 'x', sizeof response);
    TIMED(st, r = SSL_write(s, response, sizeof response); SSL_shutdown(s));
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
    TIMED(st, SSL_free(s));
    return next;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

enum resume { FULL, TICKET, SESSION_ID };

static void measure(const char *label, int version, int rsa, enum resume resume, int n)
{
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    SSL_SESSION *session = NULL, *next;
    struct server_time st;
    double *t = calloc((size_t)n, sizeof *t);
    EVP_PKEY *key;
    X509 *cert;
    int i, resumed, count = 0;

    if (!sctx || !cctx || !t) {
        fail("setting up");
    }
    make_identity(rsa, &key, &cert);
    if (!SSL_CTX_use_certificate(sctx, cert) || !SSL_CTX_use_PrivateKey(sctx, key)
        || !SSL_CTX_set_min_proto_version(sctx, version)
        || !SSL_CTX_set_max_proto_version(sctx, version)
        || !SSL_CTX_set_session_id_context(sctx, (const unsigned char *)"bench", 5)) {
        fail("the server's settings");
    }
    /* Full handshakes and tickets as mod_ssl with its defaults (tickets on); session ids
     * from OpenSSL's own cache, without tickets. */
    SSL_CTX_set_session_cache_mode(sctx, resume == SESSION_ID ? SSL_SESS_CACHE_SERVER
                                                               : SSL_SESS_CACHE_OFF);
    if (resume == SESSION_ID) {
        SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    }
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    for (i = -WARM_UP; i < n; i++) {
        st.spent = 0;
        next = connection(sctx, cctx, resume == FULL ? NULL : session, &st, &resumed);
        SSL_SESSION_free(session);
        session = next;
        if (i >= 0) {
            t[i] = st.spent;
            count += resumed;
        }
    }
    if (count != (resume == FULL ? 0 : n)) {
        fprintf(stderr, "openssl_alone: %s: %d of %d connections resumed\n", label, count, n);
        exit(1);
    }
    qsort(t, (size_t)n, sizeof *t, by_value);
    printf("%-74s median %7.1f us (quartiles %.1f-%.1f)\n", label, t[n / 2] * 1e6,
           t[n / 4] * 1e6, t[3 * n / 4] * 1e6);
    SSL_SESSION_free(session);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    EVP_PKEY_free(key);
    X509_free(cert);
    free(t);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000;

    if (n < 4) {
        fail("usage: openssl_alone [connections per figure, at least 4]");
    }
    printf("OpenSSL alone (%s), server side, %d connections per figure\n",
           OpenSSL_version(OPENSSL_VERSION), n);
    measure("full TLS 1.3 handshake, ECDSA P-256, and a 1 KiB response", TLS1_3_VERSION, 0,
            FULL, n);
    measure("full TLS 1.3 handshake, RSA 2048, and a 1 KiB response", TLS1_3_VERSION, 1, FULL, n);
    measure("full TLS 1.2 handshake, ECDSA P-256, and a 1 KiB response", TLS1_2_VERSION, 0,
            FULL, n);
    measure("full TLS 1.2 handshake, RSA 2048, and a 1 KiB response", TLS1_2_VERSION, 1, FULL, n);
    measure("resumed handshake, TLS 1.3, ticket, ECDSA P-256, and a 1 KiB response",
            TLS1_3_VERSION, 0, TICKET, n);
    measure("resumed handshake, TLS 1.2, ticket, ECDSA P-256, and a 1 KiB response",
            TLS1_2_VERSION, 0, TICKET, n);
    measure("resumed handshake, TLS 1.2, session id, ECDSA P-256, and a 1 KiB response",
            TLS1_2_VERSION, 0, SESSION_ID, n);
    return 0;
}

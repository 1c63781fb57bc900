/* fuzz_handshake.c: the bridge's record path as a peer drives it. The first input byte says
 * which side this process plays and how the rest arrives; the rest is what the peer sent:
 *
 *   bit 0     0: the server (mod_tls' incoming connections), fed a client's bytes;
 *             1: the client (mod_tls to a backend), fed a server's bytes
 *   bits 1-3  the client: its config variant (see CLIENT_VARIANTS); the server: a salt for
 *             its random numbers (two recorded connections must not draw the same ones: the
 *             second would find its session id equal to the first's, a resumption)
 *   bits 4-7  how the bytes are cut into reads, and how large the buffers are that TLS and
 *             plaintext are taken out with (0: all at once, in large buffers)
 *
 * The calls follow tls_filter.c and tls_conn.c: TLS in, process, the hello answered by SNI
 * and ALPN (or refused), the handshake's results looked at (peer certificates formatted as
 * tls_var.c does), plaintext read and echoed, close_notify answered, the transport's EOF.
 *
 * Replaying a handshake beyond the peer's first flight needs this side to draw the same random
 * numbers as when it was recorded: ring takes them from getrandom(2) through syscall(), which
 * is answered here from a generator seeded anew for every input. It also needs the same clock
 * (a TLS 1.2 ticket, with its time, is part of what the Finished messages cover): while the
 * bridge works, the time is the one fuzz/seeds.py wrote, shortly after it made the
 * certificates. MTLS_FUZZ_RECORD=<dir> makes the seeds that rely on both: bridge clients
 * talking to bridge servers, in memory, each side's bytes saved as an input for the other. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>

#include "fuzz_util.h"

enum { SIDE_NONE = -1, SIDE_SERVER = 0, SIDE_CLIENT = 1 };

/* ---- random numbers ---------------------------------------------------------------- */

static int rng_side = SIDE_NONE;   /* whose stream calls draw from now; NONE: the kernel's */
static uint64_t rng_state[2];
static int verbose;       /* recording, or MTLS_FUZZ_VERBOSE set: say how a connection went */

static void rng_reset(unsigned salt)
{
    rng_state[SIDE_SERVER] = 0x6d746c7373727672ULL + salt;
    rng_state[SIDE_CLIENT] = 0x6d746c73636c6e74ULL + salt;
}

/* splitmix64: good enough for key generation to succeed, and nothing here is secret */
static void rng_fill(uint8_t *buf, size_t len)
{
    uint64_t *s = &rng_state[rng_side], z;
    size_t i;

    for (i = 0; i < len; ++i) {
        if (i % 8 == 0) {
            z = (*s += 0x9e3779b97f4a7c15ULL);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            z ^= z >> 31;
        }
        buf[i] = (uint8_t)(z >> (8 * (i % 8)));
    }
}

/* Every argument of a syscall is one register wide, so passing six on is right for any. */
long syscall(long nr, ...)
{
    static long (*next)(long, ...);
    long a[6];
    va_list ap;
    int i;

    va_start(ap, nr);
    for (i = 0; i < 6; ++i) {
        a[i] = va_arg(ap, long);
    }
    va_end(ap);
    if (nr == SYS_getrandom && rng_side != SIDE_NONE) {
        rng_fill((uint8_t *)a[0], (size_t)a[1]);
        return a[1];
    }
    if (!next) {
        next = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    }
    return next(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* The clock rustls reads (SystemTime, CLOCK_REALTIME): fixed while the bridge works. */
static time_t fixed_now;
static volatile sig_atomic_t in_alarm;   /* libFuzzer's timeout check, which needs real time */
static struct sigaction fuzzer_alarm;

/* libFuzzer checks for a slow input from SIGALRM, with the same clock, while an input runs:
 * it must see the real time, or the fixed one makes every alarm look like a timeout. */
static void on_alarm(int sig, siginfo_t *info, void *uc)
{
    in_alarm = 1;
    if (fuzzer_alarm.sa_flags & SA_SIGINFO) {
        fuzzer_alarm.sa_sigaction(sig, info, uc);
    }
    else if (fuzzer_alarm.sa_handler != SIG_DFL && fuzzer_alarm.sa_handler != SIG_IGN) {
        fuzzer_alarm.sa_handler(sig);
    }
    in_alarm = 0;
}

/* Once libFuzzer has installed its handler, which it does after LLVMFuzzerInitialize. */
static void alarm_wrap(void)
{
    static int done;
    struct sigaction sa;

    if (done) {
        return;
    }
    done = 1;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_alarm;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &fuzzer_alarm);
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*next)(clockid_t, struct timespec *);

    if (id == CLOCK_REALTIME && rng_side != SIDE_NONE && fixed_now && !in_alarm) {
        ts->tv_sec = fixed_now;
        ts->tv_nsec = 0;
        return 0;
    }
    if (!next) {
        next = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    }
    return next(id, ts);
}

/* Rust's std asks glibc's getrandom() for its hash keys: the same stream, for the same
 * reason. */
ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
    if (rng_side != SIDE_NONE) {
        rng_fill(buf, len);
        return (ssize_t)len;
    }
    return syscall(SYS_getrandom, buf, len, flags);
}

/* ---- the server's session store (reset for every input, so that inputs replay) --------- */

#define STORE_SLOTS 4
#define STORE_KEY 64
#define STORE_VAL 4096

typedef struct {
    size_t key_len, val_len;   /* key_len 0: free */
    uint8_t key[STORE_KEY], val[STORE_VAL];
} slot_t;

static slot_t store[STORE_SLOTS];

static slot_t *store_find(const uint8_t *key, size_t key_len)
{
    int i;

    for (i = 0; i < STORE_SLOTS; ++i) {
        if (store[i].key_len == key_len && key_len && !memcmp(store[i].key, key, key_len)) {
            return &store[i];
        }
    }
    return NULL;
}

static int store_get(void *userdata, const uint8_t *key, size_t key_len, uint8_t *buf,
                     size_t buf_len, size_t *out_len)
{
    slot_t *s = store_find(key, key_len);

    (void)userdata;
    if (!s || s->val_len > buf_len) {
        return 1;
    }
    memcpy(buf, s->val, s->val_len);
    *out_len = s->val_len;
    return 0;
}

static int store_put(void *userdata, const uint8_t *key, size_t key_len, const uint8_t *val,
                     size_t val_len)
{
    slot_t *s = store_find(key, key_len);
    int i;

    (void)userdata;
    for (i = 0; !s && i < STORE_SLOTS; ++i) {
        if (!store[i].key_len) {
            s = &store[i];
        }
    }
    if (!s || !key_len || key_len > STORE_KEY || val_len > STORE_VAL) {
        return 1;
    }
    memcpy(s->key, key, key_len);
    memcpy(s->val, val, val_len);
    s->key_len = key_len;
    s->val_len = val_len;
    return 0;
}

static void store_remove(void *userdata, const uint8_t *key, size_t key_len)
{
    slot_t *s = store_find(key, key_len);

    (void)userdata;
    if (s) {
        s->key_len = 0;
    }
}

/* ---- configs, made once ----------------------------------------------------------------- */

/* A server config and its ALPN variants, as tls_setup.c makes them for a vhost. */
typedef struct {
    const mtls_server_config *plain, *h2, *http11;
} vhost_t;

static vhost_t vh_main;     /* ECDSA and RSA, tickets, optional client certificates */
static vhost_t vh_rsa;      /* RSA only, server order, stateful sessions in the store */
static vhost_t vh_strict;   /* TLS 1.3, ECDSA, required client certificates, no state */
static mtls_certkey *ck_ec, *ck_rsa, *ck_client;
static uint8_t *ca_pem, *crl_pem;
static size_t ca_len, crl_len;

#define ALERT_UNRECOGNIZED_NAME 112
#define ALERT_NO_APPLICATION_PROTOCOL 120

static void check_config(mtls_result rr, const char *what, const char *err)
{
    if (rr != MTLS_OK) {
        fprintf(stderr, "fuzz_handshake: %s: %s\n", what, err);
        abort();
    }
}

static void vhost_build(vhost_t *vh, mtls_server_config_builder *b, const char *what)
{
    char err[256] = "";

    check_config(mtls_server_config_builder_build(b, &vh->plain, err, sizeof(err)), what, err);
    check_config(mtls_server_config_with_alpn(vh->plain, (const uint8_t *)"h2", 2, &vh->h2),
                 what, "h2");
    check_config(mtls_server_config_with_alpn(vh->plain, (const uint8_t *)"http/1.1", 8,
                                              &vh->http11), what, "http/1.1");
}

static void servers_init(void)
{
    static const uint16_t strict_suites[] = { 0x1302, 0x1301 };
    static const uint16_t rsa_suites[] = { 0xC030, 0xC02F, 0xCCA8, 0x1303 };
    uint8_t keys[2 * MTLS_TICKET_KEY_LEN];
    mtls_server_config_builder *b;
    mtls_ticketer *t;
    char err[256] = "", *clock;
    size_t len;

    clock = (char *)fuzz_file("clock", &len);
    fixed_now = (time_t)strtoll(clock, NULL, 10);
    free(clock);
    ck_ec = fuzz_certkey("ec");
    ck_rsa = fuzz_certkey("rsa");
    ck_client = fuzz_certkey("client");
    ca_pem = fuzz_file("ca.pem", &ca_len);
    crl_pem = fuzz_file("crl.pem", &crl_len);

    /* fixed keys: a ticket in a recorded ClientHello opens in every later run */
    memset(keys, 0x5a, sizeof(keys));
    t = mtls_ticketer_new(3600);
    check_config(mtls_ticketer_set_keys(t, keys, 2, 1), "ticket keys", "");

    b = mtls_server_config_builder_new();
    mtls_server_config_builder_add_certkey(b, ck_ec);
    mtls_server_config_builder_add_certkey(b, ck_rsa);
    mtls_server_config_builder_set_ticketer(b, t);
    mtls_server_config_builder_set_session_store(b, NULL, NULL, NULL);
    check_config(mtls_server_config_builder_set_client_auth(b, ca_pem, ca_len, crl_pem, crl_len,
                                                            false, err, sizeof(err)),
                 "client auth", err);
    vhost_build(&vh_main, b, "main");
    mtls_ticketer_free(t);

    b = mtls_server_config_builder_new();
    mtls_server_config_builder_add_certkey(b, ck_rsa);
    mtls_server_config_builder_set_suites(b, rsa_suites, sizeof(rsa_suites) / sizeof(rsa_suites[0]));
    mtls_server_config_builder_set_honor_client_order(b, false);
    mtls_server_config_builder_set_session_store(b, store_get, store_put, store_remove);
    vhost_build(&vh_rsa, b, "rsa");

    b = mtls_server_config_builder_new();
    mtls_server_config_builder_add_certkey(b, ck_ec);
    mtls_server_config_builder_set_min_version(b, 0x0304);
    mtls_server_config_builder_set_suites(b, strict_suites,
                                          sizeof(strict_suites) / sizeof(strict_suites[0]));
    mtls_server_config_builder_set_session_store(b, NULL, NULL, NULL);
    check_config(mtls_server_config_builder_set_client_auth(b, ca_pem, ca_len, NULL, 0, true,
                                                            err, sizeof(err)),
                 "strict client auth", err);
    vhost_build(&vh_strict, b, "strict");
}

/* The client's settings, by bits 1-3 of the first byte: versions, suites, ALPN offered,
 * whether it has a certificate for servers that ask. */
typedef struct {
    uint16_t min_version;
    uint16_t suites[3];        /* 0-terminated; none: every suite */
    const char *alpn;          /* in TLS' form: length byte, name */
    int with_cert;
} client_variant_t;

static const client_variant_t CLIENT_VARIANTS[8] = {
    { 0x0303, { 0 }, "", 0 },
    { 0x0303, { 0 }, "\x02h2\x08http/1.1", 1 },
    { 0x0304, { 0 }, "\x08http/1.1", 1 },
    { 0x0303, { 0xC02B, 0xC02F, 0 }, "", 1 },
    { 0x0303, { 0xCCA9, 0xCCA8, 0 }, "\x02h2", 0 },
    { 0x0303, { 0 }, "\x06spdy/1", 0 },
    { 0x0304, { 0x1303, 0 }, "", 1 },
    { 0x0303, { 0xC030, 0xC02C, 0 }, "\x08http/1.1\x02h2", 1 },
};

/* Made anew for each input: a client config keeps the sessions it was given, and an input
 * must not find one an earlier input left. */
static const mtls_client_config *client_config(const client_variant_t *v)
{
    mtls_client_config_builder *b = mtls_client_config_builder_new();
    const mtls_client_config *base, *with_alpn;
    char err[256] = "";
    size_t n = 0;

    check_config(mtls_client_config_builder_add_ca(b, ca_pem, ca_len, true, NULL, err,
                                                   sizeof(err)), "client CA", err);
    mtls_client_config_builder_set_min_version(b, v->min_version);
    while (v->suites[n]) {
        ++n;
    }
    if (n) {
        check_config(mtls_client_config_builder_set_suites(b, v->suites, n), "client suites", "");
    }
    if (v->with_cert) {
        mtls_client_config_builder_add_certkey(b, ck_client);
    }
    check_config(mtls_client_config_builder_build(b, &base, err, sizeof(err)), "client", err);
    if (!*v->alpn) {
        return base;
    }
    check_config(mtls_client_config_with_alpn(base, (const uint8_t *)v->alpn, strlen(v->alpn),
                                              &with_alpn), "client ALPN", v->alpn);
    mtls_client_config_free(base);
    return with_alpn;
}

/* ---- one side of a connection ----------------------------------------------------------- */

typedef struct {
    mtls_conn *conn;
    int side;
    int established;   /* the handshake's results were looked at */
    int over;          /* failed, or closed (close_notify or EOF): nothing more to do */
    size_t buf_size;   /* for TLS and plaintext taken out (small sizes split records) */
    uint8_t *sent;     /* what it sent, when recording */
    size_t sent_len, sent_cap;
    const char *request;  /* a client's, sent once established */
} peer_t;

static void peer_keep(peer_t *p, const uint8_t *data, size_t len)
{
    if (!p->sent_cap) {
        return;
    }
    if (p->sent_len + len > p->sent_cap) {
        len = p->sent_cap - p->sent_len;
    }
    memcpy(p->sent + p->sent_len, data, len);
    p->sent_len += len;
}

/* Sends what TLS waits, as tls_filter.c's output does; after a failure that is the alert. */
static void peer_flush(peer_t *p)
{
    uint8_t buf[16384];
    size_t n, size = p->buf_size < sizeof(buf) ? p->buf_size : sizeof(buf);

    while (mtls_conn_wants_write(p->conn)) {
        if (fuzz_ok(mtls_conn_write_tls(p->conn, buf, size, &n)) != MTLS_OK || n == 0) {
            p->over = 1;
            return;
        }
        peer_keep(p, buf, n);
    }
}

static void peer_fail(peer_t *p, mtls_result rr)
{
    char detail[256], text[128];

    fuzz_ok(rr);
    mtls_conn_error(p->conn, detail, sizeof(detail));
    mtls_result_text(rr, text, sizeof(text));
    if (verbose) {
        fprintf(stderr, "fuzz_handshake: %s: %s (%s)\n", p->side == SIDE_SERVER ? "server"
                : "client", text, detail);
    }
    (void)mtls_result_is_peer_fault(rr);
    p->over = 1;
    peer_flush(p);
}

/* Plaintext in several pieces, taken in part while rustls' buffer is full (tls_filter.c). */
static void peer_write(peer_t *p, const uint8_t *data, size_t len)
{
    const uint8_t *bufs[3];
    size_t lens[3], taken, i, third = len / 3;

    bufs[0] = data;
    lens[0] = third;
    bufs[1] = NULL;
    lens[1] = 0;
    bufs[2] = data + third;
    lens[2] = len - third;
    for (i = 0; i < 3 && !p->over;) {
        if (fuzz_ok(mtls_conn_writev(p->conn, bufs + i, lens + i, 3 - i, &taken)) != MTLS_OK) {
            p->over = 1;
            return;
        }
        for (; i < 3 && taken >= lens[i]; ++i) {
            taken -= lens[i];
        }
        if (i < 3) {
            bufs[i] += taken;
            lens[i] -= taken;
        }
        peer_flush(p);
    }
}

/* What tls_conn.c copies out once the handshake is done, and what tls_var.c makes of the
 * peer's certificates. */
static void peer_established(peer_t *p)
{
    const uint8_t *data;
    size_t len, i, n, need;
    char stack[512], *big;

    p->established = 1;
    if (verbose) {
        fprintf(stderr, "fuzz_handshake: %s: TLS 0x%04x, suite 0x%04x, resumed %d, cert %d\n",
                p->side == SIDE_SERVER ? "server" : "client", mtls_conn_protocol_version(p->conn),
                mtls_conn_cipher_suite(p->conn), mtls_conn_is_resumed(p->conn),
                (int)mtls_conn_certkey_index(p->conn));
    }
    (void)mtls_conn_protocol_version(p->conn);
    (void)mtls_conn_cipher_suite(p->conn);
    (void)mtls_conn_is_resumed(p->conn);
    (void)mtls_conn_certkey_index(p->conn);
    fuzz_ok(mtls_conn_alpn(p->conn, &data, &len));
    n = mtls_conn_peer_cert_count(p->conn);
    for (i = 0; i <= n; ++i) {
        if (fuzz_ok(mtls_conn_peer_cert(p->conn, i, &data, &len)) != MTLS_OK) {
            continue;
        }
        if (fuzz_ok(mtls_x509_field(data, len, "ENV", 1700000000, stack, sizeof(stack), &need))
            == MTLS_BUFFER_TOO_SMALL) {
            big = malloc(need + 1);
            fuzz_ok(mtls_x509_field(data, len, "ENV", 1700000000, big, need + 1, &need));
            free(big);
        }
    }
    if (p->request) {
        peer_write(p, (const uint8_t *)p->request, strlen(p->request));
    }
}

/* tls_conn.c's choice: the vhost by SNI (one name refused as TLSStrictSNI refuses unknown
 * ones), then the ALPN variant of what both speak, h2 first as Apache prefers it. */
static void server_on_hello(peer_t *p)
{
    const vhost_t *vh = &vh_main;
    const mtls_server_config *config;
    const uint8_t *proto;
    const char *name;
    size_t len, i, n;
    int h2 = 0, http11 = 0;
    mtls_result rr;

    if (fuzz_ok(mtls_conn_sni(p->conn, &name, &len)) == MTLS_OK && len) {
        if (len == 11 && !memcmp(name, "refuse.test", len)) {
            rr = mtls_conn_refuse(p->conn, ALERT_UNRECOGNIZED_NAME);
            peer_fail(p, rr == MTLS_OK ? MTLS_PEER_INCOMPATIBLE : rr);
            return;
        }
        if (len == 8 && !memcmp(name, "rsa.test", len)) {
            vh = &vh_rsa;
        }
        else if (len == 11 && !memcmp(name, "strict.test", len)) {
            vh = &vh_strict;
        }
    }
    n = mtls_conn_hello_alpn_count(p->conn);
    for (i = 0; i < n; ++i) {
        if (fuzz_ok(mtls_conn_hello_alpn(p->conn, i, &proto, &len)) == MTLS_OK) {
            h2 |= len == 2 && !memcmp(proto, "h2", 2);
            http11 |= len == 8 && !memcmp(proto, "http/1.1", 8);
        }
    }
    if (n && vh == &vh_strict && !h2 && !http11) {
        rr = mtls_conn_refuse(p->conn, ALERT_NO_APPLICATION_PROTOCOL);
        peer_fail(p, rr == MTLS_OK ? MTLS_PEER_INCOMPATIBLE : rr);
        return;
    }
    config = h2 ? vh->h2 : http11 ? vh->http11 : vh->plain;
    if ((rr = fuzz_ok(mtls_conn_start(p->conn, config))) != MTLS_OK) {
        peer_fail(p, rr);
    }
}

static void peer_take_plain(peer_t *p)
{
    uint8_t buf[16384];
    size_t n, size = p->buf_size < sizeof(buf) ? p->buf_size : sizeof(buf);
    mtls_result rr;

    while (!p->over) {
        rr = fuzz_ok(mtls_conn_read(p->conn, buf, size, &n));
        if (rr == MTLS_OK) {
            if (p->side == SIDE_SERVER) {
                peer_write(p, buf, n);
            }
            continue;
        }
        if (rr == MTLS_EOF) {
            if (verbose) {
                fprintf(stderr, "fuzz_handshake: close_notify received\n");
            }
            mtls_conn_send_close_notify(p->conn);
            p->over = 1;
            peer_flush(p);
        }
        else if (rr == MTLS_PEER_UNEXPECTED_EOF) {
            p->over = 1;
        }
        else if (rr != MTLS_WOULD_BLOCK) {
            peer_fail(p, rr);
        }
        return;
    }
}

static void peer_process(peer_t *p)
{
    const uint8_t *name;
    size_t len;
    mtls_result rr = fuzz_ok(mtls_conn_process(p->conn));

    if (rr == MTLS_HELLO) {
        server_on_hello(p);
        if (p->over) {
            return;
        }
        rr = fuzz_ok(mtls_conn_process(p->conn));
    }
    if (rr == MTLS_PEER_BAD_SNI) {
        fuzz_ok(mtls_conn_refused_sni(p->conn, &name, &len));
    }
    if (rr != MTLS_OK && rr != MTLS_WOULD_BLOCK) {
        peer_fail(p, rr);
        return;
    }
    if (!p->established && !mtls_conn_is_handshaking(p->conn)) {
        peer_established(p);
    }
    if (p->established) {
        peer_take_plain(p);
    }
}

/* tls_filter.c's in_feed: TLS in, as much as rustls takes, processed; len 0 is the EOF. */
static void peer_feed(peer_t *p, const uint8_t *data, size_t len)
{
    mtls_result rr;
    size_t n;
    int eof = len == 0;

    while (!p->over) {
        rr = fuzz_ok(mtls_conn_read_tls(p->conn, data, len, &n));
        if (rr != MTLS_OK) {
            peer_fail(p, rr);
            break;
        }
        peer_process(p);
        if (n == 0 && !eof) {
            if (!p->over) {
                peer_fail(p, MTLS_PEER_INVALID);
            }
            break;
        }
        if (n >= len) {
            break;
        }
        data += n;
        len -= n;
    }
    if (!p->over) {
        peer_flush(p);
    }
    if (eof) {
        p->over = 1;
    }
}

static void peer_init(peer_t *p, int side, size_t buf_size)
{
    memset(p, 0, sizeof(*p));
    p->side = side;
    p->buf_size = buf_size;
}

static int client_start(peer_t *p, const mtls_client_config *config, const char *name)
{
    p->request = "GET /fuzz HTTP/1.1\r\nHost: server.test\r\n\r\n";
    if (fuzz_ok(mtls_conn_new_client(config, (const uint8_t *)name, strlen(name), 443, &p->conn))
        != MTLS_OK) {
        return 0;
    }
    peer_flush(p);
    return 1;
}

/* ---- replay ------------------------------------------------------------------------------ */

/* Read sizes: 0 selects all at once, anything else a cycle of awkward sizes from its
 * position, across record boundaries. */
static const size_t CHUNKS[] = { 1, 5, 16, 300, 4096, 17, 2, 1000, 3, 64, 9000, 6, 128, 511, 1, 40 };
#define NCHUNKS (sizeof(CHUNKS) / sizeof(CHUNKS[0]))

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned mode, cut, k;
    const mtls_client_config *config = NULL;
    peer_t p;
    size_t n;

    alarm_wrap();
    if (size < 1) {
        return 0;
    }
    mode = data[0];
    cut = mode >> 4;
    ++data;
    --size;
    /* the config first, as when recording: only the connection's draws are replayed */
    if (mode & 1) {
        config = client_config(&CLIENT_VARIANTS[(mode >> 1) & 7]);
    }
    rng_reset(mode & 1 ? 0 : (mode >> 1) & 7);
    memset(store, 0, sizeof(store));
    rng_side = mode & 1 ? SIDE_CLIENT : SIDE_SERVER;
    peer_init(&p, rng_side, cut ? CHUNKS[(cut * 3) % NCHUNKS] * 7 + 1 : 16384);
    if (rng_side == SIDE_SERVER) {
        p.conn = mtls_conn_new();
        mtls_conn_set_userdata(p.conn, store);
    }
    else {
        if (!client_start(&p, config, "server.test")) {
            p.over = 1;
        }
    }
    for (k = cut; size > 0 && !p.over; ++k) {
        n = cut ? CHUNKS[k % NCHUNKS] : size;
        n = n < size ? n : size;
        peer_feed(&p, data, n);
        data += n;
        size -= n;
    }
    if (!p.over) {
        peer_feed(&p, NULL, 0);
    }
    mtls_conn_free(p.conn);
    mtls_client_config_free(config);
    rng_side = SIDE_NONE;
    return 0;
}

/* ---- recording --------------------------------------------------------------------------- */

static void save(const char *dir, const char *name, unsigned mode, const peer_t *p)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!(f = fopen(path, "wb")) || fputc((int)mode, f) == EOF
        || fwrite(p->sent, 1, p->sent_len, f) != p->sent_len || fclose(f)) {
        fprintf(stderr, "fuzz_handshake: cannot write %s\n", path);
        exit(1);
    }
}

/* One connection, both sides in memory, each call drawing from its side's stream as in the
 * replay. Returns whether the handshake completed. */
static int converse(const mtls_client_config *config, const char *name, unsigned salt,
                    peer_t *c, peer_t *s)
{
    size_t cs = 0, sc = 0;
    int rounds, closing = 0;

    rng_reset(salt);
    memset(store, 0, sizeof(store));
    rng_side = SIDE_CLIENT;
    if (!client_start(c, config, name)) {
        rng_side = SIDE_NONE;
        return 0;
    }
    rng_side = SIDE_SERVER;
    s->conn = mtls_conn_new();
    mtls_conn_set_userdata(s->conn, store);
    for (rounds = 0; rounds < 50; ++rounds) {
        if (c->sent_len > cs) {
            rng_side = SIDE_SERVER;
            peer_feed(s, c->sent + cs, c->sent_len - cs);
            cs = c->sent_len;
        }
        else if (s->sent_len > sc && !c->over) {
            rng_side = SIDE_CLIENT;
            peer_feed(c, s->sent + sc, s->sent_len - sc);
            sc = s->sent_len;
        }
        else if (c->established && !c->over && !closing) {
            /* the request was answered: the client says goodbye, the server answers it */
            rng_side = SIDE_CLIENT;
            closing = 1;
            mtls_conn_send_close_notify(c->conn);
            peer_flush(c);
        }
        else {
            break;
        }
    }
    rng_side = SIDE_NONE;
    return c->established;
}

static void record(const char *dir)
{
    static const char *names[] = { "server.test", "rsa.test", "strict.test", "refuse.test",
                                   "other.test" };
    static uint8_t cbuf[65536], sbuf[65536];
    const mtls_client_config *config;
    char file[128];
    peer_t c, s;
    unsigned v, i, again;
    int done = 0;

    for (v = 0; v < 8; ++v) {
        for (i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
            config = client_config(&CLIENT_VARIANTS[v]);
            /* the second time round a session from the first may be resumed: only the client
             * side of that replays (the client config of a replay has none to offer) */
            for (again = 0; again < 2; ++again) {
                peer_init(&c, SIDE_CLIENT, 16384);
                peer_init(&s, SIDE_SERVER, 16384);
                c.sent = cbuf;
                c.sent_cap = sizeof(cbuf);
                s.sent = sbuf;
                s.sent_cap = sizeof(sbuf);
                if (verbose) {
                    fprintf(stderr, "fuzz_handshake: variant %u, %s, #%u\n", v, names[i], again);
                }
                done += converse(config, names[i], again, &c, &s);
                snprintf(file, sizeof(file), "rec-server-v%u-%s-%u", v, names[i], again);
                save(dir, file, again << 1, &c);
                if (!again && !strcmp(names[i], "server.test")) {
                    snprintf(file, sizeof(file), "rec-client-v%u", v);
                    save(dir, file, 0x01 | (v << 1), &s);
                }
                mtls_conn_free(c.conn);
                mtls_conn_free(s.conn);
            }
            mtls_client_config_free(config);
        }
    }
    fprintf(stderr, "fuzz_handshake: recorded %d complete handshakes into %s\n", done, dir);
    exit(done ? 0 : 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("MTLS_FUZZ_RECORD");

    (void)argc;
    (void)argv;
    verbose = getenv("MTLS_FUZZ_VERBOSE") != NULL;
    /* ring draws a secret for its ECDSA nonces when it loads a key: the keys must be the
     * same in every process for a recorded signature to be made again */
    rng_reset(0);
    rng_side = SIDE_SERVER;
    servers_init();
    rng_side = SIDE_NONE;
    if (dir && *dir) {
        verbose = 1;
        record(dir);
    }
    return 0;
}

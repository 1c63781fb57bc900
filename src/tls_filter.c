/* tls_filter.c: the brigade/record bridge. The input filter reads TLS from the network,
 * feeds rustls and keeps the decrypted bytes in plain_in to answer every read mode; it also
 * drives the handshake, lazily on the first read, so mod_reqtimeout's handshake stage applies.
 * The output filter gathers what comes up to a FLUSH, EOS or EOC into full records (a
 * response's head and body share one), hands plaintext to rustls in bounded pieces and passes
 * the TLS bytes on as they come, so memory stays bounded whatever the response size. */
#include <httpd.h>
#include <apr_strings.h>
#include <http_connection.h>
#include <http_log.h>
#include <http_request.h>

#include "tls_filter.h"
#include "tls_plain.h"
#include "tls_proxy.h"
#include "tls_status.h"
#include "tls_log.h"

APLOG_USE_MODULE(tls);

#define TLS_REC_MAX     16384                  /* plaintext bytes in a full TLS record */
#define TLS_REC_HDR     5                      /* type, version, length */
#define TLS_OUT_CHUNK   (TLS_REC_MAX + 1024)   /* room for one full record with overhead */
#define TLS_OUT_PASS    (32 * 1024)            /* pass TLS on once this much waits; also
                                                * the most plaintext rustls gets at once */
#define TLS_OUT_IOV     64                     /* data buckets gathered into one write */
#define TLS_OUT_GATHER  (4 * TLS_REC_MAX)      /* plaintext gathered before encrypting */
#define TLS_SMALL       4096                   /* stack buffers for little pieces: every
                                                * worker thread's stack keeps the pages it
                                                * touched once, whatever its connection */

/* What was read of a connection whose first byte no TLS client sends: while it may be plain
 * HTTP, and once it is, its request head as far as it fits. */
struct tls_plain_in {
    apr_size_t len;
    int answered;                    /* its 400 went out */
    char head[TLS_PLAIN_HEAD_MAX];
};

/* The filters' state of one connection. Only this file knows it; tls_conn_t points to it,
 * and the connection's state changes go through tls_conn_transit(). */
typedef struct tls_filter {
    tls_conn_t *tc;
    conn_rec *c;
    ap_filter_t *in_filter;            /* ours; TLS bytes come from its next */
    ap_filter_t *out_filter;           /* ours; TLS bytes go to its next */
    apr_bucket_brigade *raw_in;        /* TLS read from the network, scratch */
    apr_bucket_brigade *plain_in;      /* decrypted, not yet taken by Apache */
    apr_bucket_brigade *raw_out;       /* TLS on its way to the network */
    int in_eof;                        /* no more TLS will come in */
    int in_started;                    /* the first bytes came in and were looked at */
    struct tls_plain_in *plain;        /* NULL unless those first bytes may be plain HTTP */
    apr_size_t in_rec_left;            /* bytes of the current TLS record still to read */
    unsigned char in_hdr[TLS_REC_HDR]; /* the next record's header, as far as read */
    apr_size_t in_hdr_len;
    apr_size_t out_pending;            /* bytes in raw_out not yet passed on */
    apr_size_t out_response;           /* TLS bytes since the last response's end (EOS) */
    int out_broken;                    /* the network refused our TLS: nothing more goes out */
    int in_response;                   /* TLS_RESPONSE is passing an HTTP/1 response on */
    int out_later;                     /* what rustls holds may wait for our next write or
                                        * until we wait for the client (in_read_net) */
    char *hold;                        /* malloc'ed, TLS_REC_MAX: a response's plaintext not */
    apr_size_t hold_len;               /* yet a full record, kept for its next pass */
} tls_filter_t;

static const char *phase_of(const tls_filter_t *fc)
{
    const tls_conn_t *tc = fc->tc;

    return tc->state == TLS_ST_TRAFFIC ? "traffic" : "handshake";
}

/* Buffers for the pieces that become buckets. They are malloc'ed, not taken from the
 * connection's bucket allocator (only if malloc fails): that one keeps the blocks it hands
 * out (8 KiB at least) for the connection's whole life once they are freed, so an idle
 * connection would hold what its biggest transfer once needed (measured: 187 KiB per idle
 * connection after a 10 MiB download; mod_ssl 86). The C heap reuses freed memory for the
 * next connection. */

/* Where the next piece goes: in bulk, a buffer of `bulk` bytes that the bucket will own;
 * otherwise (or if malloc fails) the caller's stack buffer of TLS_SMALL bytes. */
static char *piece_buf(char *stack, apr_size_t bulk, apr_size_t *size)
{
    char *buf = bulk ? malloc(bulk) : NULL;

    *size = buf ? bulk : TLS_SMALL;
    return buf ? buf : stack;
}

/* A heap bucket of the len bytes in buf: a copy of just that size when buf is the stack. */
static apr_bucket *piece_bucket(char *buf, const char *stack, apr_size_t len,
                                apr_bucket_alloc_t *ba)
{
    char *copy;

    if (buf != stack) {
        return apr_bucket_heap_create(buf, len, free, ba);
    }
    if ((copy = malloc(len)) == NULL) {
        return apr_bucket_heap_create(buf, len, NULL, ba);
    }
    memcpy(copy, buf, len);
    return apr_bucket_heap_create(copy, len, free, ba);
}

static void piece_done(char *buf, const char *stack)
{
    if (buf != stack) {
        free(buf);
    }
}

/* Reading lines leaves empty buckets behind; they are not data. */
static int brigade_has_data(apr_bucket_brigade *bb)
{
    apr_bucket *e;

    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb); e = APR_BUCKET_NEXT(e)) {
        if (e->length != 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- out: TLS to the network ----------------------------------------------------------- */

/* Fills buf (size bytes) with TLS bytes rustls holds; *len says how many. */
static apr_status_t out_fill(tls_filter_t *fc, char *buf, apr_size_t size, apr_size_t *len)
{
    tls_conn_t *tc = fc->tc;
    mtls_result rr;
    size_t n;

    *len = 0;
    do {
        rr = mtls_conn_write_tls(tc->rc, (uint8_t *)buf + *len, size - *len, &n);
        *len += rr == MTLS_OK ? n : 0;
    } while (rr == MTLS_OK && n > 0 && *len < size);
    return rr == MTLS_OK ? APR_SUCCESS : tls_conn_fail(tc, rr, "sending");
}

/* Moves every TLS byte rustls holds into raw_out. A little goes through a stack buffer into
 * a bucket of just its size, so an idle connection keeps no big buffers; in bulk (a full
 * record was just encrypted, or a piece comes out full) TLS is written straight into
 * buffers that become the buckets'. */
static apr_status_t out_drain(tls_filter_t *fc, int bulk)
{
    tls_conn_t *tc = fc->tc;
    char stack[TLS_SMALL], *buf;
    apr_status_t rv = APR_SUCCESS;
    apr_size_t len, size;

    buf = piece_buf(stack, bulk ? TLS_OUT_CHUNK : 0, &size);
    while (mtls_conn_wants_write(tc->rc)) {
        if ((rv = out_fill(fc, buf, size, &len)) != APR_SUCCESS || len == 0) {
            break;
        }
        APR_BRIGADE_INSERT_TAIL(fc->raw_out, piece_bucket(buf, stack, len, tc->c->bucket_alloc));
        fc->out_pending += len;
        fc->out_response += len;
        buf = piece_buf(stack, len == size ? TLS_OUT_CHUNK : 0, &size);
    }
    piece_done(buf, stack);
    return rv;
}

/* Whether rv says the client is gone (or stopped reading until the Timeout): routine. */
static int out_client_gone(conn_rec *c, apr_status_t rv)
{
    return c->aborted || APR_STATUS_IS_EPIPE(rv) || APR_STATUS_IS_ECONNRESET(rv)
           || APR_STATUS_IS_ECONNABORTED(rv) || APR_STATUS_IS_TIMEUP(rv)
           || APR_STATUS_IS_ETIMEDOUT(rv);
}

/* The network did not take our TLS. rustls has numbered the records that were lost with
 * it, so anything sent after them would fail to decrypt: the connection sends nothing
 * more, not even close_notify. */
static apr_status_t out_fail(tls_filter_t *fc, apr_status_t rv)
{
    tls_conn_t *tc = fc->tc;

    if (!fc->out_broken) {
        fc->out_broken = 1;
        ap_log_cerror(APLOG_MARK, out_client_gone(tc->c, rv) ? APLOG_DEBUG : APLOG_INFO, rv,
                      tc->c, TLSLOGNO(00014) "tls: sending to %s failed, nothing more goes out",
                      tc->c->client_ip);
        if (tc->state != TLS_ST_FAILED) {
            if (APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_ETIMEDOUT(rv)) {
                tc->fail_reason = TLS_FAIL_TIMEOUT;     /* it stopped reading our handshake */
            }
            else if (out_client_gone(tc->c, rv)) {
                tc->fail_reason = TLS_FAIL_CLOSED;
            }
            tls_conn_transit(tc, TLS_ST_FAILED);
        }
    }
    apr_brigade_cleanup(fc->raw_out);
    fc->out_pending = 0;
    return rv;
}

/* Passes what raw_out holds (and a FLUSH if asked) to the network. */
static apr_status_t out_pass(tls_filter_t *fc, int flush)
{
    tls_conn_t *tc = fc->tc;
    apr_status_t rv, prv;

    if (fc->out_broken) {
        return out_fail(fc, APR_ECONNABORTED);
    }
    rv = out_drain(fc, 0);
    fc->out_later = 0;
    if (flush) {
        APR_BRIGADE_INSERT_TAIL(fc->raw_out, apr_bucket_flush_create(tc->c->bucket_alloc));
    }
    if (!APR_BRIGADE_EMPTY(fc->raw_out)) {
        if ((prv = ap_pass_brigade(fc->out_filter->next, fc->raw_out)) != APR_SUCCESS) {
            return out_fail(fc, prv);
        }
        apr_brigade_cleanup(fc->raw_out);
        fc->out_pending = 0;
    }
    return rv;
}

/* Plaintext on its way into rustls: what a response's earlier passes left (the held bytes),
 * then pieces of buckets still in the brigade. */
typedef struct {
    const uint8_t *bufs[TLS_OUT_IOV];
    size_t lens[TLS_OUT_IOV];
    apr_bucket *from[TLS_OUT_IOV];     /* the bucket a piece lies in; NULL: the held bytes */
    size_t n;
    apr_size_t bytes;
} tls_gather_t;

static void gather_add(tls_gather_t *g, const void *data, apr_size_t len, apr_bucket *from)
{
    g->bufs[g->n] = data;
    g->lens[g->n] = len;
    g->from[g->n++] = from;
    g->bytes += len;
}

/* A gather that starts with the bytes held from the response's earlier passes. */
static void gather_start(tls_filter_t *fc, tls_gather_t *g)
{
    g->n = 0;
    g->bytes = 0;
    if (fc->hold_len) {
        gather_add(g, fc->hold, fc->hold_len, NULL);
        fc->hold_len = 0;
    }
}

static void hold_free(tls_filter_t *fc)
{
    free(fc->hold);
    fc->hold = NULL;
    fc->hold_len = 0;
}

static apr_status_t hold_cleanup(void *data)
{
    hold_free(data);
    return APR_SUCCESS;
}

/* Encrypts the first `want` bytes gathered as one stream, so that small pieces share
 * records, and passes TLS on whenever enough waits, so nothing piles up. */
static apr_status_t out_encrypt(tls_filter_t *fc, tls_gather_t *g, apr_size_t want)
{
    tls_conn_t *tc = fc->tc;
    apr_status_t rv = APR_SUCCESS;
    size_t i = 0, end, taken, cut;
    apr_size_t sum, step;
    int bulk, idle = 0;
    mtls_result rr;

    if (tc->state != TLS_ST_TRAFFIC) {
        want = 0;                    /* failed or closed: nothing more is encrypted */
        i = g->n;
    }
    while (want > 0 && rv == APR_SUCCESS) {
        /* Two records at a time: rustls keeps its records until they are copied out, so
         * what a busy connection holds is about twice what it is given (load test: memory
         * per busy connection 1.03-1.09x mod_ssl's given 64 KiB, 0.62-0.77x given 32 KiB;
         * what the heap keeps after a 10 MiB response 0.83-0.92x, then 0.59-0.61x). */
        step = want < TLS_OUT_PASS ? want : TLS_OUT_PASS;
        /* the pieces that hold the next `step` bytes, the last one cut to fit */
        for (end = i, sum = 0; sum < step && end < g->n; ++end) {
            sum += g->lens[end];
        }
        cut = sum > step ? sum - step : 0;
        g->lens[end - 1] -= cut;
        rr = mtls_conn_writev(tc->rc, g->bufs + i, g->lens + i, end - i, &taken);
        g->lens[end - 1] += cut;
        if (rr != MTLS_OK) {
            return tls_conn_fail(tc, rr, "sending");
        }
        if (taken == 0 && ++idle > 1) {
            /* Its send buffer was drained: a rustls that takes nothing now never will. */
            ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, tc->c,
                          TLSLOGNO(00015) "tls: rustls takes no more data "
                          "to send to %s; closing the connection", tc->c->client_ip);
            tls_conn_transit(tc, TLS_ST_FAILED);
            return APR_EGENERAL;
        }
        idle = taken == 0 ? idle : 0;
        bulk = taken >= TLS_REC_MAX;
        want -= taken;
        g->bytes -= taken;
        for (; taken > 0 && taken >= g->lens[i]; ++i) {
            taken -= g->lens[i];
        }
        if (taken > 0) {
            g->bufs[i] += taken;
            g->lens[i] -= taken;
        }
        if ((rv = out_drain(fc, bulk)) == APR_SUCCESS && fc->out_pending >= TLS_OUT_PASS) {
            /* With a FLUSH: the core writes it before it takes more, where it would keep up
             * to FlushMaxThreshold (64 KiB) more of ours while the client reads slowly
             * (memory per busy connection 1.58x mod_ssl's without, 0.95x with). */
            rv = out_pass(fc, 1);
        }
    }
    if (tc->state != TLS_ST_TRAFFIC) {
        g->bytes = 0;
        i = g->n;
    }
    /* what is left moves to the front */
    memmove(g->bufs, g->bufs + i, (g->n - i) * sizeof(*g->bufs));
    memmove(g->lens, g->lens + i, (g->n - i) * sizeof(*g->lens));
    memmove(g->from, g->from + i, (g->n - i) * sizeof(*g->from));
    g->n -= i;
    return rv;
}

/* Copies what is gathered (less than a record) into the hold buffer, so that its buckets can
 * go; the gather is then that one piece. 0: no buffer, nothing copied. */
static int out_keep(tls_filter_t *fc, tls_gather_t *g)
{
    apr_size_t len = 0;
    size_t i = 0;

    if (!fc->hold && !(fc->hold = malloc(TLS_REC_MAX))) {
        return 0;
    }
    if (g->n > 0 && !g->from[0]) {
        /* the held bytes, perhaps partly encrypted already; they lie in the buffer */
        memmove(fc->hold, g->bufs[0], g->lens[0]);
        len = g->lens[i++];
    }
    for (; i < g->n; ++i) {
        memcpy(fc->hold + len, g->bufs[i], g->lens[i]);
        len += g->lens[i];
    }
    g->n = 0;
    g->bytes = 0;
    if (len) {
        gather_add(g, fc->hold, len, NULL);
    }
    return 1;
}

/* Deletes the buckets before `upto` that no gathered piece lies in any more. */
static void out_drop(tls_gather_t *g, apr_bucket_brigade *bb, apr_bucket *upto)
{
    size_t i;

    for (i = 0; i < g->n; ++i) {
        if (g->from[i]) {
            upto = g->from[i];
            break;
        }
    }
    while (APR_BRIGADE_FIRST(bb) != upto) {
        apr_bucket_delete(APR_BRIGADE_FIRST(bb));
    }
}

/* Encrypts everything gathered, then drops the buckets it came from: those before `upto`. */
static apr_status_t out_consume(tls_filter_t *fc, tls_gather_t *g, apr_bucket_brigade *bb,
                                apr_bucket *upto)
{
    apr_status_t rv = out_encrypt(fc, g, g->bytes);

    out_drop(g, bb, upto);
    return rv;
}

/* Encrypts the whole records gathered; the rest waits for more of the same flush unit. When
 * the pieces ran out, the rest is copied aside so that gathering can go on. */
static apr_status_t out_records(tls_filter_t *fc, tls_gather_t *g, apr_bucket_brigade *bb,
                                apr_bucket *upto)
{
    apr_status_t rv = out_encrypt(fc, g, g->bytes - g->bytes % TLS_REC_MAX);

    if (rv == APR_SUCCESS && g->n == TLS_OUT_IOV && !out_keep(fc, g)) {
        rv = out_encrypt(fc, g, g->bytes);
    }
    out_drop(g, bb, upto);
    return rv;
}

/* Before a blocking read: what a response left held goes out now, as mod_ssl flushes its
 * output before it waits for the client, who may be waiting for it. */
static apr_status_t out_send_held(tls_filter_t *fc)
{
    apr_status_t rv;
    tls_gather_t g;

    gather_start(fc, &g);
    rv = out_encrypt(fc, &g, g.bytes);
    hold_free(fc);
    return rv == APR_SUCCESS ? out_pass(fc, 1) : rv;
}

/* Ends our side of the TLS stream: what waits, then close_notify. Once only. */
static apr_status_t out_close_notify(tls_filter_t *fc)
{
    tls_conn_t *tc = fc->tc;

    if (tc->state != TLS_ST_TRAFFIC) {
        return APR_SUCCESS;
    }
    mtls_conn_send_close_notify(tc->rc);
    tls_conn_transit(tc, TLS_ST_CLOSED);
    return out_drain(fc, 0);
}

/* ---- in: TLS from the network ---------------------------------------------------------- */

/* Moves the plaintext rustls has decrypted into plain_in. Like out_drain: small reads go
 * through the stack into buckets of just their size; once a read fills the stack buffer,
 * bulk is flowing (an upload) and the next reads land straight in record-sized buffers. */
static apr_status_t in_take_plain(tls_filter_t *fc)
{
    tls_conn_t *tc = fc->tc;
    char stack[TLS_SMALL], *buf;
    mtls_result rr;
    apr_size_t n, size;

    buf = piece_buf(stack, 0, &size);
    while ((rr = mtls_conn_read(tc->rc, (uint8_t *)buf, size, &n)) == MTLS_OK) {
        APR_BRIGADE_INSERT_TAIL(fc->plain_in, piece_bucket(buf, stack, n, tc->c->bucket_alloc));
        buf = piece_buf(stack, n == size ? TLS_REC_MAX : 0, &size);
    }
    piece_done(buf, stack);
    switch (rr) {
    case MTLS_WOULD_BLOCK:
        return APR_SUCCESS;
    case MTLS_EOF:
        /* The client is done sending; our answer may still go out (half-close). */
        fc->in_eof = 1;
        return APR_SUCCESS;
    case MTLS_PEER_UNEXPECTED_EOF:
        /* Common and harmless between requests; a cut body shows up as a short read. */
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, tc->c,
                      TLSLOGNO(00016) "tls: %s closed the connection without close_notify",
                      tc->c->client_ip);
        fc->in_eof = 1;
        return APR_SUCCESS;
    default:
        return tls_conn_fail(tc, rr, "receiving");
    }
}

/* Lets rustls look at what it was given; reacts to the hello and the handshake's end. */
static apr_status_t in_process(tls_filter_t *fc)
{
    tls_conn_t *tc = fc->tc;
    mtls_result rr = mtls_conn_process(tc->rc);
    apr_status_t rv;

    if (rr == MTLS_HELLO) {
        if ((rv = tls_conn_on_hello(tc)) != APR_SUCCESS) {
            return rv;
        }
        rr = mtls_conn_process(tc->rc);
    }
    if (rr != MTLS_OK && rr != MTLS_WOULD_BLOCK) {
        return tls_conn_fail(tc, rr, phase_of(fc));
    }
    if (tc->state == TLS_ST_HANDSHAKE && !mtls_conn_is_handshaking(tc->rc)) {
        if ((rv = tls_conn_on_handshake_done(tc)) != APR_SUCCESS) {
            return rv;
        }
        fc->out_response = 0;      /* the handshake's flights are no response's */
        /* A TLS 1.3 client that sent its Finished waits for nothing more: the tickets rustls
         * now has for it may go out with our first answer, one write instead of two. */
        fc->out_later = !tc->outgoing && tc->hs->version == 0x0304;
    }
    return tc->state == TLS_ST_TRAFFIC ? in_take_plain(fc) : APR_SUCCESS;
}

#define TLS_REC_BODY_MAX (TLS_REC_MAX + 2048)  /* the longest record body TLS allows */

/* Whether rustls is to look at what it was given, once the bytes tracked so far are in: when
 * a record is whole, not before. Every look charges again each record rustls skipped as
 * rejected 0-RTT data and still holds (docs/architecture.md, "Rejected early data"). Only a
 * header no TLS record has (type, version, length) is looked at without its body, so that
 * rustls refuses it at once. */
static int in_rec_ready(const tls_filter_t *fc)
{
    const unsigned char *h = fc->in_hdr;     /* the current record's, once in_hdr_len is 0 */
    apr_size_t len = ((apr_size_t)h[3] << 8) | h[4];

    return fc->in_hdr_len == 0
           && (fc->in_rec_left == 0
               || h[0] < 20 || h[0] > 23 || h[1] != 3 || len > TLS_REC_BODY_MAX);
}

/* Hands TLS bytes to rustls; len 0 tells it of the network's EOF. */
static apr_status_t in_feed(tls_filter_t *fc, const char *data, apr_size_t len)
{
    tls_conn_t *tc = fc->tc;
    apr_status_t rv;
    mtls_result rr;
    int eof = len == 0;
    size_t n;

    do {
        rr = mtls_conn_read_tls(tc->rc, (const uint8_t *)data, len, &n);
        if (rr != MTLS_OK) {
            return tls_conn_fail(tc, rr, phase_of(fc));
        }
        /* n < len: rustls holds all it will before processing */
        if ((n < len || eof || in_rec_ready(fc)) && (rv = in_process(fc)) != APR_SUCCESS) {
            return rv;
        }
        if (n == 0 && len > 0) {
            /* rustls took nothing although everything decrypted was taken out */
            return tls_conn_fail(tc, MTLS_PEER_INVALID, phase_of(fc));
        }
        data += n;
        len -= n;
    } while (len > 0);
    return APR_SUCCESS;
}

/* How many bytes to ask of the network: the rest of the current record or of the next
 * header. The core input filter, given less than it was asked for, tries the socket once
 * more without blocking; asking for no more than the record spares that read, an EAGAIN
 * per request on a kept-alive connection. */
static apr_size_t in_want(const tls_filter_t *fc)
{
    const tls_conn_t *tc = fc->tc;

    if (fc->plain) {
        /* No more than settles what the first bytes are; then what the head may still take. */
        return (tc->state == TLS_ST_PLAIN_HTTP ? TLS_PLAIN_HEAD_MAX : TLS_PLAIN_SNIFF_MAX)
               - fc->plain->len;
    }
    return fc->in_rec_left ? fc->in_rec_left : TLS_REC_HDR - fc->in_hdr_len;
}

/* Follows the record boundaries through the bytes read. */
static void in_track(tls_filter_t *fc, const char *data, apr_size_t len)
{
    apr_size_t take;

    while (len > 0) {
        if (fc->in_rec_left) {
            take = len < fc->in_rec_left ? len : fc->in_rec_left;
            fc->in_rec_left -= take;
            data += take;
            len -= take;
            continue;
        }
        fc->in_hdr[fc->in_hdr_len++] = (unsigned char)*data++;
        --len;
        if (fc->in_hdr_len == TLS_REC_HDR) {
            fc->in_rec_left = ((apr_size_t)fc->in_hdr[3] << 8) | fc->in_hdr[4];
            fc->in_hdr_len = 0;
        }
    }
}

/* Not plain HTTP after all: rustls gets the bytes held back (and refuses them, as ever). */
static apr_status_t in_plain_undo(tls_filter_t *fc, const char *rest, apr_size_t rest_len)
{
    struct tls_plain_in *p = fc->plain;
    apr_status_t rv;

    fc->plain = NULL;
    in_track(fc, p->head, p->len);
    if ((rv = in_feed(fc, p->head, p->len)) == APR_SUCCESS && rest_len > 0) {
        in_track(fc, rest, rest_len);
        rv = in_feed(fc, rest, rest_len);
    }
    return rv;
}

/* Hands bytes from the network to rustls; but while the connection's first bytes may be plain
 * HTTP, and once they are, keeps them for the answer (what does not fit is not needed). */
static apr_status_t in_take(tls_filter_t *fc, const char *data, apr_size_t len)
{
    tls_conn_t *tc = fc->tc;
    struct tls_plain_in *p;
    apr_size_t n;

    if (!fc->in_started && len > 0) {
        fc->in_started = 1;
        if (!tc->outgoing && tls_plain_sniff(data, 1) != TLS_PLAIN_NOT) {
            fc->plain = apr_pcalloc(tc->c->pool, sizeof(*fc->plain));
        }
    }
    if (!(p = fc->plain)) {
        in_track(fc, data, len);
        return in_feed(fc, data, len);
    }
    n = len < sizeof(p->head) - p->len ? len : sizeof(p->head) - p->len;
    memcpy(p->head + p->len, data, n);
    p->len += n;
    if (tc->state == TLS_ST_PLAIN_HTTP) {
        return APR_SUCCESS;
    }
    switch (tls_plain_sniff(p->head, p->len)) {
    case TLS_PLAIN_HTTP:
        tls_conn_transit(tc, TLS_ST_PLAIN_HTTP);
        return APR_SUCCESS;
    case TLS_PLAIN_MORE:
        if (n == len) {
            return APR_SUCCESS;
        }
        break;                       /* more came in than settles it: not HTTP */
    case TLS_PLAIN_NOT:
        break;
    }
    return in_plain_undo(fc, data + n, len - n);
}

/* One read from the network, fed to rustls; sends whatever rustls has to say back. */
static apr_status_t in_read_net(tls_filter_t *fc, apr_read_type_e block)
{
    tls_conn_t *tc = fc->tc;
    apr_status_t rv, prv;
    apr_bucket *e;
    const char *data;
    apr_size_t len;
    int eof = 0;

    if (block == APR_BLOCK_READ && fc->hold_len && (rv = out_send_held(fc)) != APR_SUCCESS) {
        return rv;
    }
    if (block == APR_BLOCK_READ && fc->out_later) {
        /* What waits goes out before we wait for the client, unless its next bytes (the
         * request after its Finished, mostly) are here already. */
        rv = in_read_net(fc, APR_NONBLOCK_READ);
        if (!APR_STATUS_IS_EAGAIN(rv)) {
            return rv;
        }
        if ((rv = out_pass(fc, 1)) != APR_SUCCESS) {
            return rv;
        }
    }
    rv = ap_get_brigade(fc->in_filter->next, fc->raw_in, AP_MODE_READBYTES, block,
                        in_want(fc));
    if (rv == APR_EOF) {
        eof = 1;
        rv = APR_SUCCESS;
    }
    else if (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(fc->raw_in)) {
        /* The core answers a non-blocking read with nothing to read by an empty brigade. */
        if (block == APR_NONBLOCK_READ) {
            rv = APR_EAGAIN;
        }
        else {
            eof = 1;
        }
    }
    if (APR_STATUS_IS_EAGAIN(rv) && fc->in_rec_left == 0 && fc->in_hdr_len == 0) {
        /* The client has nothing more for now, not even part of a record: the connection
         * may idle a while, with rustls' receive buffer as small as it gets. */
        mtls_conn_shrink(tc->rc);
    }
    while (rv == APR_SUCCESS && !APR_BRIGADE_EMPTY(fc->raw_in)) {
        e = APR_BRIGADE_FIRST(fc->raw_in);
        if (APR_BUCKET_IS_EOS(e)) {
            eof = 1;
        }
        else if (!APR_BUCKET_IS_METADATA(e)
                 && (rv = apr_bucket_read(e, &data, &len, block)) == APR_SUCCESS) {
            rv = in_take(fc, data, len);
        }
        apr_bucket_delete(e);
    }
    apr_brigade_cleanup(fc->raw_in);
    if (rv == APR_SUCCESS && eof) {
        fc->in_eof = 1;
        if (fc->plain && tc->state == TLS_ST_HELLO) {
            rv = in_plain_undo(fc, NULL, 0);
        }
        if (rv == APR_SUCCESS && tc->state != TLS_ST_PLAIN_HTTP) {
            rv = in_feed(fc, NULL, 0);
        }
    }
    /* Handshake flights, tickets, alerts: rustls' answers go out right away. */
    if (mtls_conn_wants_write(tc->rc) && !fc->out_later) {
        prv = out_pass(fc, 1);
        if (rv == APR_SUCCESS) {
            rv = prv;
        }
    }
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EAGAIN(rv) && tc->state != TLS_ST_FAILED) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, rv, tc->c,
                      TLSLOGNO(00017) "tls: reading from %s failed",
                      tc->c->client_ip);
    }
    return rv;
}

/* Sends the 400 for a plain HTTP request, in clear, below our output filter (which lets
 * nothing unencrypted pass). */
static void in_plain_answer(tls_filter_t *fc)
{
    tls_conn_t *tc = fc->tc;
    conn_rec *c = tc->c;
    apr_bucket_brigade *bb = apr_brigade_create(c->pool, c->bucket_alloc);
    const char *answer;
    apr_status_t rv;
    apr_size_t len;

    answer = tls_plain_answer(c, fc->plain->head, fc->plain->len, &len);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_pool_create(answer, len, c->pool, c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(c->bucket_alloc));
    if ((rv = ap_pass_brigade(fc->out_filter->next, bb)) != APR_SUCCESS) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, rv, c,
                      TLSLOGNO(00018) "tls: sending the 400 to %s failed",
                      c->client_ip);
    }
    apr_brigade_destroy(bb);
}

/* Reads a plain HTTP request head until it ends, fills the buffer or the client stops
 * sending, answers it once, and ends the connection. */
static apr_status_t in_plain_http(tls_filter_t *fc, apr_read_type_e block)
{
    struct tls_plain_in *p = fc->plain;
    apr_status_t rv;

    while (!p->answered && !fc->in_eof && p->len < sizeof(p->head)
           && !tls_plain_head_done(p->head, p->len)) {
        rv = in_read_net(fc, block);
        if (APR_STATUS_IS_EAGAIN(rv)) {
            return rv;
        }
        if (rv != APR_SUCCESS) {
            break;                   /* a timeout, say: what was read is answered */
        }
    }
    if (!p->answered) {
        p->answered = 1;
        in_plain_answer(fc);
    }
    return APR_ECONNABORTED;
}

/* A handshake with a backend that failed outside rustls (the network, a timeout) is logged
 * as an error naming the backend, as rustls' failures are. */
static apr_status_t in_handshake_broken(tls_filter_t *fc, apr_status_t rv)
{
    return fc->tc->outgoing && !APR_STATUS_IS_EAGAIN(rv)
           ? tls_proxy_fail(fc->tc, rv, "handshake", NULL) : rv;
}

static apr_status_t in_handshake(tls_filter_t *fc, apr_read_type_e block)
{
    tls_conn_t *tc = fc->tc;
    apr_status_t rv;

    if (tc->outgoing && tc->state == TLS_ST_HELLO && (rv = tls_proxy_start(tc)) != APR_SUCCESS) {
        return rv;
    }
    while (tc->state == TLS_ST_HELLO || tc->state == TLS_ST_HANDSHAKE) {
        /* To a backend we are the client, who speaks first. */
        if (tc->outgoing && mtls_conn_wants_write(tc->rc)
            && (rv = out_pass(fc, 1)) != APR_SUCCESS) {
            return in_handshake_broken(fc, rv);
        }
        if ((rv = in_read_net(fc, block)) != APR_SUCCESS && tc->state != TLS_ST_PLAIN_HTTP) {
            return in_handshake_broken(fc, rv);
        }
        if (fc->in_eof && tc->outgoing && tc->state != TLS_ST_TRAFFIC) {
            return tls_proxy_fail(tc, APR_ECONNABORTED, "handshake",
                                  "it closed the connection");
        }
        if (fc->in_eof && tc->state != TLS_ST_TRAFFIC && tc->state != TLS_ST_PLAIN_HTTP) {
            ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, tc->c,
                          TLSLOGNO(00019) "tls: %s closed the connection "
                          "during the handshake", tc->c->client_ip);
            tc->fail_reason = fc->in_started ? TLS_FAIL_CLOSED : TLS_FAIL_UNUSED;
            tls_conn_transit(tc, TLS_ST_FAILED);
        }
    }
    if (tc->state == TLS_ST_PLAIN_HTTP) {
        return in_plain_http(fc, block);
    }
    return tc->state == TLS_ST_FAILED ? APR_ECONNABORTED : APR_SUCCESS;
}

static int brigade_has_line(apr_bucket_brigade *bb)
{
    apr_size_t total = 0, len;
    const char *data;
    apr_bucket *e;

    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb); e = APR_BUCKET_NEXT(e)) {
        if (apr_bucket_read(e, &data, &len, APR_NONBLOCK_READ) != APR_SUCCESS
            || memchr(data, '\n', len) || (total += len) >= HUGE_STRING_LEN) {
            return 1;
        }
    }
    return 0;
}

/* Reads until plain_in can answer the mode: some bytes, a line, or everything. */
static apr_status_t in_fill(tls_filter_t *fc, ap_input_mode_t mode, apr_read_type_e block)
{
    apr_status_t rv;

    for (;;) {
        /* Splitting lines leaves empty buckets behind; one must not look like pending data
         * (the core would then skip flushing a response, waiting for a pipelined request). */
        while (!APR_BRIGADE_EMPTY(fc->plain_in) && APR_BRIGADE_FIRST(fc->plain_in)->length == 0) {
            apr_bucket_delete(APR_BRIGADE_FIRST(fc->plain_in));
        }
        if (!APR_BRIGADE_EMPTY(fc->plain_in) && mode != AP_MODE_EXHAUSTIVE
            && (mode != AP_MODE_GETLINE || brigade_has_line(fc->plain_in))) {
            return APR_SUCCESS;
        }
        if (fc->in_eof) {
            return APR_BRIGADE_EMPTY(fc->plain_in) ? APR_EOF : APR_SUCCESS;
        }
        rv = in_read_net(fc, block);
        if (APR_STATUS_IS_EAGAIN(rv) && !APR_BRIGADE_EMPTY(fc->plain_in)) {
            return APR_SUCCESS;
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
}

/* Drops the CR and LF bytes that lead plain_in (what some clients send between requests). */
static void in_eat_crlf(tls_filter_t *fc)
{
    const char *data;
    apr_size_t len, i;
    apr_bucket *e;

    while (!APR_BRIGADE_EMPTY(fc->plain_in)) {
        e = APR_BRIGADE_FIRST(fc->plain_in);
        if (apr_bucket_read(e, &data, &len, APR_NONBLOCK_READ) != APR_SUCCESS) {
            return;
        }
        for (i = 0; i < len && (data[i] == '\r' || data[i] == '\n'); ++i)
            ;
        if (i < len) {
            if (i > 0) {
                apr_bucket_split(e, i);
                apr_bucket_delete(e);
            }
            return;
        }
        apr_bucket_delete(e);
    }
}

static apr_status_t tls_filter_in(ap_filter_t *f, apr_bucket_brigade *bb,
                                  ap_input_mode_t mode, apr_read_type_e block,
                                  apr_off_t readbytes)
{
    tls_filter_t *fc = f->ctx;
    tls_conn_t *tc = fc->tc;
    apr_status_t rv;
    apr_bucket *e, *copy;

    if (tc->state == TLS_ST_FAILED) {
        return APR_ECONNABORTED;
    }
    if (tc->state == TLS_ST_PLAIN_HTTP) {
        return in_plain_http(fc, block);
    }
    if (tc->state < TLS_ST_TRAFFIC && (rv = in_handshake(fc, block)) != APR_SUCCESS) {
        return rv;
    }
    if (mode == AP_MODE_INIT) {
        return APR_SUCCESS;
    }
    if (mode == AP_MODE_SPECULATIVE && tc->outgoing && tls_proxy_kept_for_other_scope(tc)) {
        return APR_EOF;
    }
    if (mode == AP_MODE_EATCRLF) {
        in_eat_crlf(fc);
        return APR_SUCCESS;
    }
    if ((rv = in_fill(fc, mode, block)) != APR_SUCCESS) {
        return rv;
    }
    switch (mode) {
    case AP_MODE_GETLINE:
        return apr_brigade_split_line(bb, fc->plain_in, block, HUGE_STRING_LEN);
    case AP_MODE_EXHAUSTIVE:
        APR_BRIGADE_CONCAT(bb, fc->plain_in);
        return APR_SUCCESS;
    case AP_MODE_READBYTES:
        if ((rv = apr_brigade_partition(fc->plain_in, readbytes, &e)) != APR_SUCCESS
            && rv != APR_INCOMPLETE) {
            return rv;
        }
        while (APR_BRIGADE_FIRST(fc->plain_in) != e) {
            copy = APR_BRIGADE_FIRST(fc->plain_in);
            APR_BUCKET_REMOVE(copy);
            APR_BRIGADE_INSERT_TAIL(bb, copy);
        }
        return APR_SUCCESS;
    case AP_MODE_SPECULATIVE:
        for (e = APR_BRIGADE_FIRST(fc->plain_in);
             e != APR_BRIGADE_SENTINEL(fc->plain_in) && readbytes > 0; e = APR_BUCKET_NEXT(e)) {
            if ((rv = apr_bucket_copy(e, &copy)) != APR_SUCCESS) {
                return rv;
            }
            /* In the brigade first: splitting links the rest in after it. */
            APR_BRIGADE_INSERT_TAIL(bb, copy);
            if ((apr_off_t)copy->length > readbytes) {
                apr_bucket_split(copy, (apr_size_t)readbytes);
                apr_bucket_delete(APR_BUCKET_NEXT(copy));
                break;
            }
            readbytes -= (apr_off_t)copy->length;
        }
        return APR_SUCCESS;
    default:
        return APR_ENOTIMPL;
    }
}

/* TLS_OUT. What comes up to a FLUSH, EOS or EOC is one flush unit: its pieces share full
 * records, and what is less than a record at the end of a pass waits for the unit's next
 * pass, but only in a response (see tls_filter_response). Any other metadata ends a record
 * too (mod_http2 starts a new write of its own there). */
static apr_status_t tls_filter_out(ap_filter_t *f, apr_bucket_brigade *bb)
{
    tls_filter_t *fc = f->ctx;
    tls_conn_t *tc = fc->tc;
    apr_status_t rv = APR_SUCCESS, prv;
    apr_read_type_e block = APR_NONBLOCK_READ;
    tls_gather_t g;
    const char *data;
    apr_size_t len;
    apr_bucket *e;

    /* To a backend, the first write of data (mod_proxy's request) waits for the handshake,
     * which it starts; a failed one leaves the connection aborted, for mod_proxy's 502. Only
     * data counts: mod_proxy also flushes and closes kept connections, outside any request. */
    if (tc->outgoing && brigade_has_data(bb) && ((rv = tls_proxy_check_scope(tc)) != APR_SUCCESS
                         || (tc->state < TLS_ST_TRAFFIC
                             && (rv = in_handshake(fc, APR_BLOCK_READ)) != APR_SUCCESS))) {
        apr_brigade_cleanup(bb);
        return rv;
    }
    gather_start(fc, &g);
    e = APR_BRIGADE_FIRST(bb);
    while (e != APR_BRIGADE_SENTINEL(bb) && rv == APR_SUCCESS) {
        if (APR_BUCKET_IS_METADATA(e)) {
            rv = out_consume(fc, &g, bb, e);
            if (rv == APR_SUCCESS && APR_BUCKET_IS_EOS(e) && fc->in_response
                && tc->c->keepalive == AP_CONN_CLOSE) {
                /* The last response of the connection: close_notify goes in its write, not
                 * in one of its own when the MPM closes (nothing of HTTP/1 follows). */
                rv = out_close_notify(fc);
            }
            if (rv == APR_SUCCESS && AP_BUCKET_IS_EOC(e)) {
                /* After every pre_close_connection hook (mod_http2's GOAWAY), as mod_ssl.
                 * The FLUSH first: the core holds what comes with an EOC alone, and the
                 * MPM shuts the socket down right after. */
                rv = out_close_notify(fc);
                APR_BRIGADE_INSERT_TAIL(fc->raw_out, apr_bucket_flush_create(tc->c->bucket_alloc));
            }
            if (rv == APR_SUCCESS) {
                rv = out_drain(fc, 0);
            }
            APR_BUCKET_REMOVE(e);
            APR_BRIGADE_INSERT_TAIL(fc->raw_out, e);
            if (rv == APR_SUCCESS && APR_BUCKET_IS_EOS(e)) {
                /* The core would hold a small response (a few KiB, all in memory) until
                 * the MPM's write completion, after Apache has looked for a pipelined
                 * request, found none and handed the connection back to the listener;
                 * plain HTTP responses from files go out at once. A FLUSH sends a small
                 * one now, so the client can send its next request early. Not when the
                 * connection closes next (close_notify goes in the same write) or a
                 * pipelined request waits (the core writes the answers together). */
                rv = out_pass(fc, fc->out_response <= TLS_OUT_CHUNK
                                  && tc->c->keepalive != AP_CONN_CLOSE
                                  && !brigade_has_data(fc->plain_in));
                fc->out_response = 0;
            }
            else if (rv == APR_SUCCESS && (APR_BUCKET_IS_FLUSH(e) || AP_BUCKET_IS_EOC(e))
                     && (APR_BRIGADE_EMPTY(bb) || !AP_BUCKET_IS_EOC(APR_BRIGADE_FIRST(bb)))) {
                /* The core's FLUSH before its EOC waits for close_notify: one write. */
                rv = out_pass(fc, 0);
            }
            e = APR_BRIGADE_FIRST(bb);
            continue;
        }
        if (tc->state != TLS_ST_TRAFFIC) {
            /* Nothing may go out unencrypted, and after close_notify nothing at all. */
            apr_bucket_delete(e);
            e = APR_BRIGADE_FIRST(bb);
            continue;
        }
        rv = apr_bucket_read(e, &data, &len, block);
        if (APR_STATUS_IS_EAGAIN(rv)) {
            /* A slow source (CGI, proxy): send what we have before waiting on it. */
            if ((rv = out_consume(fc, &g, bb, e)) == APR_SUCCESS
                && (rv = out_pass(fc, 1)) == APR_SUCCESS) {
                block = APR_BLOCK_READ;
            }
            continue;
        }
        block = APR_NONBLOCK_READ;
        if (rv == APR_SUCCESS && len > 0) {
            gather_add(&g, data, len, e);
        }
        e = APR_BUCKET_NEXT(e);
        if (rv == APR_SUCCESS && (g.n == TLS_OUT_IOV || g.bytes >= TLS_OUT_GATHER)) {
            rv = out_records(fc, &g, bb, e);
        }
    }
    if (rv == APR_SUCCESS && fc->in_response && tc->state == TLS_ST_TRAFFIC
        && (rv = out_records(fc, &g, bb, APR_BRIGADE_SENTINEL(bb))) == APR_SUCCESS
        && out_keep(fc, &g)) {
        /* The response goes on: its next pass (an EOS at the latest) completes the record. */
        fc->hold_len = g.bytes;
        g.n = 0;
        g.bytes = 0;
    }
    /* What came before a failure (a bucket that could not be read, say) still goes out:
     * rustls numbers its records, and one encrypted but dropped would put everything after
     * it, close_notify too, out of sequence. After a TLS failure only rustls' alert is
     * left to send; after a network failure nothing. */
    if ((prv = out_consume(fc, &g, bb, APR_BRIGADE_SENTINEL(bb))) != APR_SUCCESS
        && rv == APR_SUCCESS) {
        rv = prv;
    }
    if (!fc->hold_len) {
        hold_free(fc);
    }
    if ((prv = out_pass(fc, 0)) != APR_SUCCESS && rv == APR_SUCCESS) {
        rv = prv;
    }
    apr_brigade_cleanup(bb);
    return rv;
}

/* TLS_RESPONSE, the last of an HTTP/1 request's own filters: what passes it is part of a
 * response, and a response ends with an EOS that passes TLS_OUT too, before the MPM's write
 * completion (which calls the core's filter directly) and before anything else is written.
 * Only then may TLS_OUT hold a record's start for the next pass: Apache's header filter
 * passes the head alone, right before the body. Tunnels (mod_proxy's websockets, CONNECT),
 * mod_http2 and interim responses write to the connection's filters directly, and never
 * wait in TLS_OUT. */
static ap_filter_rec_t *response_filter;

static apr_status_t tls_filter_response(ap_filter_t *f, apr_bucket_brigade *bb)
{
    tls_filter_t *fc = f->ctx;
    apr_status_t rv;

    ++fc->in_response;
    rv = ap_pass_brigade(f->next, bb);
    --fc->in_response;
    return rv;
}

int tls_filter_create_request(request_rec *r)
{
    tls_conn_t *tc = r->connection->master ? NULL : tls_conn_get(r->connection);

    /* Internal redirects and subrequests pass through the first request's filters. */
    if (tc && tc->filter && !tc->outgoing && !r->main && !r->prev) {
        ap_add_output_filter_handle(response_filter, tc->filter, r, r->connection);
    }
    return DECLINED;
}

void tls_filter_register(void)
{
    ap_register_input_filter("TLS_IN", tls_filter_in, NULL, AP_FTYPE_CONNECTION + 5);
    ap_register_output_filter("TLS_OUT", tls_filter_out, NULL, AP_FTYPE_CONNECTION + 5);
    response_filter = ap_register_output_filter("TLS_RESPONSE", tls_filter_response, NULL,
                                                AP_FTYPE_CONNECTION - 1);
}

int tls_filter_in_started(const tls_conn_t *tc)
{
    return tc->filter && tc->filter->in_started;
}

void tls_filter_add(tls_conn_t *tc)
{
    conn_rec *c = tc->c;
    tls_filter_t *fc = apr_pcalloc(c->pool, sizeof(*fc));

    fc->tc = tc;
    fc->c = c;
    fc->raw_in = apr_brigade_create(c->pool, c->bucket_alloc);
    fc->plain_in = apr_brigade_create(c->pool, c->bucket_alloc);
    fc->raw_out = apr_brigade_create(c->pool, c->bucket_alloc);
    fc->in_filter = ap_add_input_filter("TLS_IN", fc, NULL, c);
    fc->out_filter = ap_add_output_filter("TLS_OUT", fc, NULL, c);
    apr_pool_cleanup_register(c->pool, fc, hold_cleanup, apr_pool_cleanup_null);
    tc->filter = fc;
}

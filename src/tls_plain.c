/* tls_plain.c: plain HTTP on a TLS address. A browser or script told http:// for an https
 * port would get a TLS alert it cannot show (curl: "Received HTTP/0.9 when not allowed");
 * instead it gets a short 400 in plain text that names the https:// URL to use.
 *
 * The input filter answers from what it read of the request head, below Apache's HTTP
 * parser, instead of handing the bytes up and refusing the request at post_read_request (as
 * mod_ssl does), because:
 * - Apache would run a request on a connection that everything else is told is TLS: the
 *   https scheme, HTTPS=on, the SSL_* variables, mod_http2; each would need an exception.
 * - The output filter would need a pass-through mode, and with it the chance of a real
 *   response going out in clear on a TLS port. It keeps its one rule instead: nothing passes
 *   it unencrypted. This fixed answer is the only plaintext, and it goes out below it.
 * - What is read stays small (TLS_PLAIN_HEAD_MAX) and within the handshake's time limits;
 *   Apache's parser would read up to LimitRequestFields headers and run every module's
 *   request hooks for a client that cannot be served anyway.
 * The price: the request gets no access log line. The info line below is its record. */
#include <httpd.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <http_log.h>
#include <util_time.h>

#include "tls_plain.h"
#include "tls_log.h"

APLOG_USE_MODULE(tls);

#define TLS_PLAIN_URL_PATH_MAX 2048  /* longer paths are not repeated (escaped length) */

/* What the answer needs of a request head; pointers into the bytes read. */
typedef struct {
    const char *method;
    apr_size_t method_len;
    const char *path;                /* NULL: the request line was not read to its end */
    apr_size_t path_len;
    const char *host;                /* NULL: none given (absolute URL or Host header) */
    apr_size_t host_len;
} plain_req_t;

static int is_method_char(int ch, apr_size_t i)
{
    return (ch >= 'A' && ch <= 'Z') || (i > 0 && (ch == '-' || ch == '_'));
}

tls_plain_e tls_plain_sniff(const char *data, apr_size_t len)
{
    apr_size_t i;
    int ch;

    /* A TLS record starts with its content type (20 to 24, a ClientHello 22), an SSLv2-style
     * hello with a length byte of 0x80 or more: never with an uppercase letter. Bytes held
     * back here are ones rustls would refuse anyway. */
    for (i = 0; i < len && i <= TLS_PLAIN_METHOD_MAX && is_method_char(data[i], i); ++i)
        ;
    if (i > TLS_PLAIN_METHOD_MAX) {
        return TLS_PLAIN_NOT;
    }
    if (i == len) {
        return TLS_PLAIN_MORE;
    }
    if (i == 0 || data[i] != ' ') {
        return TLS_PLAIN_NOT;
    }
    if (i + 1 == len) {
        return TLS_PLAIN_MORE;
    }
    /* The request target: a path, "*", or an absolute URL or authority (proxy requests). */
    ch = (unsigned char)data[i + 1];
    return (ch == '/' || ch == '*' || apr_isalpha(ch)) ? TLS_PLAIN_HTTP : TLS_PLAIN_NOT;
}

/* The end of the request line's target within [start, eol), and whether an HTTP version
 * follows it. */
static const char *line_target_end(const char *start, const char *eol, int *has_version)
{
    const char *sp = memchr(start, ' ', (apr_size_t)(eol - start));

    if (eol > start && eol[-1] == '\r') {
        --eol;
    }
    *has_version = sp && eol - sp > 5 && !memcmp(sp, " HTTP/", 6);
    return sp ? sp : eol;
}

int tls_plain_head_done(const char *data, apr_size_t len)
{
    const char *end = data + len, *eol = memchr(data, '\n', len), *line, *target;
    int has_version;

    if (!eol || !(target = memchr(data, ' ', (apr_size_t)(eol - data)))) {
        return 0;
    }
    line_target_end(target + 1, eol, &has_version);
    if (!has_version) {
        return 1;                    /* HTTP/0.9: the request line is all there is */
    }
    for (line = eol + 1; line < end; line = eol + 1) {
        if (*line == '\n' || (line + 1 < end && line[0] == '\r' && line[1] == '\n')) {
            return 1;
        }
        if (!(eol = memchr(line, '\n', (apr_size_t)(end - line)))) {
            return 0;
        }
    }
    return 0;
}

/* Whether s is a host with an optional port, fit to be repeated in a URL: letters, digits,
 * dots, dashes (and the underscores some names have), or an IP literal in brackets. *name_len
 * gets the length without the port. */
static int host_split(const char *s, apr_size_t len, apr_size_t *name_len)
{
    apr_size_t i = 0, digits;

    if (len == 0 || len > 255) {
        return 0;
    }
    if (s[0] == '[') {
        for (i = 1; i < len && (apr_isxdigit(s[i]) || s[i] == ':' || s[i] == '.'); ++i)
            ;
        if (i == 1 || i == len || s[i] != ']') {
            return 0;
        }
        ++i;
    }
    else {
        for (; i < len && (apr_isalnum(s[i]) || s[i] == '.' || s[i] == '-' || s[i] == '_'); ++i)
            ;
        if (i == 0) {
            return 0;
        }
    }
    *name_len = i;
    if (i == len) {
        return 1;
    }
    for (digits = 0, ++i; i < len && apr_isdigit(s[i]); ++i, ++digits)
        ;
    return s[*name_len] == ':' && i == len && digits >= 1 && digits <= 5;
}

/* The request line's method and path, and the host the client asked for, as far as read. */
static void parse_head(const char *data, apr_size_t len, plain_req_t *rq)
{
    const char *end = data + len, *eol, *sp, *line, *target, *tend, *v, *vend;
    int has_version;

    memset(rq, 0, sizeof(*rq));
    if (!(sp = memchr(data, ' ', len))) {
        return;
    }
    rq->method = data;
    rq->method_len = (apr_size_t)(sp - data);
    if (!(eol = memchr(sp, '\n', (apr_size_t)(end - sp)))) {
        return;
    }
    target = sp + 1;
    tend = line_target_end(target, eol, &has_version);
    if (tend - target > 7 && !strncasecmp(target, "http://", 7)) {
        /* The absolute form names the host itself (it then wins over Host: RFC 9112 3.2.2). */
        rq->host = target + 7;
        for (v = rq->host; v < tend && *v != '/' && *v != '?'; ++v)
            ;
        rq->host_len = (apr_size_t)(v - rq->host);
        target = v;
    }
    if (target < tend && *target == '/') {
        rq->path = target;
        rq->path_len = (apr_size_t)(tend - target);
    }
    else {
        rq->path = "/";              /* "*", an authority, or nothing */
        rq->path_len = 1;
    }
    /* Only whole header lines count: a cut one could be a cut host name. */
    for (line = eol + 1; !rq->host && line < end; line = eol + 1) {
        if (!(eol = memchr(line, '\n', (apr_size_t)(end - line)))
            || eol == line || (eol == line + 1 && *line == '\r')) {
            break;
        }
        if (eol - line > 5 && !strncasecmp(line, "Host:", 5)) {
            for (v = line + 5; v < eol && (*v == ' ' || *v == '\t'); ++v)
                ;
            for (vend = eol; vend > v && apr_isspace(vend[-1]); --vend)
                ;
            rq->host = v;
            rq->host_len = (apr_size_t)(vend - v);
        }
    }
}

/* The path as it can go into the answer and the log: every byte that is not printable ASCII
 * (controls, CR, LF, non-ASCII), and those a URL may not hold, %-escaped. NULL when it gets
 * too long to be worth repeating. */
static const char *path_escape(apr_pool_t *p, const char *path, apr_size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out, *o;
    apr_size_t i;

    if (len > TLS_PLAIN_URL_PATH_MAX) {
        return NULL;
    }
    o = out = apr_palloc(p, 3 * len + 1);
    for (i = 0; i < len; ++i) {
        unsigned char ch = (unsigned char)path[i];
        if (ch > 0x20 && ch < 0x7f && !strchr("\"<>\\^`{|}", ch)) {
            *o++ = (char)ch;
        }
        else {
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 0xf];
        }
    }
    *o = '\0';
    return (apr_size_t)(o - out) <= TLS_PLAIN_URL_PATH_MAX ? out : NULL;
}

/* The https:// URL for the request: its host and path when it gave them, else the address'
 * virtual host; the port is the one the client reached, which speaks TLS. */
static const char *https_url(conn_rec *c, const plain_req_t *rq)
{
    const char *name = c->base_server->server_hostname, *path;
    apr_port_t port = c->local_addr->port;
    apr_size_t name_len;

    path = rq->path ? path_escape(c->pool, rq->path, rq->path_len) : NULL;
    if (rq->host && host_split(rq->host, rq->host_len, &name_len)) {
        if (name_len < rq->host_len) {
            /* The port the client gave: behind a port forward, the one it can reach. */
            return apr_pstrcat(c->pool, "https://", apr_pstrmemdup(c->pool, rq->host,
                               rq->host_len), path ? path : "/", NULL);
        }
        name = apr_pstrmemdup(c->pool, rq->host, rq->host_len);
    }
    else if (!name || !host_split(name, strlen(name), &name_len) || name_len < strlen(name)) {
        name = strchr(c->local_ip, ':') ? apr_pstrcat(c->pool, "[", c->local_ip, "]", NULL)
                                        : c->local_ip;
    }
    return apr_psprintf(c->pool, "https://%s%s%s%s", name, port == 443 ? "" : ":",
                        port == 443 ? "" : apr_itoa(c->pool, port), path ? path : "/");
}

const char *tls_plain_answer(conn_rec *c, const char *data, apr_size_t len, apr_size_t *alen)
{
    char date[APR_RFC822_DATE_LEN];
    const char *url, *body, *answer;
    plain_req_t rq;

    parse_head(data, len, &rq);
    url = https_url(c, &rq);
    body = apr_pstrcat(c->pool, "This port speaks HTTPS (HTTP over TLS), not plain HTTP.\n"
                       "Use the https:// address instead:\n", url, "\n", NULL);
    ap_recent_rfc822_date(date, apr_time_now());
    answer = apr_psprintf(c->pool, "HTTP/1.1 400 Bad Request\r\n"
                          "Date: %s\r\n"
                          "Content-Type: text/plain; charset=us-ascii\r\n"
                          "Content-Length: %" APR_SIZE_T_FMT "\r\n"
                          "Connection: close\r\n"
                          "\r\n"
                          "%s", date, strlen(body),
                          rq.method_len == 4 && !memcmp(rq.method, "HEAD", 4) ? "" : body);
    /* A client's mistake: info, so that it never fills the error log. */
    ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, c,
                  TLSLOGNO(00020) "tls: connection from %s refused: plain HTTP "
                  "request (%.*s) on a TLS port; answered 400 naming %s", c->client_ip,
                  (int)rq.method_len, rq.method ? rq.method : "", url);
    *alen = strlen(answer);
    return answer;
}

/* hsdrive: a small closed-loop load driver for the mod_tls load test.
 *
 * Each of T threads loops: TCP connect, TLS handshake (or none with -v 0), one
 * "GET path HTTP/1.1" with "Connection: close", read the response to the end, close.
 * So every request costs one connection and one handshake, which h2load cannot do
 * in a closed loop (it keeps connections alive).
 *
 *   -r none    every handshake is a full one (no session offered)
 *   -r ticket  offer the session of the thread's previous connection (TLS 1.3
 *              tickets, TLS 1.2 tickets), as a returning browser does
 *   -r id      TLS 1.2 only: no ticket extension, so the server must resume by
 *              session id from its session cache
 *   -o         ask for the certificate's OCSP status (status_request) in every
 *              handshake and count the connections that got a stapled response
 *
 * The driver counts only what completes inside the measuring window (after the
 * warm-up). It prints "window-start" and "window-end" lines when the window opens and
 * closes (the caller samples the server's CPU time then), then one JSON object:
 * completed connections, resumed ones (and stapled ones with -o), failures by kind,
 * the window's wall time and the driver's own CPU time in the window, and what the
 * last connection negotiated.
 *
 * Build: cc -O2 -pthread -o hsdrive hsdrive.c -lssl -lcrypto
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_THREADS 256

static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static const char *opt_sni = "a.test";
static const char *opt_path = "/";
static long opt_len = -1;          /* expected body length, -1: don't check */
static int opt_threads = 8;
static double opt_duration = 5.0;
static double opt_warmup = 1.0;
static int opt_version = 13;       /* 0 plain TCP, 12 TLS 1.2, 13 TLS 1.3 */
static int opt_resume = 0;         /* 0 none, 1 ticket, 2 session id */
static int opt_status = 0;         /* 1: send status_request, count the staples */

static SSL_CTX *ctx;
static struct sockaddr_in addr;
static char request[512];
static size_t request_len;
static atomic_int stop_flag;

/* one cache line per thread: the counters are written by their thread only */
struct counters {
  atomic_long done;        /* connections that returned a complete 200 */
  atomic_long resumed;     /* of those, resumed handshakes */
  atomic_long stapled;     /* of those, handshakes that carried an OCSP response */
  atomic_long conn_err;    /* connect() or handshake failed */
  atomic_long io_err;      /* read/write failed after the handshake */
  atomic_long bad_status;  /* a status other than 200 */
  atomic_long bad_len;     /* body shorter/longer than expected */
  atomic_long bytes;       /* bytes received (headers and body) */
} __attribute__((aligned(64)));

static struct counters counters[MAX_THREADS];

static pthread_mutex_t info_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[256];
static char neg_version[32], neg_cipher[64], neg_group[32];

static void note_error(const char *what)
{
  pthread_mutex_lock(&info_lock);
  if (!first_error[0]) {
    unsigned long e = ERR_peek_last_error();
    char buf[160] = "";
    if (e)
      ERR_error_string_n(e, buf, sizeof buf);
    snprintf(first_error, sizeof first_error, "%s%s%s%s%s", what,
             errno ? ": " : "", errno ? strerror(errno) : "", buf[0] ? ": " : "", buf);
  }
  pthread_mutex_unlock(&info_lock);
  ERR_clear_error();
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_self(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* The response as it streams in: status and Content-Length from the header, then the
 * body bytes counted. */
struct resp {
  char head[8192];
  size_t head_len;
  int head_done;
  int status;
  long content_length;
  long body;
  long total;
};

static void resp_feed(struct resp *r, const char *p, size_t n)
{
  r->total += n;
  if (r->head_done) {
    r->body += n;
    return;
  }
  size_t room = sizeof r->head - 1 - r->head_len;
  size_t take = n < room ? n : room;
  memcpy(r->head + r->head_len, p, take);
  r->head_len += take;
  r->head[r->head_len] = 0;
  char *end = strstr(r->head, "\r\n\r\n");
  if (!end) {
    if (take < n)         /* header larger than the buffer: give up on it */
      r->head_done = 1, r->status = -1;
    return;
  }
  r->head_done = 1;
  size_t hlen = (size_t)(end + 4 - r->head);
  /* what came after the header in this chunk is body */
  r->body += (long)(r->head_len - hlen) + (long)(n - take);
  if (strncmp(r->head, "HTTP/1.", 7) == 0 && strlen(r->head) > 12)
    r->status = atoi(r->head + 9);
  for (char *line = strstr(r->head, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
    if (strncasecmp(line + 2, "Content-Length:", 15) == 0)
      r->content_length = atol(line + 17);
  }
}

static int tcp_connect(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* One connection, one request. Returns 0 when it was counted as done. */
static int one_connection(struct counters *c, SSL_SESSION **sess, int record_info)
{
  struct resp r;
  memset(&r, 0, sizeof r);
  r.content_length = -1;
  char buf[65536];
  errno = 0;
  int fd = tcp_connect();
  if (fd < 0) {
    atomic_fetch_add(&c->conn_err, 1);
    note_error("connect");
    return -1;
  }
  SSL *ssl = NULL;
  int ok = 0;
  if (opt_version) {
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, opt_sni);
    if (opt_resume && *sess)
      SSL_set_session(ssl, *sess);
    if (opt_status)
      SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp);
    if (SSL_connect(ssl) != 1) {
      atomic_fetch_add(&c->conn_err, 1);
      note_error("handshake");
      goto out;
    }
    if (SSL_write(ssl, request, (int)request_len) != (int)request_len) {
      atomic_fetch_add(&c->io_err, 1);
      note_error("write");
      goto out;
    }
    for (;;) {
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n > 0) {
        resp_feed(&r, buf, (size_t)n);
        continue;
      }
      int err = SSL_get_error(ssl, n);
      /* the server's close_notify, or a plain EOF after the response */
      if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0))
        break;
      atomic_fetch_add(&c->io_err, 1);
      note_error("read");
      goto out;
    }
  } else {
    if (write(fd, request, request_len) != (ssize_t)request_len) {
      atomic_fetch_add(&c->io_err, 1);
      note_error("write");
      goto out;
    }
    for (;;) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n > 0) {
        resp_feed(&r, buf, (size_t)n);
        continue;
      }
      if (n == 0)
        break;
      atomic_fetch_add(&c->io_err, 1);
      note_error("read");
      goto out;
    }
  }
  atomic_fetch_add(&c->bytes, r.total);
  if (r.status != 200) {
    atomic_fetch_add(&c->bad_status, 1);
    if (r.status == 0)
      note_error("no response");
    goto out;
  }
  if ((opt_len >= 0 && r.body != opt_len) || (r.content_length >= 0 && r.body != r.content_length)) {
    atomic_fetch_add(&c->bad_len, 1);
    goto out;
  }
  ok = 1;
  atomic_fetch_add(&c->done, 1);
  if (ssl && SSL_session_reused(ssl))
    atomic_fetch_add(&c->resumed, 1);
  if (ssl && opt_status) {
    /* kept by OpenSSL as it came (no status callback: not verified, only counted) */
    const unsigned char *staple = NULL;
    if (SSL_get_tlsext_status_ocsp_resp(ssl, &staple) > 0 && staple)
      atomic_fetch_add(&c->stapled, 1);
  }
  if (ssl && record_info) {
    pthread_mutex_lock(&info_lock);
    snprintf(neg_version, sizeof neg_version, "%s", SSL_get_version(ssl));
    snprintf(neg_cipher, sizeof neg_cipher, "%s", SSL_get_cipher_name(ssl));
    int g = SSL_get_negotiated_group(ssl);
    const char *gn = g ? SSL_group_to_name(ssl, g) : NULL;
    snprintf(neg_group, sizeof neg_group, "%s", gn ? gn : "?");
    pthread_mutex_unlock(&info_lock);
  }
out:
  if (ssl) {
    if (ok && opt_resume) {
      /* the newest session: for TLS 1.3 the ticket that came after the handshake */
      SSL_SESSION *s = SSL_get1_session(ssl);
      if (s && SSL_SESSION_is_resumable(s)) {
        if (*sess)
          SSL_SESSION_free(*sess);
        *sess = s;
      } else if (s) {
        SSL_SESSION_free(s);
      }
    }
    /* no close_notify of our own: the server closed already. Marking the shutdown
     * done keeps OpenSSL from treating the session as broken. */
    SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(ssl);
  }
  close(fd);
  return ok ? 0 : -1;
}

static void *worker(void *arg)
{
  long idx = (long)arg;
  struct counters *c = &counters[idx];
  SSL_SESSION *sess = NULL;
  while (!atomic_load(&stop_flag)) {
    if (one_connection(c, &sess, idx == 0) != 0) {
      struct timespec pause = {0, 1000000};  /* 1 ms: no busy loop on a refusing server */
      nanosleep(&pause, NULL);
    }
  }
  if (sess)
    SSL_SESSION_free(sess);
  return NULL;
}

static void sum(struct counters *t)
{
  memset(t, 0, sizeof *t);
  for (int i = 0; i < opt_threads; i++) {
    t->done += atomic_load(&counters[i].done);
    t->resumed += atomic_load(&counters[i].resumed);
    t->stapled += atomic_load(&counters[i].stapled);
    t->conn_err += atomic_load(&counters[i].conn_err);
    t->io_err += atomic_load(&counters[i].io_err);
    t->bad_status += atomic_load(&counters[i].bad_status);
    t->bad_len += atomic_load(&counters[i].bad_len);
    t->bytes += atomic_load(&counters[i].bytes);
  }
}

static void sleep_until(double t)
{
  double d;
  while ((d = t - now()) > 0) {
    struct timespec ts = {(time_t)d, (long)((d - (time_t)d) * 1e9)};
    nanosleep(&ts, NULL);
  }
}

static void usage(void)
{
  fprintf(stderr,
          "usage: hsdrive -p PORT [-H 127.0.0.1] [-s SNI] [-u PATH] [-l BODYLEN] [-t THREADS]\n"
          "               [-d SECONDS] [-w WARMUP] [-v 0|12|13] [-r none|ticket|id] [-o]\n");
  exit(2);
}

int main(int argc, char **argv)
{
  int o;
  while ((o = getopt(argc, argv, "H:p:s:u:l:t:d:w:v:r:o")) != -1) {
    switch (o) {
    case 'H': opt_host = optarg; break;
    case 'p': opt_port = atoi(optarg); break;
    case 's': opt_sni = optarg; break;
    case 'u': opt_path = optarg; break;
    case 'l': opt_len = atol(optarg); break;
    case 't': opt_threads = atoi(optarg); break;
    case 'd': opt_duration = atof(optarg); break;
    case 'w': opt_warmup = atof(optarg); break;
    case 'v': opt_version = atoi(optarg); break;
    case 'o': opt_status = 1; break;
    case 'r':
      if (!strcmp(optarg, "none")) opt_resume = 0;
      else if (!strcmp(optarg, "ticket")) opt_resume = 1;
      else if (!strcmp(optarg, "id")) opt_resume = 2;
      else usage();
      break;
    default: usage();
    }
  }
  if (opt_port <= 0 || opt_threads < 1 || opt_threads > MAX_THREADS || opt_duration <= 0 ||
      (opt_version != 0 && opt_version != 12 && opt_version != 13) ||
      (opt_resume == 2 && opt_version != 12) || (opt_status && !opt_version))
    usage();
  signal(SIGPIPE, SIG_IGN);

  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)opt_port);
  if (inet_pton(AF_INET, opt_host, &addr.sin_addr) != 1)
    usage();
  request_len = (size_t)snprintf(request, sizeof request,
                                 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: hsdrive\r\n"
                                 "Connection: close\r\n\r\n", opt_path, opt_sni);

  if (opt_version) {
    ctx = SSL_CTX_new(TLS_client_method());
    int v = opt_version == 12 ? TLS1_2_VERSION : TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(ctx, v);
    SSL_CTX_set_max_proto_version(ctx, v);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* sessions are kept by hand, per thread, not in the context's cache */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (opt_resume == 2)
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
  }

  pthread_t tids[MAX_THREADS];
  for (long i = 0; i < opt_threads; i++) {
    if (pthread_create(&tids[i], NULL, worker, (void *)i) != 0) {
      perror("pthread_create");
      return 1;
    }
  }
  double t_begin = now();
  sleep_until(t_begin + opt_warmup);
  struct counters a, b;
  sum(&a);
  double t0 = now(), cpu0 = cpu_self();
  printf("window-start\n");
  fflush(stdout);
  sleep_until(t0 + opt_duration);
  sum(&b);
  double t1 = now(), cpu1 = cpu_self();
  printf("window-end\n");
  fflush(stdout);
  atomic_store(&stop_flag, 1);
  for (int i = 0; i < opt_threads; i++)
    pthread_join(tids[i], NULL);

  char esc[sizeof first_error * 2];
  size_t j = 0;
  for (size_t i = 0; first_error[i] && j < sizeof esc - 2; i++) {
    char ch = first_error[i];
    if (ch == '"' || ch == '\\')
      esc[j++] = '\\';
    esc[j++] = (ch < 32) ? ' ' : ch;
  }
  esc[j] = 0;
  printf("{\"done\": %ld, \"resumed\": %ld, \"stapled\": %ld, \"conn_err\": %ld, \"io_err\": %ld, "
         "\"bad_status\": %ld, \"bad_len\": %ld, \"bytes\": %ld, \"wall\": %.6f, "
         "\"cpu\": %.6f, \"threads\": %d, \"version\": \"%s\", \"cipher\": \"%s\", "
         "\"group\": \"%s\", \"first_error\": \"%s\"}\n",
         b.done - a.done, b.resumed - a.resumed, b.stapled - a.stapled, b.conn_err - a.conn_err,
         b.io_err - a.io_err, b.bad_status - a.bad_status, b.bad_len - a.bad_len,
         b.bytes - a.bytes, t1 - t0, cpu1 - cpu0, opt_threads,
         opt_version ? neg_version : "plain", neg_cipher, neg_group, esc);
  return 0;
}

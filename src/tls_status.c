/* tls_status.c: TLS statistics in mod_status' server-status page and its ?auto form.
 *
 * The counters live in one block of anonymous shared memory that the parent makes at its
 * first post_config, in the process pool, and keeps in that pool's userdata: a graceful
 * restart clears pconf and reloads this module, but the process pool and the mapping stay,
 * so the new generation finds the block again and its children (forked from the parent)
 * map it as the old ones still do. So the counts go on across restarts, and the last
 * connections of an old generation still add to them. The block carries a layout stamp; a
 * module built with another layout makes a new one instead of misreading the old.
 *
 * Hot path: a handful of lock-free atomic adds per handshake, none per request, no lock. The
 * status page reads the counters one by one, so a page may show one handshake counted in one
 * line and not yet in another. */
#include <httpd.h>
#include <apr_atomic.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <http_log.h>
#include <http_main.h>
#include <http_protocol.h>
#include <mod_status.h>

#include "tls_cipher.h"
#include "tls_conf.h"
#include "tls_log.h"
#include "tls_status.h"
#include "tls_ticket.h"

APLOG_USE_MODULE(tls);

#define TLS_STATUS_KEY    "mod_tls-status-counters"
/* The layout's stamp, with its size: a change that keeps the size (a slot that counts
 * something else) takes a new magic. */
#define TLS_STATUS_MAGIC  0x4d544c53u          /* "MTLS" */
#define TLS_STATUS_SUITES 24                   /* room for the suites the bridge offers */

enum { TLS_V12 = 0, TLS_V13, TLS_V_N };

/* ALPN results; the numbers index the counters. */
enum { ALPN_NONE = 0, ALPN_HTTP11, ALPN_H2, ALPN_ACME, ALPN_OTHER, ALPN_N };
static const char *const ALPN_KEYS[] = { "None", "HTTP11", "H2", "ACME", "Other" };
static const char *const ALPN_NAMES[] = { "(none)", "http/1.1", "h2", "acme-tls/1",
                                                "(other)" };

/* Key exchange groups (TLS NamedGroup ids); "none" is a resumed TLS 1.2 session, which
 * exchanges no key; the last slot takes any other. */
static const struct {
    uint16_t id;
    const char *key;
    const char *name;
} GROUPS[] = {
    { 0x001d, "X25519", "x25519" },
    { 0x0017, "SECP256R1", "secp256r1" },
    { 0x0018, "SECP384R1", "secp384r1" },
    { 0x0019, "SECP521R1", "secp521r1" },
    { 0x11ec, "X25519MLKEM768", "X25519MLKEM768" },
    { 0x0000, "None", "(none)" },
};
#define GROUPS_N (sizeof(GROUPS) / sizeof(GROUPS[0]))

static const char *const FAIL_KEYS[] = {
    "TLSHandshakeFailuresOther", "TLSHandshakeFailuresIncompatible",
    "TLSHandshakeFailuresUnknownSNI", "TLSHandshakeFailuresClientCert",
    "TLSHandshakeFailuresProtocol", "TLSHandshakeFailuresAlert", "TLSHandshakeFailuresClosed",
    "TLSHandshakeFailuresTimeout", "TLSConnectionsUnused"
};

static const char *const STAT_KEYS[] = {
    "TLSSessionCacheHits", "TLSSessionCacheMisses", "TLSSessionCacheStores",
    "TLSSessionCacheErrors", "TLSTicketKeyRotations", "TLSTicketKeyFleetUpdates",
    "TLSTicketKeyFleetErrors", "TLSClientCertsVerified", "TLSClientCertsNone",
    "TLSPlainHTTPRefused"
};

/* A name for every slot: an enum that grows without its name fails the build. */
#define TLS_NAMES_FOR(names, n) \
    _Static_assert(sizeof(names) / sizeof(names[0]) == (n), #names " misses a name")
TLS_NAMES_FOR(ALPN_KEYS, ALPN_N);
TLS_NAMES_FOR(ALPN_NAMES, ALPN_N);
TLS_NAMES_FOR(FAIL_KEYS, TLS_FAIL_N);
TLS_NAMES_FOR(STAT_KEYS, TLS_STAT_N);

/* The shared block. Only the parent writes anything but the counters, and only before it
 * forks: the layout fields and the suite ids are read-only for the children. */
typedef struct {
    apr_uint32_t magic;
    apr_uint32_t size;                          /* sizeof(tls_counters_t): the layout */
    apr_time_t since;                           /* when counting started */
    uint16_t suite_ids[TLS_STATUS_SUITES];      /* what suites[i] counts; 0: unused */
    apr_uint64_t full[TLS_V_N];
    apr_uint64_t resumed[TLS_V_N];
    apr_uint64_t failed[TLS_FAIL_N];
    apr_uint64_t suites[TLS_STATUS_SUITES + 1]; /* the last: any suite not in suite_ids */
    apr_uint64_t groups[GROUPS_N + 1];          /* the last: any other group */
    apr_uint64_t alpn[ALPN_N];
    apr_uint64_t events[TLS_STAT_N];
} tls_counters_t;

/* This process' view of the block: set in the parent at post_config (children inherit it);
 * NULL: not counting. */
static tls_counters_t *counters;

/* Whether the block's suite lines are this build's suites, in the same order. */
static int same_suites(const tls_counters_t *ct)
{
    size_t i, n = mtls_suites_count();

    for (i = 0; i < TLS_STATUS_SUITES; ++i) {
        if (ct->suite_ids[i] != (i < n ? mtls_suite_id(i) : 0)) {
            return 0;
        }
    }
    return 1;
}

static tls_counters_t *counters_make(server_rec *s, apr_pool_t *pp)
{
    tls_counters_t *ct;
    apr_shm_t *shm;
    apr_status_t rv;
    size_t i, n;

    /* Anonymous: only processes forked from here see it, as they should. */
    if ((rv = apr_shm_create(&shm, sizeof(*ct), NULL, pp)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     TLSLOGNO(00041) "tls: no shared memory for the TLS statistics; "
                     "server-status shows none");
        return NULL;
    }
    ct = apr_shm_baseaddr_get(shm);
    memset(ct, 0, sizeof(*ct));
    ct->magic = TLS_STATUS_MAGIC;
    ct->size = sizeof(*ct);
    ct->since = apr_time_now();
    n = mtls_suites_count();
    for (i = 0; i < n && i < TLS_STATUS_SUITES; ++i) {
        ct->suite_ids[i] = mtls_suite_id(i);
    }
    /* No cleanup of ours: it would be a function of this module, which a restart unloads
     * while the process pool lives on. apr_shm's own cleanup unmaps it at exit. */
    apr_pool_userdata_set(shm, TLS_STATUS_KEY, apr_pool_cleanup_null, pp);
    return ct;
}

void tls_status_init(server_rec *s)
{
    apr_pool_t *pp = s->process->pool;
    tls_counters_t *ct = NULL;
    apr_shm_t *shm = NULL;

    apr_pool_userdata_get((void **)&shm, TLS_STATUS_KEY, pp);
    if (shm) {
        ct = apr_shm_baseaddr_get(shm);
        if (ct->magic != TLS_STATUS_MAGIC || ct->size != sizeof(*ct) || !same_suites(ct)) {
            /* another build's layout or suites (an upgrade before a graceful restart); its
             * children may still write to it, so it stays mapped until the parent exits */
            ct = NULL;
        }
    }
    counters = ct ? ct : counters_make(s, pp);
}

static void add(apr_uint64_t *slot)
{
    apr_atomic_inc64(slot);
}

static int alpn_index(const char *alpn)
{
    if (!alpn) {
        return ALPN_NONE;
    }
    if (!strcmp(alpn, "http/1.1")) {
        return ALPN_HTTP11;
    }
    if (!strcmp(alpn, "h2")) {
        return ALPN_H2;
    }
    return strcmp(alpn, "acme-tls/1") ? ALPN_OTHER : ALPN_ACME;
}

void tls_status_handshake_done(const tls_conn_t *tc)
{
    tls_counters_t *ct = counters;
    const tls_handshake_t *hs = tc->hs;
    int v = hs->version == 0x0304 ? TLS_V13 : TLS_V12;
    size_t i;

    if (!ct) {
        return;
    }
    add(hs->resumed ? &ct->resumed[v] : &ct->full[v]);
    for (i = 0; i < TLS_STATUS_SUITES && ct->suite_ids[i] && ct->suite_ids[i] != hs->suite; ++i)
        ;
    add(&ct->suites[i < TLS_STATUS_SUITES && ct->suite_ids[i] ? i : TLS_STATUS_SUITES]);
    for (i = 0; i < GROUPS_N && GROUPS[i].id != hs->kx_group; ++i)
        ;
    add(&ct->groups[i]);
    add(&ct->alpn[alpn_index(tc->alpn)]);
    if (hs->peer_chain->nelts) {
        add(&ct->events[TLS_STAT_CLIENT_VERIFIED]);
    }
    else if (!hs->resumed
             && tls_conf_client_mode(tls_conf_srv_get(tc->server)) == TLS_CLIENT_OPTIONAL) {
        add(&ct->events[TLS_STAT_CLIENT_NONE]);
    }
}

void tls_status_handshake_failed(tls_fail_e why)
{
    if (counters && why < TLS_FAIL_N) {
        add(&counters->failed[why]);
    }
}

tls_fail_e tls_status_fail_reason(mtls_result rr)
{
    switch (rr) {
    case MTLS_PEER_INCOMPATIBLE:
        return TLS_FAIL_INCOMPATIBLE;
    case MTLS_PEER_CERT:
        return TLS_FAIL_CLIENT_CERT;
    case MTLS_PEER_INVALID:
    case MTLS_PEER_MISBEHAVED:
    case MTLS_PEER_BAD_SNI:
        return TLS_FAIL_PROTOCOL;
    case MTLS_PEER_ALERT:
        return TLS_FAIL_ALERT;
    case MTLS_PEER_UNEXPECTED_EOF:
        return TLS_FAIL_CLOSED;
    default:
        return TLS_FAIL_OTHER;
    }
}

void tls_status_count(tls_stat_e what)
{
    if (counters && what < TLS_STAT_N) {
        add(&counters->events[what]);
    }
}

/* ---- the status page ---- */

static apr_uint64_t get(apr_uint64_t *slot)
{
    return apr_atomic_read64(slot);
}

typedef struct {
    request_rec *r;
    int autos;                  /* ?auto: key: value lines */
} out_t;

/* One value: `key: n` for ?auto, a table row otherwise. */
static void out_num(out_t *o, const char *key, const char *label, apr_uint64_t n)
{
    if (o->autos) {
        ap_rprintf(o->r, "%s: %" APR_UINT64_T_FMT "\n", key, n);
    }
    else {
        ap_rprintf(o->r, "<tr><td>%s</td><td>%" APR_UINT64_T_FMT "</td></tr>\n",
                   ap_escape_html(o->r->pool, label), n);
    }
}

static void out_head(out_t *o, const char *title)
{
    if (!o->autos) {
        ap_rprintf(o->r, "<tr><th colspan=\"2\" align=\"left\">%s</th></tr>\n", title);
    }
}

static void out_counters(out_t *o, tls_counters_t *ct)
{
    static const char *const VERSIONS[TLS_V_N] = { "TLS12", "TLS13" };
    static const char *const VERSION_NAMES[TLS_V_N] = { "TLS 1.2", "TLS 1.3" };
    apr_pool_t *p = o->r->pool;
    const char *name;
    size_t i;

    out_head(o, "Handshakes");
    for (i = 0; i < TLS_V_N; ++i) {
        out_num(o, apr_pstrcat(p, "TLSHandshakesFull", VERSIONS[i], NULL),
                apr_pstrcat(p, "full, ", VERSION_NAMES[i], NULL), get(&ct->full[i]));
        out_num(o, apr_pstrcat(p, "TLSHandshakesResumed", VERSIONS[i], NULL),
                apr_pstrcat(p, "resumed, ", VERSION_NAMES[i], NULL), get(&ct->resumed[i]));
    }
    out_head(o, "Handshake failures");
    for (i = 0; i < TLS_FAIL_N; ++i) {
        out_num(o, FAIL_KEYS[i], FAIL_KEYS[i] + (i == TLS_FAIL_UNUSED ? 3 : 20),
                get(&ct->failed[i]));
    }
    out_head(o, "ALPN protocols");
    for (i = 0; i < ALPN_N; ++i) {
        out_num(o, apr_pstrcat(p, "TLSALPN", ALPN_KEYS[i], NULL), ALPN_NAMES[i],
                get(&ct->alpn[i]));
    }
    out_head(o, "Key exchange groups");
    for (i = 0; i <= GROUPS_N; ++i) {
        name = i < GROUPS_N ? GROUPS[i].key : "Other";
        out_num(o, apr_pstrcat(p, "TLSGroup", name, NULL),
                i < GROUPS_N ? GROUPS[i].name : "(other)", get(&ct->groups[i]));
    }
    out_head(o, "Cipher suites");
    for (i = 0; i <= TLS_STATUS_SUITES; ++i) {
        if (i < TLS_STATUS_SUITES && !ct->suite_ids[i]) {
            continue;
        }
        name = i < TLS_STATUS_SUITES ? tls_cipher_name(p, ct->suite_ids[i]) : "Other";
        out_num(o, apr_pstrcat(p, "TLSCipher_", name, NULL), name, get(&ct->suites[i]));
    }
    out_head(o, "Sessions, tickets, client certificates");
    for (i = 0; i < TLS_STAT_N; ++i) {
        out_num(o, STAT_KEYS[i], STAT_KEYS[i] + 3, get(&ct->events[i]));
    }
}

static void out_tickets(out_t *o, const tls_global_t *g)
{
    tls_ticket_state_t st;
    apr_int64_t age;

    tls_ticket_state(g, &st);
    age = st.rotated_at ? (apr_int64_t)apr_time_sec(apr_time_now() - st.rotated_at) : -1;
    if (o->autos) {
        ap_rprintf(o->r, "TLSTicketKeyMode: %s\nTLSTicketKeyGeneration: %u\n", st.mode,
                   st.generation);
        if (age >= 0) {
            ap_rprintf(o->r, "TLSTicketKeyAge: %" APR_INT64_T_FMT "\n", age);
        }
        ap_rprintf(o->r, "TLSTicketKeysAlone: %d\n", st.alone);
        return;
    }
    ap_rprintf(o->r, "<p>Session ticket keys: %s, generation %u", st.mode, st.generation);
    if (age >= 0) {
        ap_rprintf(o->r, ", current key %" APR_INT64_T_FMT " s old", age);
    }
    ap_rprintf(o->r, "%s.</p>\n", st.alone ? ", <b>rotated by this server alone: the "
               "session cache is out of reach</b>" : "");
}

/* Each TLS vhost's certificates and when they expire, as this child's config has them (the
 * one of the current generation). */
static void out_certificates(out_t *o)
{
    request_rec *r = o->r;
    apr_hash_t *keys = apr_hash_make(r->pool);
    const tls_settings_t *st;
    const char *key;
    char date[APR_RFC822_DATE_LEN];
    apr_port_t port;
    server_rec *s;
    int64_t secs;
    int i;

    if (!o->autos) {
        ap_rputs("<table border=\"0\">\n<tr><th align=\"left\">Virtual host</th>"
                 "<th align=\"left\">Certificate</th><th align=\"left\">Not after</th>"
                 "<th align=\"left\">Days left</th></tr>\n", r);
    }
    for (s = ap_server_conf; s; s = s->next) {
        if (!(st = tls_conf_srv_get(s)->settings)) {
            continue;
        }
        port = s->addrs ? s->addrs->host_port : s->port;
        for (i = 0; i < st->certkeys->nelts; ++i) {
            if (mtls_certkey_not_after(APR_ARRAY_IDX(st->certkeys, i, const mtls_certkey *),
                                       &secs) != MTLS_OK) {
                continue;
            }
            if (o->autos) {
                /* a key once: vhosts of one name and port on several addresses (IPv4 and
                 * IPv6) would repeat it */
                key = apr_psprintf(r->pool, "TLSCertificateNotAfter_%s_%u_%d",
                                   s->server_hostname, (unsigned)port, i);
                if (!apr_hash_get(keys, key, APR_HASH_KEY_STRING)) {
                    apr_hash_set(keys, key, APR_HASH_KEY_STRING, key);
                    ap_rprintf(r, "%s: %" APR_INT64_T_FMT "\n", key, (apr_int64_t)secs);
                }
                continue;
            }
            apr_rfc822_date(date, apr_time_from_sec(secs));
            ap_rprintf(r, "<tr><td>%s:%u</td><td>%s</td><td>%s</td><td>%" APR_INT64_T_FMT
                       "</td></tr>\n", ap_escape_html(r->pool, s->server_hostname),
                       (unsigned)port, ap_escape_html(r->pool, APR_ARRAY_IDX(st->cert_files, i,
                                                                             const char *)),
                       date, (apr_int64_t)(secs - apr_time_sec(apr_time_now())) / 86400);
        }
    }
    if (!o->autos) {
        ap_rputs("</table>\n", r);
    }
}

int tls_status_hook(request_rec *r, int flags)
{
    out_t o = { r, flags & AP_STATUS_SHORT };
    tls_counters_t *ct = counters;
    char since[APR_RFC822_DATE_LEN];

    if (!o.autos) {
        ap_rputs("<hr />\n<h2>TLS (mod_tls)</h2>\n", r);
    }
    if (!ct) {
        if (!o.autos) {
            ap_rputs("<p>No statistics: mod_tls has no shared memory for them (see the error "
                     "log).</p>\n", r);
        }
        out_certificates(&o);
        return OK;
    }
    if (o.autos) {
        ap_rprintf(r, "TLSStatisticsSince: %" APR_INT64_T_FMT "\n",
                   (apr_int64_t)apr_time_sec(ct->since));
    }
    else {
        apr_rfc822_date(since, ct->since);
        ap_rprintf(r, "<p>Counted since %s, by all child processes, across graceful "
                   "restarts.</p>\n<table border=\"0\">\n", since);
    }
    out_counters(&o, ct);
    if (!o.autos) {
        ap_rputs("</table>\n", r);
    }
    out_tickets(&o, tls_conf_srv_get(r->server)->global);
    out_certificates(&o);
    return OK;
}

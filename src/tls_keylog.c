/* tls_keylog.c: SSLKEYLOGFILE. The parent opens the file once per configuration cycle, as the
 * user Apache starts as (root), and gives the descriptor to the bridge, which writes each
 * secret as one line in one write(): with O_APPEND every line lands whole at the end, however
 * many children and threads log at once. The children inherit the descriptor, so the user
 * they switch to needs no right to the file; programs Apache executes (CGI, piped loggers) do
 * not get it (close-on-exec).
 *
 * mod_ssl creates the file with mode 0600 and appends to an existing one whatever its mode.
 * Here an existing file that every local user may read or write is refused, and so is one
 * that is no regular file (a symbolic link is not followed) or that belongs to another user:
 * secrets anyone on the machine can read undo TLS for every connection logged, and an admin
 * who points the variable at /tmp/keys.log cannot tell that another user made that name
 * first. Permissions for the file's group are the admin's choice (people allowed to
 * decrypt), as with mod_ssl. */
#include <httpd.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <apr_strings.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>

#include "tls_keylog.h"
#include "tls_log.h"

APLOG_USE_MODULE(tls);

#define TLS_KEYLOG_ENV "SSLKEYLOGFILE"

struct tls_keylog {
    const char *path;                  /* the file, ServerRoot-relative names resolved */
    const mtls_keylog *log;            /* NULL: nothing is logged, `refused` says why */
    const char *refused;
};

static apr_status_t keylog_cleanup(void *data)
{
    tls_keylog_t *kl = data;

    mtls_keylog_free(kl->log);
    kl->log = NULL;
    return APR_SUCCESS;
}

/* The file opened for appending, or -1 with the reason in *why. Opened as root, before
 * anything is known of what the name is: O_NONBLOCK keeps a FIFO without a reader from
 * holding the parent (and the restart) up, O_NOCTTY a terminal from becoming Apache's. */
static int open_file(apr_pool_t *p, const char *path, const char **why)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
                  | O_NOCTTY, S_IRUSR | S_IWUSR);
    apr_status_t rv = errno;
    struct stat st;
    int flags;

    if (fd < 0) {
        *why = rv == ELOOP ? "it is a symbolic link, which is not followed"
               : rv == ENXIO ? "it is not a regular file"
               : apr_psprintf(p, "it cannot be opened (%pm)", &rv);
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        rv = errno;
        *why = apr_psprintf(p, "it cannot be examined (%pm)", &rv);
    }
    else if (!S_ISREG(st.st_mode)) {
        *why = "it is not a regular file";
    }
    else if (st.st_nlink != 1) {
        /* another name for the same file, perhaps one somebody else made for a file of ours */
        *why = "it has other names (hard links); remove it, and it is made anew with mode 0600";
    }
    else if (st.st_uid != geteuid()) {
        *why = apr_psprintf(p, "it belongs to uid %ld, not to the user Apache starts as (uid "
                            "%ld); remove it, and it is made anew with mode 0600",
                            (long)st.st_uid, (long)geteuid());
    }
    else if (st.st_mode & S_IRWXO) {
        *why = apr_psprintf(p, "its mode %04o lets every user at it; 'chmod o-rwx' it, or "
                            "remove it, and it is made anew with mode 0600",
                            (unsigned)(st.st_mode & 07777));
    }
    else if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        rv = errno;
        *why = apr_psprintf(p, "it cannot be set to blocking writes (%pm)", &rv);
    }
    else {
        return fd;
    }
    close(fd);
    return -1;
}

void tls_keylog_open(tls_global_t *g, apr_pool_t *pconf)
{
    const char *name = getenv(TLS_KEYLOG_ENV);
    tls_keylog_t *kl;
    int fd;

    /* `apache2 -t` (and -S, -M) only read the config, and the first of a start's two passes
     * only checks it: the file is made by the pass that serves. */
    if (!name || !*name || ap_state_query(AP_SQ_RUN_MODE) != AP_SQ_RM_NORMAL
        || ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return;
    }
    kl = apr_pcalloc(pconf, sizeof(*kl));
    g->keylog = kl;
    if (!(kl->path = ap_server_root_relative(pconf, name))) {
        kl->path = name;
        kl->refused = "it is not a valid file name";
        return;
    }
    if ((fd = open_file(pconf, kl->path, &kl->refused)) < 0) {
        return;
    }
    /* the bridge owns the descriptor from here on, also when this fails */
    if (mtls_keylog_new(fd, &kl->log) != MTLS_OK) {
        kl->log = NULL;
        kl->refused = "the TLS bridge did not take it (a bug)";
        return;
    }
    apr_pool_cleanup_register(pconf, kl, keylog_cleanup, apr_pool_cleanup_null);
}

void tls_keylog_warn(const tls_global_t *g, server_rec *s)
{
    const tls_keylog_t *kl = g->keylog;

    if (!kl) {
        return;
    }
    if (kl->log) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     TLSLOGNO(00046) "tls: SSLKEYLOGFILE is set: the TLS secrets of every "
                     "connection, from clients and to backends, are appended to %s, and "
                     "whoever reads that file can decrypt them; unset SSLKEYLOGFILE and "
                     "restart Apache when done debugging", kl->path);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     TLSLOGNO(00047) "tls: SSLKEYLOGFILE=%s: no TLS secrets are logged, as %s",
                     kl->path, kl->refused);
    }
}

void tls_keylog_configure_server(const tls_global_t *g, mtls_server_config_builder *b)
{
    if (g->keylog && g->keylog->log) {
        mtls_server_config_builder_set_keylog(b, g->keylog->log);
    }
}

void tls_keylog_configure_client(const tls_global_t *g, mtls_client_config_builder *b)
{
    if (g->keylog && g->keylog->log) {
        mtls_client_config_builder_set_keylog(b, g->keylog->log);
    }
}

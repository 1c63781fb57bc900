/* tls_log.h: numbers for mod_tls' log messages, as httpd's APLOGNO() numbers its own, so that
 * an admin can search for a message whatever its variable parts. mod_tls is not part of httpd,
 * so not httpd's AH range: "MTLS" and five digits. Each number stands at one place in the code
 * and is never reused for another message (test_31_build.py checks); trace lines have none. */
#ifndef TLS_LOG_H
#define TLS_LOG_H

#define TLSLOGNO(n) "MTLS" #n ": "

#endif

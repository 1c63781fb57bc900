#!/bin/sh
# The demo's page (scripts/demo.sh): the connection's TLS details, from the variables mod_tls
# gives CGI scripts with TLSOptions +StdEnvVars. test_38 loads it in Chromium too.
printf 'Content-Type: text/html\r\n\r\n'
cat <<HTML
<!doctype html><title>mod_tls demo</title>
<h1>Hello from Apache with mod_tls (rustls)</h1>
<table>
<tr><td>Protocol</td><td>$SSL_PROTOCOL</td></tr>
<tr><td>Cipher</td><td>$SSL_CIPHER</td></tr>
<tr><td>ALPN / HTTP</td><td>$SERVER_PROTOCOL</td></tr>
<tr><td>SNI</td><td>${SSL_TLS_SNI:-(none sent)}</td></tr>
<tr><td>Session</td><td>$SSL_SESSION_RESUMED</td></tr>
<tr><td>TLS library</td><td>$SSL_VERSION_LIBRARY</td></tr>
</table>
HTML

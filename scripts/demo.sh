#!/bin/sh
# A demo Apache with mod_tls on https://localhost:8443: its own ServerRoot under build/demo,
# a self-signed certificate made on the spot, a page showing the connection's TLS details
# (scripts/demo-index.cgi).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
root="$top/build/demo"
port="${DEMO_PORT:-8443}"
conf="$root/httpd.conf"

stop() {
  if [ -f "$root/httpd.pid" ] && kill -0 "$(cat "$root/httpd.pid")" 2>/dev/null; then
    kill "$(cat "$root/httpd.pid")"
    echo "demo: stopped"
  fi
}

case "${1:-start}" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

stop
mkdir -p "$root/htdocs" "$root/cgi"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$root/key.pem" -out "$root/cert.pem" 2>/dev/null
cp "$top/scripts/demo-index.cgi" "$root/cgi/index.cgi"
chmod 755 "$root" "$root/htdocs" "$root/cgi" "$root/cgi/index.cgi"
mods=/usr/lib/apache2/modules
cat > "$conf" <<CONF
ServerRoot "$root"
PidFile "$root/httpd.pid"
ErrorLog "$root/error.log"
LogLevel warn
Mutex file:$root
DefaultRuntimeDir "$root"
ServerName localhost
$( [ "$(id -u)" = 0 ] && printf 'User www-data\nGroup www-data\n' )
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule mime_module $mods/mod_mime.so
LoadModule alias_module $mods/mod_alias.so
LoadModule cgid_module $mods/mod_cgid.so
LoadModule http2_module $mods/mod_http2.so
LoadModule socache_shmcb_module $mods/mod_socache_shmcb.so
LoadModule tls_module "$top/build/mod_tls.so"
TypesConfig /etc/mime.types
ScriptSock "$root/cgid.sock"

Listen 127.0.0.1:$port
TLSEngine 127.0.0.1:$port
Protocols h2 http/1.1
<VirtualHost 127.0.0.1:$port>
    ServerName localhost
    TLSCertificate "$root/cert.pem" "$root/key.pem"
    TLSOptions +StdEnvVars
    DocumentRoot "$root/htdocs"
    ScriptAliasMatch ^/$ "$root/cgi/index.cgi"
</VirtualHost>
CONF
/usr/sbin/apache2 -f "$conf" -k start
i=0
until curl -sk -o /dev/null "https://localhost:$port/" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 50 ]; then
    echo "demo: Apache did not come up; see $root/error.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "demo: https://localhost:$port/ is served by Apache with mod_tls"
echo "demo: try  curl -k https://localhost:$port/   (self-signed certificate in $root)"
echo "demo: stop it with  make demo-stop"

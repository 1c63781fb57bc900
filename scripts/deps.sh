#!/bin/sh
# Installs the Debian packages a step needs, only those missing. `build`: compiling the
# module; `test`: the test suite's peers (test_38's browser: chromium, and certutil from
# libnss3-tools for its NSS database), and cbindgen for the header check; `loadtest`: the
# load test's generators (h2load, a small C driver built against libssl), its chart
# (gnuplot) and python3-cryptography for the OCSP responder of its stapling scenario; `fuzz`:
# clang with its libFuzzer and sanitizer runtimes, llvm-symbolizer for readable reports and
# python3-openssl for the corpus check (`make test` runs the fuzzers' smoke, so `test` has
# them too); `deb`: dpkg-buildpackage (dpkg-dev, with build-essential, which it checks for),
# debhelper (dh_apache2 comes with apache2-dev) and lintian for `make deb` (`make test`
# builds and checks the package, so `test` has them too); `profile`: the load test's plus perf
# and strace for `make profile`. Needs root (apt) when something is missing. `test` also
# unpacks (never installs) Debian's apache2 package for its mod_ssl configuration files, see
# the end.
set -eu

build="apache2-bin apache2-dev gcc make debian-archive-keyring ca-certificates curl openssl"
fuzz="$build clang-14 libclang-rt-14-dev llvm-14 python3-openssl"
deb="$build build-essential dpkg-dev debhelper lintian"
test="$fuzz $deb curl openssl nghttp2-client python3-pytest python3-openssl python3-websockets redis-server memcached strace cbindgen pebble chromium libnss3-tools"
loadtest="$build python3 python3-cryptography nghttp2-client libssl-dev gnuplot-nox"
profile="$loadtest linux-perf strace"

case "${1:-build}" in
  build) want=$build ;;
  test)  want=$test ;;
  loadtest) want=$loadtest ;;
  profile) want=$profile ;;
  fuzz) want=$fuzz ;;
  deb) want=$deb ;;
  *) echo "usage: $0 build|test|loadtest|profile|fuzz|deb" >&2; exit 2 ;;
esac

# Apt installs only what is missing and leaves what a machine came with as it is. For the
# tests and the load test, these must be as new as the OpenSSL Debian's apache2-bin was built
# against: mod_ssl, loaded there beside mod_tls, refuses an older libssl3 with a warning
# (AH01882). Building the module alone does not care.
case "${1:-build}" in
  test|loadtest|profile) fresh="libssl3 openssl" ;;
  *) fresh="" ;;
esac

installed_version() {
  dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'
}

candidate_version() {
  apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -v '^(none)$' || true
}

missing=""
for p in $want; do
  [ -n "$(installed_version "$p")" ] || missing="$missing $p"
done
outdated=""
for p in $fresh; do
  have=$(installed_version "$p")
  new=$(candidate_version "$p")
  if [ -n "$have" ] && [ -n "$new" ] && dpkg --compare-versions "$have" lt "$new"; then
    outdated="$outdated $p"
  fi
done
if [ -n "$missing$outdated" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing or outdated Debian packages:$missing$outdated; run as root or:" \
      "sudo apt-get install$missing$outdated" >&2
    exit 1
  fi
  echo "deps: installing$missing${outdated:+, upgrading$outdated}"
  apt-get update -q >/dev/null
  # Naming the fresh packages upgrades them to what the lists just fetched offer, together
  # with anything (apache2-bin) that was built against them.
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing $fresh >/dev/null
fi

cargo=$(command -v cargo 2>/dev/null || echo "$HOME/.cargo/bin/cargo")
minor=$("$cargo" --version 2>/dev/null | sed -n 's/^cargo 1\.\([0-9]*\).*/\1/p')
if [ -z "$minor" ] || [ "$minor" -lt 78 ]; then
  echo "deps: the rustls bridge needs cargo 1.78 or newer (found: $("$cargo" --version 2>/dev/null ||
    echo none)); Debian 12's own cargo is too old for rustls 0.23: install a newer toolchain" >&2
  exit 1
fi

# test_35 converts Debian's own mod_ssl files (default-ssl.conf, ssl.conf, ports.conf), which
# come with the `apache2` package. Installing that would enable a system service, so unless
# the machine has them in /etc/apache2 the package is only unpacked into build/debian-apache2.
debian_apache2="$(dirname "$0")/../build/debian-apache2"
if [ "${1:-build}" = test ] && [ ! -f /etc/apache2/sites-available/default-ssl.conf ] &&
   [ ! -f "$debian_apache2/etc/apache2/sites-available/default-ssl.conf" ]; then
  mkdir -p "$debian_apache2"
  # A machine that had every package needed no `apt-get update` above, and its lists may be
  # empty (a fresh container) or stale: one update, then the download once more.
  fetch_apache2() {
    ( cd "$debian_apache2" && apt-get download -q apache2 >/dev/null 2>&1 &&
      dpkg-deb -x apache2_*.deb . && rm -f apache2_*.deb )
  }
  fetch_apache2 || { [ "$(id -u)" = 0 ] && apt-get update -q >/dev/null && fetch_apache2; } ||
    { echo "deps: cannot fetch Debian's apache2 package (for test_35's default-ssl.conf)" >&2; exit 1; }
fi

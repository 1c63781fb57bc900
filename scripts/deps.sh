#!/bin/sh
# Installs the Debian packages a step needs, only those missing. `build`: compiling the
# module; `test`: the test suite's peers; `loadtest`: the load test's generators (h2load,
# a small C driver built against libssl) and its chart (gnuplot). Needs root (apt) when
# something is missing.
set -eu

build="apache2-bin apache2-dev gcc make debian-archive-keyring ca-certificates curl openssl"
test="$build curl openssl nghttp2-client python3-pytest python3-openssl redis-server memcached strace"
loadtest="$build python3 nghttp2-client libssl-dev gnuplot-nox"

case "${1:-build}" in
  build) want=$build ;;
  test)  want=$test ;;
  loadtest) want=$loadtest ;;
  *) echo "usage: $0 build|test|loadtest" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages:$missing; run as root or: sudo apt-get install$missing" >&2
    exit 1
  fi
  echo "deps: installing$missing"
  apt-get update -q >/dev/null
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

cargo=$(command -v cargo 2>/dev/null || echo "$HOME/.cargo/bin/cargo")
minor=$("$cargo" --version 2>/dev/null | sed -n 's/^cargo 1\.\([0-9]*\).*/\1/p')
if [ -z "$minor" ] || [ "$minor" -lt 78 ]; then
  echo "deps: the rustls bridge needs cargo 1.78 or newer (found: $("$cargo" --version 2>/dev/null ||
    echo none)); Debian 12's own cargo is too old for rustls 0.23: install a newer toolchain" >&2
  exit 1
fi

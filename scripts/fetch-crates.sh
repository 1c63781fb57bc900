#!/bin/sh
# Fetch the Rust crates the bridge needs from Debian 13 (trixie) source packages, through a
# private apt configuration under build/, and lay them out as an offline cargo registry.
# The system's apt sources are never touched. On a Debian 13 host with rustls 0.23 installed
# the system registry is used instead (see Makefile). Runs once: the stamp file skips it later.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/build/crates"
apt="$top/build/apt"
stamp="$out/.complete"
[ -f "$stamp" ] && exit 0

# Only what rustls 0.23 (ring provider, std) needs to build; cargo resolves exactly these.
pkgs="librust-rustls-dev librust-rustls-pki-types-dev librust-rustls-webpki-dev
librust-ring-dev librust-untrusted-dev librust-getrandom-dev librust-cfg-if-dev librust-libc-dev
librust-cc-dev librust-shlex-dev librust-spin-dev librust-subtle-dev librust-zeroize-dev
librust-zeroize-derive-dev librust-log-dev librust-once-cell-dev librust-rustls-pemfile-dev"

mkdir -p "$apt/etc/apt.conf.d" "$apt/etc/preferences.d" "$apt/lists/partial" \
         "$apt/cache/archives/partial" "$apt/debs" "$out"
: > "$apt/status"
cat > "$apt/etc/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
SRC
cat > "$apt/apt.conf" <<CONF
Dir::Etc "$apt/etc";
Dir::Etc::SourceList "$apt/etc/sources.list";
Dir::Etc::SourceParts "$apt/etc/sources.list.d";
Dir::Etc::Parts "$apt/etc/apt.conf.d";
Dir::Etc::PreferencesParts "$apt/etc/preferences.d";
Dir::State "$apt";
Dir::State::Lists "$apt/lists";
Dir::State::status "$apt/status";
Dir::Cache "$apt/cache";
APT::Architecture "amd64";
Acquire::Languages "none";
CONF
# The keyring may be missing on minimal images; trixie's is signed by keys bookworm's carries.
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || {
  echo "fetch-crates: /usr/share/keyrings/debian-archive-keyring.gpg missing (apt-get install debian-archive-keyring)" >&2
  exit 1; }

APT_CONFIG="$apt/apt.conf" apt-get -q update
cd "$apt/debs"
# shellcheck disable=SC2086
APT_CONFIG="$apt/apt.conf" apt-get -q download $pkgs

rm -rf "$apt/root"
for deb in "$apt"/debs/*.deb; do
  dpkg -x "$deb" "$apt/root"
done
rm -rf "$out"/*
cp -a "$apt/root/usr/share/cargo/registry/." "$out/"
touch "$stamp"

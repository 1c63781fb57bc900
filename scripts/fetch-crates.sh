#!/bin/sh
# Fetch the Rust crates the bridge needs from Debian 13 (trixie) source packages, through a
# private apt configuration under build/, and lay them out as an offline cargo registry.
# The system's apt sources are never touched. On a Debian 13 host with the crates installed
# the system registry is used instead (see Makefile).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/build/crates"
apt="$top/build/apt"
stamp="$out/.complete"
# Only what the bridge needs: rustls 0.23 (ring provider, std) and x509-parser (certificate
# fields) with their dependencies; serde only because cargo resolves time's weak `serde?/alloc`.
pkgs="librust-rustls-dev librust-rustls-pki-types-dev librust-rustls-webpki-dev
librust-ring-dev librust-untrusted-dev librust-getrandom-dev librust-cfg-if-dev librust-libc-dev
librust-cc-dev librust-shlex-dev librust-spin-dev librust-subtle-dev librust-zeroize-dev
librust-log-dev librust-once-cell-dev
librust-x509-parser-dev librust-asn1-rs-dev librust-asn1-rs-derive-dev librust-asn1-rs-impl-dev
librust-der-parser-dev librust-oid-registry-dev librust-rusticata-macros-dev librust-nom-dev
librust-memchr-dev librust-minimal-lexical-dev librust-num-bigint-dev librust-num-integer-dev
librust-num-traits-dev librust-autocfg-dev librust-data-encoding-dev librust-lazy-static-dev
librust-thiserror-dev librust-thiserror-impl-dev librust-displaydoc-dev librust-time-dev
librust-time-core-dev librust-time-macros-dev librust-deranged-dev librust-powerfmt-dev
librust-num-conv-dev librust-itoa-dev librust-proc-macro2-dev librust-quote-dev librust-syn-dev
librust-unicode-ident-dev librust-synstructure-dev librust-serde-dev librust-serde-derive-dev"

# The stamp records the list, so a changed list fetches again and an unchanged one never does.
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pkgs" ] && exit 0

mkdir -p "$apt/etc/apt.conf.d" "$apt/etc/preferences.d" "$apt/lists/partial" \
         "$apt/cache/archives/partial" "$apt/debs" "$out"
: > "$apt/status"
cat > "$apt/etc/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
SRC
# Everything apt keeps lives under build/apt. The sandbox user is root because the debs land
# in our build folder, which apt's _apt user may not be allowed to write.
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
APT::Architecture "$(dpkg --print-architecture)";
Acquire::Languages "none";
APT::Sandbox::User "root";
CONF
# The keyring may be missing on minimal images; trixie's is signed by keys bookworm's carries.
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || {
  echo "fetch-crates: /usr/share/keyrings/debian-archive-keyring.gpg missing (apt-get install debian-archive-keyring)" >&2
  exit 1; }

APT_CONFIG="$apt/apt.conf" apt-get -qq update
cd "$apt/debs"
# shellcheck disable=SC2086
APT_CONFIG="$apt/apt.conf" apt-get -qq download $pkgs

rm -rf "$apt/root"
for deb in "$apt"/debs/*.deb; do
  dpkg -x "$deb" "$apt/root"
done
rm -rf "$out"/*
cp -a "$apt/root/usr/share/cargo/registry/." "$out/"
printf "%s" "$pkgs" > "$stamp"

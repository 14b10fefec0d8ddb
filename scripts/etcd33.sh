#!/usr/bin/env bash
# etcd 3.3.25 (server + etcdctl) for the test bed, from Debian 11 (bullseye): the newest 3.3 build a
# registry here serves. Its packages conflict with bookworm's etcd 3.4.23 (same names), so they are
# not installed: the two .deb files are fetched from Debian's pool, checked against the SHA256 that
# bullseye's signed Packages index gives, and unpacked into the cache directory the test bed reads
# (etcdsec.testbed.etcd.ETCD33_DIR).
set -euo pipefail
DEST="${ETCDSEC_ETCD33_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/etcdsec/etcd-3.3.25}"
[ -x "$DEST/etcd" ] && [ -x "$DEST/etcdctl" ] && exit 0
POOL=http://deb.debian.org/debian/pool/main/e/etcd
declare -A SHA256=(
  [etcd-server_3.3.25+dfsg-6+b6_amd64.deb]=26ebaf2c5482e1ded1c7d9a65a47d06cdb9dc99d78aa3c280ee61bae39d4e44c
  [etcd-client_3.3.25+dfsg-6+b6_amd64.deb]=df59b04f745046e77d27919bf50364b91a5dcacaa812fbcd946574f85b23fe1c
)
if [ "$(dpkg --print-architecture 2>/dev/null || echo unknown)" != amd64 ]; then
  echo "etcd33.sh: the pinned etcd 3.3.25 packages are amd64 builds" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for deb in "${!SHA256[@]}"; do
  curl -fsS --retry 3 --max-time 120 -o "$work/$deb" "$POOL/$deb"
  echo "${SHA256[$deb]}  $work/$deb" | sha256sum -c --quiet -
  dpkg-deb -x "$work/$deb" "$work/root"
done
mkdir -p "$DEST"
install -m 0755 "$work/root/usr/bin/etcd" "$work/root/usr/bin/etcdctl" "$DEST/"
"$DEST/etcd" --version | head -1

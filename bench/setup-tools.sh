#!/usr/bin/env bash
# The tools a user would pick instead of etcdsec, for side-by-side benchmarks (not needed by tests).
set -euo pipefail
cd "$(dirname "$0")"
command -v nmap >/dev/null || { apt-get update -qq && apt-get install -y -qq nmap >/dev/null; }
[ -x .tools/bin/kube-hunter ] || { python3 -m venv .tools && .tools/bin/pip install -q kube-hunter; }
echo "nmap: $(command -v nmap); kube-hunter: $(pwd)/.tools/bin/kube-hunter"

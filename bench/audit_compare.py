#!/usr/bin/env python3
"""What a manifest-only checker sees on the audit fixture trees, next to `etcdsec audit`.

Usage:  .venv/bin/python bench/audit_compare.py [--checkov PATH]
checkov (PyPI `checkov`, its CKV_K8S etcd/apiserver checks) is looked up with --checkov, $CHECKOV or
PATH; install it apart from the project, e.g. `python3 -m venv /tmp/checkov && /tmp/checkov/bin/pip
install checkov`. Missing, it is reported and skipped.

For each tree, EXPECTED lists the problems the fixture was built to contain (medium and above), with
the etcdsec rule ID used to count them; checkov's check IDs are mapped to the same IDs. Printed:
problems found by each tool, their false alarms, and wall time. No network traffic at all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etcdsec.audit.engine import audit
from etcdsec.model import Severity
from tests.audit.conftest import materialise

# The problems each fixture tree was built to contain (see docs/audit.md, "Fixture trees").
EXPECTED: dict[str, set[str]] = {
    "kubeadm": {"K8S-ENCRYPTION", "K8S-AUDIT-LOG"},
    "kubeadm-traps": {"ETCD-LISTEN-EXPOSED", "ETCD-CLIENT-TLS", "ETCD-CLIENT-CERT-AUTH", "ETCD-UNIQUE-CA",
                      "K8S-ENCRYPTION"},
    "openshift": set(),
    "k3s": {"K8S-ENCRYPTION"},
    "kubespray": {"ETCD-METRICS-EXPOSED"},
    "debian-default": {"ETCD-CLIENT-TLS", "ETCD-CLIENT-CERT-AUTH"},
    "exposed-host": {"ETCD-LISTEN-EXPOSED", "ETCD-CLIENT-TLS", "ETCD-CLIENT-CERT-AUTH", "ETCD-AUTO-TLS",
                     "ETCD-PPROF", "ETCD-V2-API"},
    "config-file": {"ETCD-PEER-CERT-AUTH"},
}
# checkov check -> the etcdsec rule that covers the same ground.
CHECKOV_MAP = {
    "CKV_K8S_116": "ETCD-CLIENT-TLS", "CKV_K8S_117": "ETCD-CLIENT-CERT-AUTH", "CKV_K8S_118": "ETCD-AUTO-TLS",
    "CKV_K8S_119": "ETCD-PEER-TLS", "CKV_K8S_121": "ETCD-PEER-CERT-AUTH", "CKV_K8S_99": "K8S-ETCD-CLIENT",
    "CKV_K8S_102": "K8S-ETCD-CLIENT", "CKV_K8S_104": "K8S-ENCRYPTION", "CKV_K8S_91": "K8S-AUDIT-LOG",
    "CKV_K8S_92": "K8S-AUDIT-LOG", "CKV_K8S_93": "K8S-AUDIT-LOG", "CKV_K8S_94": "K8S-AUDIT-LOG",
}


def etcdsec_ids(root: Path) -> tuple[set[str], float]:
    start = time.perf_counter()
    report = audit([root])
    elapsed = time.perf_counter() - start
    return {f.id for f in report.findings if Severity.parse(f.severity) >= Severity.medium}, elapsed


def checkov_ids(checkov: str, root: Path) -> tuple[set[str], int, float]:
    """Mapped IDs of failed checks, the number of mapped checks it evaluated at all, and wall time."""
    start = time.perf_counter()
    ran = subprocess.run([checkov, "-d", str(root), "--framework", "kubernetes", "-o", "json", "--quiet"],
                         capture_output=True, timeout=600, text=True)
    elapsed = time.perf_counter() - start
    docs = json.loads(ran.stdout or "[]") if ran.stdout.strip().startswith(("[", "{")) else []
    docs = docs if isinstance(docs, list) else [docs]
    failed: set[str] = set()
    evaluated = 0
    for doc in docs:
        results = doc.get("results", {}) if isinstance(doc, dict) else {}
        for outcome in ("failed_checks", "passed_checks"):
            for check in results.get(outcome, []):
                if check["check_id"] in CHECKOV_MAP:
                    evaluated += 1
                    if outcome == "failed_checks":
                        failed.add(CHECKOV_MAP[check["check_id"]])
    return failed, evaluated, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", default=os.environ.get("CHECKOV") or shutil.which("checkov"))
    args = parser.parse_args()
    print(f"{'tree':15} {'expected':>8} | {'etcdsec found':>13} {'false':>5} {'ms':>6} | "
          f"{'checkov found':>13} {'false':>5} {'ran':>4} {'s':>5}")
    totals = [0, 0, 0, 0, 0]
    details: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, expected in EXPECTED.items():
            root = materialise(name, Path(tmp))
            ours, took = etcdsec_ids(root)
            row = (f"{name:15} {len(expected):8} | {len(ours & expected):13} {len(ours - expected):5} "
                   f"{took * 1000:6.1f} | ")
            totals[0] += len(expected)
            totals[1] += len(ours & expected)
            totals[2] += len(ours - expected)
            if args.checkov:
                theirs, evaluated, their_time = checkov_ids(args.checkov, root)
                row += f"{len(theirs & expected):13} {len(theirs - expected):5} {evaluated:4} {their_time:5.1f}"
                details.append(f"{name}: checkov missed {sorted(expected - theirs) or '-'}; "
                               f"false {sorted(theirs - expected) or '-'}")
                totals[3] += len(theirs & expected)
                totals[4] += len(theirs - expected)
            else:
                row += "checkov not installed: skipped"
            print(row)
    print(f"{'total':15} {totals[0]:8} | {totals[1]:13} {totals[2]:5} {'':6} | {totals[3]:13} {totals[4]:5}")
    print("found = expected problems reported (medium+); false = reported but not expected; "
          "ran = checkov etcd/apiserver checks it evaluated")
    for line in details:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

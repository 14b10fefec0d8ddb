#!/usr/bin/env python3
"""Audit benchmark: how long `etcdsec audit` takes on each fixture host tree and on live processes.

Usage:  .venv/bin/python bench/audit_bench.py [--rounds 50] [--etcd 3]
Prints, per fixture tree, the median and p95 wall time of a full audit (read, resolve, rules), the
number of sources read and findings; then the same for a live /proc audit with N real etcd members
started on 127.0.0.0/8 (limited to their pids), and for a whole-/proc discovery pass.
Every loop is bounded by --rounds; every server binds a loopback address.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etcdsec.audit.engine import AuditReport, audit
from etcdsec.audit.procfs import live_processes
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.audit.conftest import FIXTURES, materialise


def timed(fn: Callable[[], AuditReport | object], rounds: int) -> tuple[float, float, object]:
    samples = []
    result: object = None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))], result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--etcd", type=int, default=3, help="real etcd members to start for the live audit")
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, 1000))
    print(f"{'input':34} {'median ms':>9} {'p95 ms':>8} {'sources':>7} {'findings':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and p.name != "pki"):
            root = materialise(name, Path(tmp))
            median, p95, report = timed(lambda root=root: audit([root]), rounds)
            assert isinstance(report, AuditReport)
            print(f"tree {name:29} {median:9.2f} {p95:8.2f} {len(report.sources):7} {len(report.findings):8}")
    count = max(0, min(args.etcd, 8))
    servers = [EtcdServer(EtcdConfig(version="3.5" if i % 2 else "3.4")).start() for i in range(count)]
    try:
        pids = {s.proc.pid for s in servers if s.proc}
        if pids:
            median, p95, report = timed(lambda: audit([], pids=pids, live=True), rounds)
            assert isinstance(report, AuditReport)
            print(f"{'live /proc, ' + str(len(pids)) + ' etcd pids':34} {median:9.2f} {p95:8.2f} "
                  f"{len(report.sources):7} {len(report.findings):8}")
        median, p95, found = timed(live_processes, rounds)
        print(f"{'discover all etcd in /proc':34} {median:9.2f} {p95:8.2f} {'':7} {len(found):8}  (processes found)")
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Hostile files against `etcdsec audit` and `etcdsec scan --import`: time, peak memory, output size.

Usage:  .venv/bin/python bench/hostile_files.py [--before-src DIR] [--runs N]

--before-src DIR runs an older etcdsec (a `src` directory, e.g. from `git archive <ref> src | tar -x`)
through the same harness, for before/after figures. Next to etcdsec: what a user would reach for to
read the same file, when installed: `kubectl create --dry-run=client` (Go, sigs.k8s.io/yaml, with
KUBECONFIG=/dev/null: it parses and stops, no cluster is contacted) and `yq` (Python, PyYAML).

Every child runs under a 2 GiB address-space limit and a 60 s timeout (a bound on a bomb, not a
claim). Memory is the child's peak RSS from wait4() (tests/support/peakrss.py: this script's own
memory not counted in). No network traffic: imports are refused or hold
no target before any connection.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.audit.test_hostile_files import bomb_config, bomb_manifest
from tests.scan.test_hostile_imports import billion_laughs
from tests.support.peakrss import run_measured

CAP_BYTES = 2 << 30
TIMEOUT = 60.0


def measure(argv: list[str], env: dict[str, str]) -> tuple[str, float, float, int]:
    """(outcome, wall s, peak MiB, stdout bytes) of one run."""
    with tempfile.TemporaryFile() as out:
        run = run_measured(argv, TIMEOUT, env=env, stdout_file=out, address_cap=CAP_BYTES)
        size = out.seek(0, 2)
    peak = run.peak_bytes / (1 << 20)
    if run.returncode is None:
        return f"killed after {TIMEOUT:.0f} s", run.seconds, peak, 0
    last = (run.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
    outcome = f"exit {run.returncode}"
    if "MemoryError" in last:
        outcome = "MemoryError at the 2 GiB cap"
    elif run.returncode:
        outcome += f": {last[:90]}"
    return outcome, run.seconds, peak, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before-src", type=Path, help="an older etcdsec's src directory")
    parser.add_argument("--runs", type=int, default=3, help="runs per row; the median is printed")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="etcdsec-hostile-"))
    manifest, config, xml = work / "etcd.yaml", work / "etcd.conf.yml", work / "nmap.xml"
    manifest.write_text(bomb_manifest())
    config.write_text(bomb_config())
    xml.write_text(billion_laughs())
    here = str(Path(__file__).resolve().parents[1] / "src")
    versions = [("etcdsec (this branch)", here)]
    if args.before_src:
        versions.insert(0, ("etcdsec (before)", str(args.before_src)))
    rows: list[tuple[str, str, list[str], dict[str, str]]] = []
    for label, src in versions:
        env = {**os.environ, "PYTHONPATH": src}
        for name, path in (("manifest bomb", manifest), ("config bomb", config)):
            rows.append((f"{label} audit", f"{name} ({path.stat().st_size} B)",
                         [sys.executable, "-m", "etcdsec", "audit", str(path), "--format", "json"], env))
        rows.append((f"{label} scan --import", f"nmap XML entity bomb ({xml.stat().st_size} B)",
                     [sys.executable, "-m", "etcdsec", "scan", "--import", str(xml), "--db", str(work / "s.db"),
                      "--no-probe", "-q"], env))
    if shutil.which("kubectl"):
        env = {**os.environ, "KUBECONFIG": "/dev/null"}
        rows.append(("kubectl create --dry-run=client", f"manifest bomb ({manifest.stat().st_size} B)",
                     ["kubectl", "create", "--dry-run=client", "--validate=false", "-o", "json", "-f", str(manifest)],
                     env))
    if shutil.which("yq"):
        for name, path in (("manifest bomb", manifest), ("config bomb", config)):
            rows.append(("yq .", f"{name} ({path.stat().st_size} B)", ["yq", ".", str(path)], dict(os.environ)))
    print("| tool | file | outcome | wall s | peak MiB | stdout bytes |")
    print("|---|---|---|---:|---:|---:|")
    for tool, what, argv, env in rows:
        runs = sorted((measure(argv, env) for _ in range(args.runs)), key=lambda r: r[1])
        outcome, wall, peak, size = runs[len(runs) // 2]
        print(f"| {tool} | {what} | {outcome} | {wall:.2f} | {peak:.0f} | {size:,} |", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

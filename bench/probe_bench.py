#!/usr/bin/env python3
"""Probe benchmark: etcdsec vs kube-hunter vs `nmap -sV` on one loopback test bed, in one run.

Usage:  .venv/bin/python bench/probe_bench.py [--fakes 40] [--tarpits 4] [--closed 10] [--nmap-subset 12]
Tools:  kube-hunter from $KUBE_HUNTER or PATH (bench/setup-tools.sh installs it in bench/.tools),
        nmap from Debian. A missing tool is reported and skipped.
Every address used is on 127.0.0.0/8; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

from loopback_guard import GUARD

from etcdsec.probe.api import probe_many
from etcdsec.probe.options import ProbeOptions
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.support.etcd_admin import enable_v2_auth, enable_v3_auth
from tests.support.fakes import FakeServers


@dataclass
class Endpoint:
    addr: str  # ip:port
    kind: str
    etcd: bool  # truth: an etcd listens here
    exposed: bool  # truth: anonymous read access


REAL_KINDS = {
    # kind: (config kwargs, setup, exposed)
    "open-v2-k8s": ({"enable_v2": True}, "k8s", True),
    "open-v3": ({}, "k8s", True),
    "v3-auth": ({}, "auth3", False),
    "v2-guest": ({"enable_v2": True}, "guest", True),
    "tls-no-client-auth": ({"tls": True}, "k8s", True),
    "mtls": ({"client_cert_auth": True}, None, False),
}


def start_real(version: str, kind: str) -> tuple[EtcdServer, Endpoint]:
    kwargs, setup, exposed = REAL_KINDS[kind]
    s = EtcdServer(EtcdConfig(version=version, **kwargs)).start()
    if setup == "k8s":
        for i in range(20):
            s.put(f"/registry/secrets/ns{i % 3}/s{i}", "bench-secret")
            s.put(f"/registry/pods/ns{i % 3}/p{i}", "pod")
    elif setup == "auth3":
        enable_v3_auth(s)
    elif setup == "guest":
        enable_v2_auth(s)
        enable_v3_auth(s)
    return s, Endpoint(s.client_addr, f"etcd {version} {kind}", True, exposed)


def run_etcdsec(endpoints: list[Endpoint]) -> dict:
    t0 = time.monotonic()
    results = asyncio.run(probe_many([e.addr for e in endpoints], ProbeOptions(deadline=8), concurrency=256))
    wall = time.monotonic() - t0
    etcd_ok = sum((r.is_etcd is True) == e.etcd or (r.client_cert_required and e.etcd)
                  for r, e in zip(results, endpoints, strict=True))
    exp_ok = sum(r.exposed == e.exposed for r, e in zip(results, endpoints, strict=True))
    return {"tool": "etcdsec probe", "endpoints": len(endpoints), "wall_s": wall,
            "endpoints_per_s": len(endpoints) / wall, "etcd_identified": etcd_ok, "exposure_correct": exp_ok,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def find_kube_hunter() -> str | None:
    for cand in (os.environ.get("KUBE_HUNTER"), str(Path(__file__).parent / ".tools/bin/kube-hunter"),
                 shutil.which("kube-hunter")):
        if cand and Path(cand).exists():
            return cand
    return None


def run_kube_hunter(endpoints: list[Endpoint], label: str, limit: float) -> dict | None:
    exe = find_kube_hunter()
    if not exe:
        return None
    ips = [e.addr.rsplit(":", 1)[0] for e in endpoints]
    python = Path(exe).parent / "python"  # run under the loopback-only guard, never the bare script
    t0 = time.monotonic()
    try:
        out = subprocess.run([str(python), "-c", GUARD, "--remote", *ips, "--report", "json", "--log", "none"],
                             capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"tool": label, "error": f"did not finish within {limit:g} s (no report; it waits on tarpits)"}
    wall = time.monotonic() - t0
    try:
        report = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"tool": label, "error": out.stderr[-300:]}
    services = {s["location"] for s in report.get("services", []) if s.get("service") == "Etcd"}
    vulns: dict[str, set[str]] = {}
    for v in report.get("vulnerabilities", []):
        vulns.setdefault(v["location"], set()).add(v["vid"])
    etcd_ok = sum((e.addr in services) == e.etcd for e in endpoints)
    exp_ok = sum(bool(vulns.get(e.addr, set()) & {"KHV031", "KHV032"}) == e.exposed for e in endpoints)
    return {"tool": label, "endpoints": len(endpoints), "wall_s": wall,
            "endpoints_per_s": len(endpoints) / wall, "etcd_identified": etcd_ok, "exposure_correct": exp_ok}


def run_nmap(endpoints: list[Endpoint]) -> dict | None:
    if not shutil.which("nmap"):
        return None
    ips = [e.addr.rsplit(":", 1)[0] for e in endpoints]
    t0 = time.monotonic()
    out = subprocess.run(["nmap", "-sV", "-Pn", "-n", "-p", "2379", "-oX", "-", *ips], capture_output=True,
                         text=True, timeout=1800)
    wall = time.monotonic() - t0
    import xml.etree.ElementTree as ET

    found: set[str] = set()
    try:
        root = ET.fromstring(out.stdout)
    except ET.ParseError:
        return {"tool": "nmap -sV", "error": f"nmap exited {out.returncode}: {out.stderr.strip()[-200:]}"}
    for host in root.iter("host"):
        ip = host.find("address").get("addr")  # type: ignore[union-attr]
        for port in host.iter("port"):
            svc = port.find("service")
            text = " ".join(svc.get(k, "") for k in ("name", "product", "version")) if svc is not None else ""
            if "etcd" in text.lower():
                found.add(f"{ip}:{port.get('portid')}")
    etcd_ok = sum((e.addr in found) == e.etcd for e in endpoints)
    return {"tool": "nmap -sV", "endpoints": len(endpoints), "wall_s": wall,
            "endpoints_per_s": len(endpoints) / wall, "etcd_identified": etcd_ok, "exposure_correct": None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fakes", type=int, default=40, help="non-etcd HTTP services answering 200 JSON")
    ap.add_argument("--tarpits", type=int, default=4)
    ap.add_argument("--closed", type=int, default=10)
    ap.add_argument("--nmap-subset", type=int, default=12, help="endpoints given to nmap -sV (slow)")
    ap.add_argument("--kube-hunter-limit", type=float, default=240, help="seconds before giving up on it")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    servers: list[EtcdServer] = []
    endpoints: list[Endpoint] = []
    with FakeServers() as fakes:
        try:
            for version in ("3.4", "3.5"):
                for kind in REAL_KINDS:
                    s, e = start_real(version, kind)
                    servers.append(s)
                    endpoints.append(e)
            for kind, n, exposed in (("json", args.fakes, False), ("tarpit", args.tarpits, False)):
                for _ in range(min(n, 1000)):
                    ip = free_loopback_ip((2379,))
                    fakes.start(kind, ip)
                    endpoints.append(Endpoint(f"{ip}:2379", f"fake {kind}", False, exposed))
            for _ in range(min(args.closed, 1000)):
                endpoints.append(Endpoint(f"{free_loopback_ip((2379,))}:2379", "closed", False, False))

            print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
                  f"test bed: {len(servers)} real etcd, {args.fakes} JSON fakes, {args.tarpits} tarpits, "
                  f"{args.closed} closed = {len(endpoints)} endpoints", flush=True)
            rows = [run_etcdsec(endpoints)]
            missing = {"tool": "kube-hunter", "error": "not installed (bench/setup-tools.sh)"}
            rows.append(run_kube_hunter(endpoints, "kube-hunter (all)", args.kube_hunter_limit) or missing)
            calm = [e for e in endpoints if e.kind != "fake tarpit"]
            rows.append(run_etcdsec(calm) | {"tool": "etcdsec probe (no tarpits)"})
            rows.append(run_kube_hunter(calm, "kube-hunter (no tarpits)", 1800) or missing)
            subset = endpoints[:12:2] + endpoints[12:12 + max(0, args.nmap_subset - 6)]
            rows.append(run_etcdsec(subset) | {"tool": "etcdsec probe (nmap subset)"})
            nm = run_nmap(subset)
            rows.append(nm or {"tool": "nmap -sV", "error": "nmap not installed"})
        finally:
            for s in servers:
                s.stop()

    print(f"\n{'tool':30} {'endpoints':>9} {'wall s':>8} {'endpoints/s':>12} {'etcd identified':>16} "
          f"{'exposure right':>15}")
    for row in rows:
        if "error" in row:
            print(f"{row['tool']:30} {row['error']}")
            continue
        n = row["endpoints"]
        exp = f"{row['exposure_correct']}/{n}" if row["exposure_correct"] is not None else "no verdict"
        print(f"{row['tool']:30} {n:9d} {row['wall_s']:8.2f} {row['endpoints_per_s']:12.1f} "
              f"{row['etcd_identified']:>10}/{n:<5} {exp:>15}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

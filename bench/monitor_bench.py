#!/usr/bin/env python3
"""How many targets `etcdsec monitor exposure` keeps at a 10 s interval on one core.

Usage:  .venv/bin/python bench/monitor_bench.py [--per-etcd 100] [--closed 40] [--sustain 30]
Part 1: CPU per observation of the monitor (in-process, as it runs) beside what a user would script
        instead: `etcdsec probe` from cron (a process per target), `curl /version` (liveness only,
        no verdict), `etcdctl endpoint health`. Targets per core at 10 s = 10 s / CPU per observation.
Part 2: a sustained run at 80 % of that estimate: every target at --every 10s for --sustain seconds;
        observations made vs expected, the longest gap between two observations of one target, CPU used.
Part 3 (--workers N): the same targets watched by one process against `--workers N` (a local Dask
        cluster, the command's own code path: start-up included): one `--once` round's wall time, and
        a sustained run's observations (expected) and longest gap.
Targets are real etcd 3.4 and 3.5 (each watched under many target names, so the probes are real)
and closed loopback ports. Every address is on 127.0.0.0/8; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from etcdsec.monitor.exposure import ExposureConfig, ExposureMonitor
from etcdsec.probe.options import ProbeOptions
from etcdsec.targets import Target
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def make_targets(etcds: list[EtcdServer], per_etcd: int, closed_ip: str, closed: int) -> list[Target]:
    """Many names for the same real endpoints: each name is watched, stored and judged on its own."""
    out = []
    for etcd in etcds:
        out += [Target(etcd.ip, 2379, None, f"{etcd.client_addr}#{i}") for i in range(per_etcd)]
    out += [Target(closed_ip, 2379, None, f"{closed_ip}:2379#{i}") for i in range(closed)]
    return out


def monitor_once(targets: list[Target], tmp: Path) -> tuple[float, float]:
    """(CPU s, wall s) for one observation of every target, in-process with the store and event file."""
    config = ExposureConfig(targets=targets, db=str(tmp / "once.db"), events=tmp / "once.jsonl", once=True,
                            probe=ProbeOptions(deadline=10))
    m = ExposureMonitor(config, out=open("/dev/null", "w"))  # noqa: SIM115
    c0, w0 = cpu_self(), time.monotonic()
    asyncio.run(m.run_once())
    c1, w1 = cpu_self(), time.monotonic()
    asyncio.run(m.close())
    return c1 - c0, w1 - w0


def etcd_cpu(etcds: list[EtcdServer]) -> float:
    """CPU s the etcd servers used so far (from /proc: they are not reaped until they stop)."""
    ticks = 0
    for e in etcds:
        assert e.proc is not None
        fields = Path(f"/proc/{e.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def per_process(cmd: list[str], runs: int) -> float:
    """CPU s per run of a command (a cron-style check per target)."""
    c0 = cpu_children()
    for _ in range(runs):
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=False)
    return (cpu_children() - c0) / runs


def sustained(targets: list[Target], every: float, seconds: float, tmp: Path, etcds: list[EtcdServer],
              concurrency: int) -> dict[str, float]:
    name = f"sustain-{len(targets)}"
    config = ExposureConfig(targets=targets, db=str(tmp / f"{name}.db"), events=tmp / f"{name}.jsonl",
                            every=every, duration=seconds, probe=ProbeOptions(deadline=10), concurrency=concurrency)
    m = ExposureMonitor(config, out=open("/dev/null", "w"))  # noqa: SIM115
    seen: dict[str, list[float]] = {}
    record = m.record

    def timed(target, result, now=None):  # type: ignore[no-untyped-def]
        seen.setdefault(target.text, []).append(time.monotonic())
        return record(target, result, now)

    m.record = timed  # type: ignore[method-assign]

    async def main() -> None:
        try:
            await m.run(asyncio.Event())
        finally:
            await m.close()

    c0, w0, e0 = cpu_self(), time.monotonic(), etcd_cpu(etcds)
    asyncio.run(main())
    cpu, wall = cpu_self() - c0, time.monotonic() - w0
    etcd = etcd_cpu(etcds) - e0
    gaps = [b - a for times in seen.values() for a, b in itertools.pairwise(times)]
    # the first observation of each target falls anywhere in the first interval; after that one per `every`
    expected = sum(max(0, int((seconds - every) / every)) + 1 for _ in targets)
    return {"targets": len(targets), "observations": sum(len(t) for t in seen.values()), "expected": expected,
            "max_gap_s": max(gaps, default=0.0), "cpu_s": cpu, "wall_s": wall, "cpu_pct": 100 * cpu / wall,
            "etcd_cpu_pct": 100 * etcd / wall}


def scaled(targets: list[Target], workers: int, every: float, seconds: float | None, tmp: Path,
           concurrency: int) -> dict[str, float]:
    """`monitor exposure --workers N` through the command's own function; wall s, observations, longest gap."""
    import argparse as ap_
    import contextlib
    import sqlite3

    from etcdsec.commands.monitor_cluster import run_partitioned

    name = f"w{workers}-{'once' if seconds is None else 'sustain'}-{len(targets)}"
    db = tmp / f"{name}.db"
    config = ExposureConfig(targets=targets, db=str(db), events=tmp / f"{name}.jsonl", once=seconds is None,
                            every=every, duration=seconds, probe=ProbeOptions(deadline=10), concurrency=concurrency)
    args = ap_.Namespace(workers=str(workers), cluster=None, db=str(db), partitions=None, every=f"{every:g}s")
    w0 = time.monotonic()
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        run_partitioned(args, config)
    wall = time.monotonic() - w0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select target, observed_at from monitor_observations order by target, id").fetchall()
    stamps: dict[str, list[float]] = {}
    for target, at in rows:
        stamps.setdefault(target, []).append(dt.datetime.fromisoformat(at).timestamp())
    gaps = [b - a for times in stamps.values() for a, b in itertools.pairwise(times)]
    return {"wall_s": wall, "observations": len(rows), "max_gap_s": max(gaps, default=0.0)}


def part3(etcds: list[EtcdServer], closed_ip: str, a: argparse.Namespace, tmp: Path) -> None:
    targets = make_targets(etcds, a.per_etcd, closed_ip, a.closed)
    expected = len(targets) * (max(0, int((a.sustain - a.every) / a.every)) + 1)
    print(f"\npart 3: {len(targets)} targets, one process against --workers {a.workers} (local cluster start-up "
          "included in its wall time)")
    print(f"| run | --once round wall s | sustained {a.sustain:g} s at every {a.every:g} s: observations "
          "(expected) | longest gap s |")
    print("|---|---:|---:|---:|")
    _cpu, once_wall = monitor_once(targets, tmp)
    r = sustained(targets, a.every, a.sustain, tmp, etcds, a.concurrency)
    print(f"| one process (in-process) | {once_wall:.2f} | {r['observations']:,.0f} ({expected:,}) | "
          f"{r['max_gap_s']:.2f} |", flush=True)
    once = scaled(targets, a.workers, a.every, None, tmp, a.concurrency)
    run = scaled(targets, a.workers, a.every, a.sustain, tmp, a.concurrency)
    print(f"| --workers {a.workers} | {once['wall_s']:.2f} | {run['observations']:,.0f} ({expected:,}) | "
          f"{run['max_gap_s']:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-etcd", type=int, default=100, help="target names per real etcd in part 1 (100)")
    ap.add_argument("--closed", type=int, default=40, help="closed loopback ports among the targets (40)")
    ap.add_argument("--runs", type=int, default=20, help="runs of each per-process tool (20)")
    ap.add_argument("--every", type=float, default=10.0)
    ap.add_argument("--sustain", type=float, default=30.0, help="seconds of the sustained run (30, at most 120)")
    ap.add_argument("--max-targets", type=int, default=3000, help="cap for the sustained runs (3000)")
    ap.add_argument("--concurrency", type=int, default=256, help="probes in flight in the sustained runs (256)")
    ap.add_argument("--workers", type=int, default=0, help="also part 3: one process against --workers N (0: skip)")
    ap.add_argument("--only-workers", action="store_true", help="run part 3 only")
    a = ap.parse_args()
    a.sustain = min(a.sustain, 120.0)
    tmp = Path(tempfile.mkdtemp(prefix="etcdsec-monbench-"))
    etcds = [EtcdServer(EtcdConfig(version=v)).start() for v in ("3.4", "3.5")]
    try:
        closed_ip = free_loopback_ip((2379,))  # nothing listens there: connection refused
        if a.workers:
            part3(etcds, closed_ip, a, tmp)
        if a.only_workers:
            return
        targets = make_targets(etcds, a.per_etcd, closed_ip, a.closed)
        cpu, wall = monitor_once(targets, tmp)
        per_obs = cpu / len(targets)
        rows = [("etcdsec monitor exposure (in-process)", per_obs, "full verdict, stored, events")]
        etcdsec = [sys.executable, "-m", "etcdsec", "probe", "--format", "json", etcds[1].client_addr]
        rows.append(("etcdsec probe per target (cron)", per_process(etcdsec, a.runs), "full verdict, no history"))
        if shutil.which("curl"):
            curl = ["curl", "-s", "-m", "5", f"{etcds[1].client_url}/version"]
            rows.append(("curl /version per target", per_process(curl, a.runs * 3), "liveness only, no verdict"))
        etcdctl = [str(etcds[1].etcdctl), f"--endpoints={etcds[1].client_url}", "endpoint", "health"]
        rows.append(("etcdctl endpoint health per target", per_process(etcdctl, a.runs), "liveness only"))
        print(f"part 1: {len(targets)} targets ({2 * a.per_etcd} on 2 real etcds, {a.closed} closed ports); "
              f"one round took {wall:.2f} s wall, {cpu:.2f} s CPU")
        print(f"| check | CPU ms per observation | targets at {a.every:g} s per core | what it tells |")
        print("|---|---:|---:|---|")
        for name, c, what in rows:
            print(f"| {name} | {c * 1000:.1f} | {int(a.every / c):,} | {what} |")
        # Part 2a: as many etcd-backed targets as the two local etcds can answer (they share this
        # machine's cores with the monitor, so they, not the monitor, set the pace here).
        served = len(targets) / wall
        n = min(a.max_targets, int(0.7 * served * a.every))
        n_closed = int(n * a.closed / len(targets))
        runs = [("real etcds + closed ports", make_targets(etcds, (n - n_closed) // 2, closed_ip, n_closed))]
        # Part 2b: the loop, store and events at scale, where each probe is cheap (connection refused).
        runs.append(("closed ports only", make_targets([], 0, closed_ip, min(a.max_targets, int(0.8 * a.every
                                                                                                / per_obs)))))
        print(f"\n| sustained run, every {a.every:g} s for {a.sustain:g} s | targets | observations (expected) "
              "| longest gap s | monitor CPU % of a core | etcd servers CPU % |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, group in runs:
            r = sustained(group, a.every, a.sustain, tmp, etcds, a.concurrency)
            print(f"| {label} | {r['targets']:,.0f} | {r['observations']:,.0f} ({r['expected']:,.0f}) | "
                  f"{r['max_gap_s']:.2f} | {r['cpu_pct']:.0f} | {r['etcd_cpu_pct']:.0f} |", flush=True)
    finally:
        for e in etcds:
            e.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

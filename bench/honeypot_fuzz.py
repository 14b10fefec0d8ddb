#!/usr/bin/env python3
"""The large seeded fuzz of the whole sensor (the CI test runs 2,000 of the same inputs).

Usage:  .venv/bin/python bench/honeypot_fuzz.py [--inputs 20000] [--seed N] [--concurrency 64] [--etcd]
                                                [--json out.json]

Every input (tests/honeypot/fuzzgen.py) goes on its own connection from one of 32 loopback source
addresses; the sensor has idle 1 s, request head 0.5 s, watch 0.5 s. Counted:
`etcdsec.sensor.error` events, answers with status 500, and connections still open 6 s after the
client's last byte (past every timeout). The sensor runs as its own process (`etcdsec honeypot`,
events read back from its JSON-lines file). `--etcd` sends the same inputs to real etcd 3.5.1 for
comparison (it has no idle or head timeouts, so "held" there is by design, not a fault). To measure
an older version, put its src/ first: PYTHONPATH=/path/to/old/src. Loopback only; bounded in count
and in time (10 minutes per target at most).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.honeypot.fuzzgen import run_fuzz

HANG_AFTER_S = 6.0


def sensor_row(inputs: int, seed: int, concurrency: int) -> dict[str, Any]:
    """`etcdsec honeypot` as its own process (a fault in it cannot touch the client's sockets)."""
    ip = free_loopback_ip((2379,))
    with tempfile.TemporaryDirectory(prefix="etcdsec-fuzz-") as tmp:
        events = Path(tmp) / "events.jsonl"
        cmd = [sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{ip}:2379", "--persona", "3.5.1",
               "--enable-v2", "true", "--rate", "0", "--idle-timeout", "1", "--watch-timeout", "0.5",
               "--proxy-protocol", "--trusted-proxy", "127.93.0.0/16", "--events", str(events),
               "--state", str(Path(tmp) / "state.json")]
        helptext = subprocess.run([*cmd[:4], "--help"], capture_output=True, text=True).stdout
        if "--header-timeout" in helptext:  # older versions lack it
            cmd += ["--header-timeout", "0.5"]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, cwd=tmp)
        try:
            assert proc.stderr is not None
            proc.stderr.readline()  # "listening on ..."
            started = time.monotonic()
            stats = asyncio.run(run_fuzz(ip, 2379, seed, inputs, concurrency, HANG_AFTER_S))
            seconds = time.monotonic() - started
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        errors: collections.Counter[str] = collections.Counter()
        for line in events.read_text(errors="replace").splitlines():
            if '"etcdsec.sensor.error"' in line:
                errors[str(json.loads(line).get("error", ""))[:40]] += 1
    return {"target": "etcdsec honeypot 3.5.1", "inputs": stats.inputs, "sensor_errors": sum(errors.values()),
            "errors_by_kind": dict(errors), "http_500": stats.server_errors, "held": stats.hangs,
            "held_by_input": dict(collections.Counter(stats.hung_kinds)), "seconds": round(seconds, 1)}


def etcd_row(inputs: int, seed: int, concurrency: int) -> dict[str, Any]:
    with EtcdServer(EtcdConfig(version="3.5", enable_v2=True)) as real:
        started = time.monotonic()
        stats = asyncio.run(run_fuzz(real.host, 2379, seed, inputs, concurrency, HANG_AFTER_S))
        seconds = time.monotonic() - started
    return {"target": "etcd 3.5.1", "inputs": stats.inputs, "sensor_errors": None, "http_500": stats.server_errors,
            "held": stats.hangs, "held_by_input": dict(collections.Counter(stats.hung_kinds)),
            "seconds": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--etcd", action="store_true", help="also send the inputs to real etcd 3.5.1")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    print(f"seed {seed}, {args.inputs} inputs, concurrency {args.concurrency}, held = open {HANG_AFTER_S:.0f} s "
          "after the last byte")
    rows = [sensor_row(args.inputs, seed, args.concurrency)]
    if args.etcd:
        rows.append(etcd_row(args.inputs, seed, args.concurrency))
    print(f"{'target':<26} {'inputs':>7} {'sensor.error':>12} {'HTTP 500':>8} {'held':>6} {'seconds':>8}")
    for r in rows:
        errs = "-" if r["sensor_errors"] is None else r["sensor_errors"]
        print(f"{r['target']:<26} {r['inputs']:>7} {errs:>12} {r['http_500']:>8} {r['held']:>6} {r['seconds']:>8}")
        for key in ("errors_by_kind", "held_by_input"):
            if r.get(key):
                print(f"  {key}: {r[key]}")
    if args.json:
        args.json.write_text(json.dumps({"seed": seed, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

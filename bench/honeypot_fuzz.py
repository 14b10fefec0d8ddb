#!/usr/bin/env python3
"""The large seeded fuzz of the whole sensor (the CI test runs 2,000 of the same inputs).

Usage:  .venv/bin/python bench/honeypot_fuzz.py [--inputs 20000] [--seed N] [--concurrency 64] [--etcd]
                                                [--json out.json]

Every input (tests/honeypot/fuzzgen.py) goes on its own connection from one of 32 loopback source
addresses; the sensor runs in this process with idle 1 s, request head 0.5 s, watch 0.5 s. Counted:
`etcdsec.sensor.error` events, answers with status 500, and connections still open 6 s after the
client's last byte (past every timeout). `--etcd` sends the same inputs to real etcd 3.5.1 for
comparison (it has no idle or head timeouts, so "held" there is by design, not a fault). To measure
an older version, put its src/ first: PYTHONPATH=/path/to/old/src. Loopback only; bounded in count
and in time (10 minutes per target at most).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etcdsec.honeypot.context import Limits
from etcdsec.honeypot.harness import BackgroundSensor
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.honeypot.fuzzgen import run_fuzz

HANG_AFTER_S = 6.0


def sensor_row(inputs: int, seed: int, concurrency: int) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(Limits)}
    extra = {"header_timeout_s": 0.5} if "header_timeout_s" in fields else {}  # older versions lack it
    limits = Limits(idle_timeout_s=1.0, wait_timeout_s=0.5, rate_per_source=0, **extra)
    config = SensorConfig(persona="3.5.1", state_file=None, limits=limits, enable_v2=True, proxy_protocol=True,
                          trusted_proxies=["127.93.0.0/16"])
    with BackgroundSensor(config) as hp:
        started = time.monotonic()
        stats = asyncio.run(run_fuzz(hp.ip, hp.port, seed, inputs, concurrency, HANG_AFTER_S))
        seconds = time.monotonic() - started
        errors = collections.Counter(str(e.get("error", ""))[:40] for e in hp.memory.of("sensor.error"))
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

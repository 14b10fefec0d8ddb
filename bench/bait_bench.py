#!/usr/bin/env python3
"""What the Kubernetes bait costs the sensor, next to the small keyspace a user would seed instead.

Usage:  .venv/bin/python bench/bait_bench.py [--rounds 5]

Per keyspace (the default Kubernetes bait: a kubeadm cluster's objects in protobuf and JSON, 59
honeytokens; a `--seed` file with three keys and three honeytokens): time to build it and to seed one
keyspace namespace with it (both at start; with --namespace-writes the seed again for each new
source), to compile the honeytoken matcher (once per worker at start), and the matcher's cost per
request on a typical 250-byte request and on a 4 KiB body (it runs on every request). Then the churn
task: one idle tick (nothing due, the usual case every 0.5 s), and the writes it adds, counted over
ten simulated minutes with a clock under the benchmark's control (no waiting). No network; every
loop is bounded in count.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from etcdsec.honeypot.context import EventSink, Honeytokens, Identity, SensorContext, load_persona
from etcdsec.honeypot.core.bait import Bait, kubernetes_bait, load_seed_file
from etcdsec.honeypot.v3.churn import Churn
from etcdsec.honeypot.v3.state import Namespace, V3State

SEED = """keys:
  /config/app/db: {user: app, password: s3cr3t-canary-1}
  /config/app/api: {token: tok-canary-2-abcdef}
  /flannel/network/config: '{"Network":"10.1.0.0/16"}'
honeytokens:
  s3cr3t-canary-1: app-db-password
  tok-canary-2-abcdef: app-api-token
  AKIACANARY3XYZ0000: aws-key
"""
REQUEST = (b"GET /v2/keys/registry/secrets?recursive=true HTTP/1.1\r\nHost: 10.0.0.5:2379\r\n"
           b"User-Agent: Go-http-client/1.1\r\nAuthorization: Bearer eyJhbGciOiJFUzI1NiIsImtpZCI6Im5vdC1v\r\n"
           b"Accept-Encoding: gzip\r\n\r\n")
BODY = b'{"key":"L3JlZ2lzdHJ5L3NlY3JldHMv","range_end":"L3JlZ2lzdHJ5L3NlY3JldHMw"}' * 56  # ~4 KiB


def best(fn: Callable[[], object], repeat: int, inner: int = 1,
         clock: Callable[[], float] = time.perf_counter) -> float:
    """Best of `repeat` timings of `inner` calls, seconds per call (the least disturbed by other work)."""
    times = []
    for _ in range(repeat):
        t = clock()
        for _ in range(inner):
            fn()
        times.append((clock() - t) / inner)
    return min(times)


def keyspace_row(name: str, make: Callable[[], Bait], rounds: int) -> None:
    bait = make()
    build = best(make, rounds)
    build_cpu = best(make, rounds, clock=time.process_time)  # this process's CPU: steadier on a busy machine
    compile_s = best(lambda: Honeytokens(EventSink("b"), bait.tokens).find(b"x"), rounds)
    finder = Honeytokens(EventSink("b"), bait.tokens)
    finder.find(b"warm")
    small = best(lambda: finder.find(REQUEST), rounds, 2000)
    large = best(lambda: finder.find(BODY), rounds, 500)
    size = sum(len(k) + len(v) for k, v in bait.keys)
    ident = Identity.create("kube-master-1", ["http://127.0.0.1:2379"], ["http://127.0.0.1:2380"])
    events = EventSink("b")
    state = V3State(SensorContext(load_persona("3.5.1"), ident, events, Honeytokens(events), bait.keys))
    seed = best(lambda: Namespace(state), rounds)
    print(f"{name:<22} {len(bait.keys):>5} {size // 1024:>6} {len(bait.tokens):>7} {build * 1e3:>9.1f} "
          f"{build_cpu * 1e3:>8.1f} {seed * 1e3:>8.1f} {compile_s * 1e3:>11.1f} {small * 1e6:>11.2f} "
          f"{large * 1e6:>11.2f}")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def churn_rows(rounds: int) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    ident = Identity.create("kube-master-1", ["http://127.0.0.1:2379"], ["http://127.0.0.1:2380"])
    ident.start_time = start
    events = EventSink("b")
    ctx = SensorContext(load_persona("3.5.1"), ident, events, Honeytokens(events),
                        kubernetes_bait(ident.secret_seed, start).keys)
    wall, mono = Clock(start.timestamp() + 3600), Clock(1000.0)
    state = V3State(ctx, clock=mono, wall_clock=wall)
    churn = Churn(state)
    t = time.perf_counter()
    churn.tick()  # the first tick backfills the last hour of events
    first = time.perf_counter() - t
    idle = best(churn.tick, rounds, 2000)
    ns = state.live_namespaces()[0]
    rev0, keys0 = ns.store.revision, ns.store.live_keys
    t = time.perf_counter()
    for _ in range(1200):  # ten minutes in 0.5 s ticks
        wall.t += 0.5
        mono.t += 0.5
        churn.tick()
    busy = (time.perf_counter() - t) / 1200
    print(f"first tick (backfill an hour of events): {first * 1e3:.1f} ms")
    print(f"idle tick (nothing due):                 {idle * 1e6:.2f} us")
    print(f"tick over 10 simulated minutes, mean:    {busy * 1e6:.1f} us  (CPU share at 2 ticks/s: "
          f"{busy * 2 * 100:.3f} %)")
    print(f"revisions added per second:              {(ns.store.revision - rev0) / 600:.2f}  "
          f"(live keys {keys0} -> {ns.store.live_keys}; events age out after an hour)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, 50))
    print(f"bait_bench: best of {rounds}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, python {sys.version.split()[0]}")
    print(f"{'keyspace':<22} {'keys':>5} {'KiB':>6} {'tokens':>7} {'build ms':>9} {'CPU ms':>8} {'seed ms':>8} "
          f"{'compile ms':>11} "
          f"{'find 250B us':>11} {'find 4KiB us':>11}")
    keyspace_row("kubernetes bait", lambda: kubernetes_bait("bench-seed", datetime.now(UTC)), rounds)
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp) / "seed.yaml"
        seed.write_text(SEED)
        keyspace_row("--seed (3 keys)", lambda: load_seed_file(seed), rounds)
    print()
    churn_rows(rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())

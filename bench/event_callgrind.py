#!/usr/bin/env python3
"""Instructions one honeypot event costs: end to end per request kind, and per stage of the event chain.

Usage:  .venv/bin/python bench/event_callgrind.py e2e [--kind version|put|range|range16] [--requests 100,600]
        .venv/bin/python bench/event_callgrind.py cpu [--calls 20000]
        .venv/bin/python bench/event_callgrind.py stages [--events 2000,12000] [--shape http|grpc]

`e2e`: `etcdsec honeypot` under callgrind (bench/callgrind_honeypot.py) on a three-key `--seed`
keyspace with PYTHONHASHSEED=0 (the Kubernetes bait's churn and hash-order noise left out), driven by
sequential GET /version or v2 PUT (bench/http1_callgrind.py's client) or gRPC KV.Range
(bench/v3_e2e_callgrind.py's client); the difference of two run lengths is one request's cost.

`range16` is KV.Range 16 calls at a time on one channel (several calls in one read). `cpu`: the
honeypot's CPU time (user + system, /proc) per `range16` call without valgrind: what the file's
write() calls cost in the kernel shows there, not in callgrind's counts.

`stages`: one `http.request` event of GET /version's shape built N times (fields), then emitted through a
sink with the outputs added one at a time (none, JSON-lines file, kept file, event counter, /metrics traffic), each
step a run of its own under callgrind; the differences attribute the chain's instructions to its
stages (`--shape grpc`: KV.Range's `grpc.request`, its fields given as keywords). Loopback only;
bounded request and event counts; each run under a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "src"))
from callgrind_honeypot import MAX_REQUESTS, PORT, counts, instructions, per_request

from etcdsec.testbed.addresses import is_loopback

SEED = """keys:
  /config/app/db: {user: app, password: s3cr3t-canary-1}
  /bench/key: v
  /flannel/network/config: '{"Network":"10.1.0.0/16"}'
honeytokens:
  s3cr3t-canary-1: app-db-password
"""
STAGES = ("fields", "none", "jsonl", "kept", "counter", "traffic")
MAX_EVENTS = 200_000


def e2e(kind: str, ab: tuple[int, int], ip: str, seed: Path) -> int:
    import http1_callgrind
    import v3_e2e_callgrind

    def run(n: int) -> int:
        def drive() -> None:
            if kind == "range":
                asyncio.run(asyncio.wait_for(v3_e2e_callgrind.grpc_calls(ip, "range", 20 + n), timeout=600))
                return
            if kind == "range16":
                asyncio.run(asyncio.wait_for(batched_ranges(ip, 32 + n), timeout=600))
                return
            request = http1_callgrind.REQUESTS[kind]
            with socket.create_connection((ip, PORT), timeout=120) as sock:
                for _ in range(20 + n):
                    http1_callgrind._one(sock, request)

        return instructions(ip, ["--enable-v2", "true", "--rate", "0", "--seed", str(seed)], drive)

    return per_request(run, *ab)


async def batched_ranges(ip: str, count: int) -> None:
    """`count` KV.Range calls, 16 at a time on one channel (several arrive in one read: h2load's shape)."""
    import grpc

    from etcdsec.proto import etcd_v3_pb2 as pb

    async with grpc.aio.insecure_channel(f"{ip}:{PORT}") as channel:
        call = channel.unary_unary("/etcdserverpb.KV/Range", request_serializer=pb.RangeRequest.SerializeToString,
                                   response_deserializer=pb.RangeResponse.FromString)
        request = pb.RangeRequest(key=b"/bench/key")
        for start in range(0, count, 16):
            await asyncio.gather(*(call(request, timeout=30) for _ in range(min(16, count - start))))


def cpu_per_call(ip: str, seed: Path, calls: int) -> float:
    """CPU seconds (user + system, from /proc) the honeypot spent per batched Range call, no valgrind."""
    with tempfile.TemporaryDirectory(prefix="etcdsec-event-cpu-") as tmp:
        proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{ip}:{PORT}",
                                 "--events", f"{tmp}/e.jsonl", "--state", f"{tmp}/s.json", "--enable-v2", "true",
                                 "--rate", "0", "--seed", str(seed)], stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        try:
            for _ in range(50):
                if "listening" in proc.stderr.readline():
                    break

            def cpu() -> float:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

            asyncio.run(asyncio.wait_for(batched_ranges(ip, 2000), timeout=600))  # warm-up
            before = cpu()
            asyncio.run(asyncio.wait_for(batched_ranges(ip, calls), timeout=600))
            return (cpu() - before) / calls
        finally:
            proc.terminate()
            proc.wait(30)


def stage_run(stage: str, n: int, shape: str) -> None:
    """Emit n events (GET /version's `http.request` or KV.Range's `grpc.request`, as the server
    emits them) through the outputs up to `stage` (the callgrind child's work)."""
    from etcdsec.events.jsonl import JsonlWriter
    from etcdsec.events.kept import KeptEvents
    from etcdsec.events.metrics import EventCounter
    from etcdsec.honeypot.core.events_fields import request_event_fields
    from etcdsec.honeypot.core.eventsink import EventSink
    from etcdsec.honeypot.core.session import Session
    from etcdsec.honeypot.endpoints.etcd_metrics import Traffic

    upto = STAGES.index(stage)
    with tempfile.TemporaryDirectory(prefix="etcdsec-event-cg-") as tmp:
        outputs: list = []
        if upto >= 2:
            outputs.append(JsonlWriter(Path(tmp) / "e.jsonl"))
        if upto >= 3:
            outputs.append(KeptEvents(Path(tmp) / "e.kept.jsonl"))
        if upto >= 4:
            outputs.append(EventCounter())
        if upto >= 5:
            outputs.append(Traffic())
        sink = EventSink("bench", outputs)
        session = Session.new("127.9.9.1", 40000, "127.9.9.8", 2379)
        items = [(b"Host", b"host", b"h")]
        for _ in range(n):
            if shape == "grpc":  # v3/grpc/server.py's _log for a Range: three None fields left out
                if upto:
                    sink.emit("grpc.request", session, grpc_method="/etcdserverpb.KV/Range",
                              request={"key": "/bench/key"}, raw_b64=None, raw_len=None, status=0,
                              grpc_message=None, user_agent="grpc-go/1.58.3")
                continue
            fields = request_event_fields("GET", "/version", "HTTP/1.1", items, 200, False, b"", 4096)
            if upto:
                sink.emit_fields("http.request", session, fields)
        flush = getattr(sink, "flush", None)
        if flush is not None:
            flush()


def stage_cost(stage: str, ab: tuple[int, int], shape: str) -> int:
    def run(n: int) -> int:
        out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                              __file__, "_child", stage, str(n), shape], capture_output=True, text=True, timeout=600,
                             check=True)
        for line in out.stderr.splitlines():
            if "Collected :" in line:
                return int(line.rsplit(":", 1)[1])
        raise RuntimeError("callgrind printed no total")

    low = run(ab[0])
    return (run(ab[1]) - low) // (ab[1] - ab[0])


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "_child":
        stage_run(sys.argv[2], min(int(sys.argv[3]), MAX_EVENTS), sys.argv[4])
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["e2e", "stages", "cpu"])
    parser.add_argument("--kind", choices=["version", "put", "range", "range16"], default="version")
    parser.add_argument("--calls", type=int, default=20000, help="cpu: batched Range calls measured")
    parser.add_argument("--requests", default="100,600", help="e2e: two request counts, A<B")
    parser.add_argument("--events", default="2000,12000", help="stages: two event counts, A<B")
    parser.add_argument("--shape", choices=["http", "grpc"], default="http", help="stages: the event emitted")
    parser.add_argument("--ip", default="127.9.9.27")
    args = parser.parse_args()
    os.environ["PYTHONHASHSEED"] = "0"  # the children inherit it: one hash order, one count
    if args.mode == "stages":
        a, b = (int(x) for x in args.events.split(","))
        if not 0 <= a < b <= MAX_EVENTS:
            print(f"event_callgrind: --events A<B<={MAX_EVENTS}", file=sys.stderr)
            return 2
        previous = 0
        for stage in STAGES:
            cost = stage_cost(stage, (a, b), args.shape)
            print(f"{stage:<8} {cost:>7} instructions per event (+{cost - previous})")
            previous = cost
        return 0
    ab = counts(args.requests)
    if not is_loopback(args.ip) or ab is None:
        print(f"event_callgrind: --ip on 127.0.0.0/8, --requests A<B<={MAX_REQUESTS}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="etcdsec-event-seed-") as tmp:
        seed = Path(tmp) / "seed.yaml"
        seed.write_text(SEED)
        if args.mode == "cpu":
            per = cpu_per_call(args.ip, seed, max(1, min(args.calls, MAX_EVENTS)))
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"range x16: {per * 1e6:.1f} us CPU (user+system) per call, {args.calls} calls; load {load}")
            return 0
        cost = e2e(args.kind, ab, args.ip, seed)
    print(f"{args.kind}: {cost} instructions per request, end to end (--seed, PYTHONHASHSEED=0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Honeypot benchmark: the sensor next to real etcd 3.5.1, same client, same machine, one run.

Usage:  .venv/bin/python bench/honeypot_bench.py [--seconds 5] [--concurrency 32] [--rounds 3] [--json out.json]

Scenarios (each against real etcd 3.5.1 with --enable-v2 and against `etcdsec honeypot --persona 3.5.1
--enable-v2 true` running as its own process): GET /version, v2 key GET, v2 key PUT, v3 gateway
range, v3 gateway put, gRPC KV.Range; writes go to numbered keys. Reports requests/s, p50/p99 latency,
each server's CPU time per request (from /proc: the figure least moved by other work on the machine)
and, for the honeypot, how many answered
requests have no event in the JSONL file (must be 0). Then the sensor's memory under a write and
connection flood, and the event pipeline alone: events/s into JSONL, and JSONL + SQLite store.
Every address is on 127.0.0.0/8; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

from etcdsec.testbed.addresses import free_loopback_ip, is_loopback
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.support.etcd_admin import v2_put

MAX_REQUESTS = 400_000  # hard bound per scenario, whatever the duration


# --- HTTP/1.1 keep-alive load ---------------------------------------------------------------------
class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter and not self.waiter.done() and self._complete():
            self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    def _complete(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).lower()
        i = head.find(b"content-length:")
        if i >= 0:
            length = int(head[i + 15:].split(b"\r\n", 1)[0])
            return len(self.buf) >= end + 4 + length
        return self.buf.endswith(b"0\r\n\r\n")

    async def request(self, data: bytes) -> int:
        self.buf.clear()
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        await self.waiter
        return int(self.buf[9:12])


KEYSPACE = 50_000  # writes cycle over this many keys: creates first, then updates (stays under store caps)


def numbered(template: bytes) -> Callable[[int], bytes]:
    """Requests with `{n}` in them numbered per request (n modulo KEYSPACE), Content-Length fixed up."""
    def make(n: int) -> bytes:
        data = template.replace(b"{n}", str(n % KEYSPACE).encode())
        head, sep, body = data.partition(b"\r\n\r\n")
        if b"Content-Length: " in head:
            start = head.index(b"Content-Length: ") + 16
            end = head.find(b"\r\n", start)
            head = head[:start] + str(len(body)).encode() + (head[end:] if end >= 0 else b"")
        return head + sep + body
    return make


async def http_load(ip: str, port: int, request: bytes | Callable[[int], bytes], seconds: float,
                    concurrency: int) -> dict[str, Any]:
    assert is_loopback(ip)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        _, conn = await loop.create_connection(_Conn, ip, port)
        try:
            while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
                t0 = time.perf_counter()
                data = request if isinstance(request, bytes) else request(len(latencies))
                status = await conn.request(data)
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            if conn.transport:
                conn.transport.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return _figures(latencies, time.perf_counter() - started, statuses)


def _figures(latencies: list[float], elapsed: float, statuses: dict[int, int]) -> dict[str, Any]:
    lat = sorted(latencies)
    pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2) if lat else None  # noqa: E731
    return {"requests": len(lat), "rps": round(len(lat) / elapsed), "p50_ms": pick(0.50), "p99_ms": pick(0.99),
            "statuses": statuses}


# --- gRPC Range load --------------------------------------------------------------------------------
async def grpc_load(ip: str, port: int, seconds: float, concurrency: int, channels: int = 1) -> dict[str, Any]:
    assert is_loopback(ip)
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
    import grpc

    try:
        from etcdsec.proto import etcd_v3_pb2 as pb
    except ImportError:  # before the generated messages moved out of the v3 package
        from etcdsec.honeypot.v3.proto import etcd_v3_pb2 as pb  # type: ignore[no-redef]

    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    # --grpc-channels N: N channels, each its own connection (a local subchannel pool), so that
    # several honeypot workers can share the load; the calls are spread over them.
    opts = [("grpc.use_local_subchannel_pool", 1)] if channels > 1 else []
    chans = [grpc.aio.insecure_channel(f"{ip}:{port}", options=opts) for _ in range(channels)]
    async with chans[0] as channel:
        rngs = [c.unary_unary("/etcdserverpb.KV/Range", request_serializer=pb.RangeRequest.SerializeToString,
                              response_deserializer=pb.RangeResponse.FromString) for c in [channel, *chans[1:]]]
        req = pb.RangeRequest(key=b"/bench/key")

        async def worker(i: int) -> None:
            rng = rngs[i % len(rngs)]
            while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
                t0 = time.perf_counter()
                await rng(req, timeout=10)
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        for c in chans[1:]:
            await c.close()
    return _figures(latencies, elapsed, {200: len(latencies)})


# --- the two servers ----------------------------------------------------------------------------------
def start_honeypot(tmp: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    ip = free_loopback_ip((2379,))
    events = tmp / "events.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{ip}:2379",
                             "--persona", "3.5.1", "--enable-v2", "true", "--events", str(events),
                             "--state", str(tmp / "state.json"), "--rate", "0", "--max-connections-per-source",
                             "1000", "--events-backups", "20", *extra], stderr=subprocess.PIPE)  # nothing rotated
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    if "listening" not in line:
        raise RuntimeError(f"honeypot did not start: {line}")
    return proc, ip, events


def logged(events: Path, eventid: str, needle: str) -> int:
    n = 0
    for path in [events, *sorted(events.parent.glob(events.name + ".*"))]:  # rotated files count too
        with path.open() as f:
            for line in f:
                if eventid in line and needle in line:
                    n += 1
    return n


def scenarios() -> list[tuple[str, str, bytes | Callable[[int], bytes] | None, str]]:
    """(name, kind, request bytes or a maker of the n-th request, what to look for in the event line)."""
    def get(path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()

    def gateway_put(n: int) -> bytes:
        body = json.dumps({"key": base64.b64encode(f"/bench/put/{n % KEYSPACE}".encode()).decode(),
                           "value": base64.b64encode(b"v" * 10).decode()}).encode()
        return (b"POST /v3/kv/put HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)

    rng = json.dumps({"key": base64.b64encode(b"/bench/key").decode()}).encode()
    return [
        ("GET /version", "http", get("/version"), '"path":"/version"'),
        ("v2 key GET", "http", get("/v2/keys/bench/key"), '"path":"/v2/keys/bench/key"'),
        ("v2 key PUT (logged write)", "http",
         numbered(b"PUT /v2/keys/bench/put/{n} HTTP/1.1\r\nHost: bench\r\nContent-Type: "
                  b"application/x-www-form-urlencoded\r\nContent-Length: 0\r\n\r\nvalue=v{n}"),
         '"path":"/v2/keys/bench/put/'),
        ("v3 gateway range", "http",
         b"POST /v3/kv/range HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: "
         + str(len(rng)).encode() + b"\r\n\r\n" + rng, '"path":"/v3/kv/range"'),
        ("v3 gateway put (logged write)", "http", gateway_put, '"path":"/v3/kv/put"'),
        ("gRPC KV.Range", "grpc", None, "/etcdserverpb.KV/Range"),
    ]


async def run_scenarios(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="etcdsec-hp-bench-") as tmpdir, \
            EtcdServer(EtcdConfig(version="3.5", enable_v2=True, name="bench")) as real:
        real.put("/bench/key", "v")
        v2_put(real, "/bench/key", "v")
        hp, hp_ip, events = start_honeypot(Path(tmpdir), *(["--workers", args.workers] if args.workers else []))
        try:
            # the same keys on the decoy, written through its own API
            await http_load(hp_ip, 2379, b"PUT /v2/keys/bench/key HTTP/1.1\r\nHost: b\r\nContent-Type: "
                            b"application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=v", 0.01, 1)
            body = json.dumps({"key": base64.b64encode(b"/bench/key").decode(),
                               "value": base64.b64encode(b"v").decode()}).encode()
            await http_load(hp_ip, 2379, b"POST /v3/kv/put HTTP/1.1\r\nHost: b\r\nContent-Length: "
                            + str(len(body)).encode() + b"\r\n\r\n" + body, 0.01, 1)
            assert real.proc is not None
            pids = {"etcd 3.5.1": real.proc.pid, "honeypot": hp.pid}
            for round_no in range(1, args.rounds + 1):
                for name, kind, request, needle in scenarios():
                    if args.only and args.only not in name:
                        continue
                    for target, ip in (("etcd 3.5.1", real.ip), ("honeypot", hp_ip)):
                        eventid = "etcdsec.http.request" if kind == "http" else "etcdsec.grpc.request"
                        before = logged(events, eventid, needle) if target == "honeypot" else 0
                        load, cpu_before = os.getloadavg()[0], tree_cpu_seconds(pids[target])
                        if kind == "http":
                            assert request is not None
                            fig = await http_load(ip, 2379, request, args.seconds, args.concurrency)
                        else:
                            fig = await grpc_load(ip, 2379, args.seconds, args.concurrency, args.grpc_channels)
                        cpu = tree_cpu_seconds(pids[target]) - cpu_before
                        row = {"round": round_no, "scenario": name, "server": target, **fig,
                               "server_cpu_us_per_request": round(cpu / max(1, fig["requests"]) * 1e6, 1),
                               "load_average": round(load, 2)}
                        if target == "honeypot":
                            time.sleep(0.2)
                            row["events_logged"] = logged(events, eventid, needle) - before
                            row["events_lost"] = max(0, fig["requests"] - row["events_logged"])
                        rows.append(row)
                        print(_row_text(row), flush=True)
        finally:
            hp.send_signal(signal.SIGTERM)
            hp.wait(20)
    return rows


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Go uses every core; the sensor one)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its direct children: the honeypot's supervisor and its --workers."""
    total = cpu_seconds(pid)
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    total += cpu_seconds(int(entry))
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
    return total


def _row_text(row: dict[str, Any]) -> str:
    lost = f"  events lost {row['events_lost']}" if "events_lost" in row else ""
    return (f"{row['scenario']:<30} {row['server']:<11} {row['rps']:>7} req/s  p50 {row['p50_ms']} ms  "
            f"p99 {row['p99_ms']} ms  cpu {row['server_cpu_us_per_request']} us/req  load {row['load_average']}"
            f"  ({row['requests']} requests, statuses {row['statuses']}){lost}")


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Per scenario and server: the median of the rounds (req/s, p99, CPU per request)."""
    out = []
    keys = list(dict.fromkeys((r["scenario"], r["server"]) for r in rows))
    for scenario, server in keys:
        mine = [r for r in rows if (r["scenario"], r["server"]) == (scenario, server)]
        def median(field: str, mine: list[dict[str, Any]] = mine) -> Any:
            return statistics.median(r[field] for r in mine)
        lost = sum(r.get("events_lost", 0) for r in mine)
        out.append(f"{scenario:<30} {server:<11} median of {len(mine)}: {median('rps'):>8.0f} req/s  "
                   f"p99 {median('p99_ms'):.2f} ms  cpu {median('server_cpu_us_per_request'):.1f} us/req"
                   + (f"  events lost {lost}" if server == "honeypot" else ""))
    return out


# --- memory under a write flood ------------------------------------------------------------------------
def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def flood_figures(tmp: Path, puts: int = 40_000, connections: int = 2_000) -> dict[str, Any]:
    """A sensor capped at 8 MiB of store takes 40 MB of writes and 2,000 short connections."""
    ip = free_loopback_ip((2379,))
    proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{ip}:2379", "--persona",
                             "3.4.23", "--enable-v2", "true", "--events", str(tmp / "flood.jsonl"), "--state",
                             str(tmp / "flood.state"), "--rate", "0", "--max-connections-per-source", "1000",
                             "--max-store-bytes", str(8 << 20)], stderr=subprocess.PIPE)
    assert proc.stderr is not None and "listening" in proc.stderr.readline().decode()
    try:
        before = rss_kib(proc.pid)
        value = b"v" * 1000
        statuses: dict[int, int] = {}
        counter = iter(range(puts))
        loop = asyncio.get_running_loop()

        async def writer() -> None:
            _, conn = await loop.create_connection(_Conn, ip, 2379)
            try:
                for i in counter:  # bounded: `puts` requests in all
                    body = b"value=" + value
                    req = (f"PUT /v2/keys/flood/{i} HTTP/1.1\r\nHost: f\r\nContent-Type: application/"
                           f"x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
                    status = await conn.request(req)
                    statuses[status] = statuses.get(status, 0) + 1
            finally:
                if conn.transport:
                    conn.transport.close()

        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(16)))
        for _ in range(connections // 100):  # short connections, 100 at a time
            conns = await asyncio.gather(*(loop.create_connection(_Conn, ip, 2379) for _ in range(100)))
            for _, c in conns:
                if c.transport:
                    c.transport.close()
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        time.sleep(0.5)
        after = rss_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    row = {"puts": puts, "payload_mb": round(puts * 1000 / 1e6), "statuses": statuses,
           "connections": connections, "rss_before_mib": round(before / 1024, 1),
           "rss_after_mib": round(after / 1024, 1), "seconds": round(elapsed, 1)}
    print(f"flood: {puts} PUTs of 1 kB ({row['payload_mb']} MB) + {connections} connections in {row['seconds']} s, "
          f"store cap 8 MiB: statuses {statuses}, RSS {row['rss_before_mib']} -> {row['rss_after_mib']} MiB",
          flush=True)
    return row


# --- the event pipeline alone -------------------------------------------------------------------------
def pipeline_figures(n: int = 100_000) -> list[dict[str, Any]]:
    from etcdsec.events.jsonl import JsonlWriter
    from etcdsec.events.store import EventStoreWriter
    from etcdsec.honeypot.context import EventSink, Session

    out = []
    session = Session.new("127.0.0.1", 40000, "127.0.0.2", 2379)
    fields = {"method": "PUT", "path": "/v2/keys/registry/x", "http_version": "1.1", "status": 201,
              "headers": [["Host", "x"], ["User-Agent", "curl/8"]], "user_agent": "curl/8", "body": "value=1"}
    with tempfile.TemporaryDirectory(prefix="etcdsec-hp-bench-") as tmp:
        for label, flush in (("JSONL, write per event", 0.0), ("JSONL, 0.1 s batches", 0.1)):
            writer = JsonlWriter(Path(tmp) / f"e{flush}.jsonl", flush_interval=flush)
            sink = EventSink("bench", [writer])
            t0 = time.perf_counter()
            for _ in range(n):
                sink.emit("http.request", session, **fields)
            writer.close()
            elapsed = time.perf_counter() - t0
            lines = sum(1 for _ in (Path(tmp) / f"e{flush}.jsonl").open())
            out.append({"pipeline": label, "events": n, "events_per_s": round(n / elapsed), "lines": lines})
        writer = JsonlWriter(Path(tmp) / "s.jsonl")
        store = EventStoreWriter(str(Path(tmp) / "s.db"))
        sink = EventSink("bench", [writer, store])
        t0 = time.perf_counter()
        for _ in range(n):
            sink.emit("http.request", session, **fields)
        writer.close()
        store.close(120)
        elapsed = time.perf_counter() - t0
        out.append({"pipeline": "JSONL + SQLite store (until stored)", "events": n,
                    "events_per_s": round(n / elapsed), "stored": store.written, "dropped": store.dropped})
    for row in out:
        print(f"{row['pipeline']:<38} {row['events_per_s']:>8} events/s  ({row['events']} events)", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pipeline-events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the scenarios, alternating servers")
    parser.add_argument("--json")
    parser.add_argument("--workers", help="the honeypot's --workers (e.g. auto); default: one process")
    parser.add_argument("--only", help="run only the scenarios whose name contains this")
    parser.add_argument("--grpc-channels", type=int, default=1, help="gRPC connections the load is spread over")
    parser.add_argument("--scenarios-only", action="store_true", help="skip the flood and pipeline figures")
    args = parser.parse_args()
    if not 0 < args.seconds <= 60 or not 0 < args.concurrency <= 256 or not 0 < args.rounds <= 10 \
            or not 0 < args.grpc_channels <= 64:
        print("honeypot_bench: --seconds in (0, 60], --concurrency in (0, 256], --rounds in 1..10", file=sys.stderr)
        return 2
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"concurrency {args.concurrency}, {args.seconds:g} s per scenario", flush=True)
    rows = asyncio.run(run_scenarios(args))
    print("\n".join(summary(rows)), flush=True)
    lost = sum(r.get("events_lost", 0) for r in rows)
    if args.scenarios_only:
        print(f"events lost in total: {lost}")
        return 0 if lost == 0 else 1
    with tempfile.TemporaryDirectory(prefix="etcdsec-hp-flood-") as tmp:
        flood = asyncio.run(flood_figures(Path(tmp)))
    pipeline = pipeline_figures(args.pipeline_events)
    if args.json:
        Path(args.json).write_text(json.dumps({"scenarios": rows, "flood": flood, "pipeline": pipeline}, indent=1))
    lost = sum(r.get("events_lost", 0) for r in rows)
    print(f"events lost in total: {lost}")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

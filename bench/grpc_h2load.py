#!/usr/bin/env python3
"""gRPC `KV.Range` driven by h2load (C): etcd 3.5.1 next to the honeypot, one process and `--workers auto`.

Usage:  .venv/bin/python bench/grpc_h2load.py [--calls 30000] [--connections 2 4 8] [--in-flight 32]
        [--rounds 3] [--grpcio-seconds 3] [--no-grpcio] [--shared] [--json out.json]
Needs:  h2load and gcc (Debian: apt-get install nghttp2-client gcc).

The grpcio client of honeypot_bench.py is one Python process on the same 2 cores as the servers and
puts all its calls on one connection, which a honeypot with workers serves on one worker (workers are
chosen by client address). h2load is C: it costs the servers little of the machine, and each of its
`-c` connections comes from its own loopback source (127.0.0.1, .2, ...: `bench/srcbind.c`, as in
honeypot_writes.py), so the workers share them. `--in-flight` calls are spread over the connections
(`-m` per connection). The grpcio rows (one channel, from 127.0.0.1) stay for comparison; `--shared`
adds a row for `--workers auto --shared-keyspace`. Servers alternate within each round (the order
rotates each round); the summary gives medians.

h2load counts HTTP statuses only, and a failed gRPC call is HTTP 200 too, so no call counts unless
proven a successful Range: h2load must report every call done and 2xx; the honeypot must have logged
exactly that many `KV/Range` events with status 0 (and none with another status); etcd's own
`grpc_server_handled_total{grpc_code="OK",grpc_method="Range"}` must have grown by exactly that many
(and no other Range code at all); the DATA bytes h2load received must be one whole response per call
(the length of the response a real grpcio client gets for the same request bytes, checked to hold
the key, within 2 bytes per call for the revision's varint). A row that fails is marked NOT VERIFIED,
left out of the summary, and the exit status is 1.

Every address is on 127.0.0.0/8; every run is bounded by its call count (-n) and a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from honeypot_bench import grpc_load, start_honeypot, tree_cpu_seconds
from honeypot_writes import build_shim

from etcdsec.honeypot.serve.reuseport import worker_for
from etcdsec.proto import etcd_v3_pb2 as pb
from etcdsec.testbed.addresses import is_loopback
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

KEY, VALUE = b"/bench/key", b"v"
METHOD = "/etcdserverpb.KV/Range"
H2LOAD_TIMEOUT_S = 120  # per run, on top of -n
REVISION_SLACK = 2  # bytes per call: the header's revision varint may differ between honeypot workers


def framed(message: bytes) -> bytes:
    """One gRPC message: uncompressed flag, 4-byte length, the protobuf bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


# --- the servers --------------------------------------------------------------------------------------
class Server:
    def __init__(self, name: str, ip: str, pid: int, events: Path | None) -> None:
        self.name, self.ip, self.pid, self.events = name, ip, pid, events
        self.response_len = 0  # a framed Range response, as a real client got it

    def calls_before(self) -> Any:
        """Where counting starts: the event file's size (honeypot) or etcd's handled counters."""
        return self.events.stat().st_size if self.events else etcd_range_codes(self.ip)

    def proven(self, before: Any, expected: int) -> tuple[int, int]:
        """(successful Range calls, other Range answers) since `before`; waits for late event lines."""
        deadline = time.monotonic() + 10
        while True:
            ok, bad = self._count(before)
            if ok + bad >= expected or time.monotonic() > deadline:
                return ok, bad
            time.sleep(0.2)

    def _count(self, before: Any) -> tuple[int, int]:
        if self.events is None:
            after = etcd_range_codes(self.ip)
            codes = {code: n - before.get(code, 0) for code, n in after.items()}
            ok = codes.pop("OK", 0)
            return ok, sum(codes.values())
        if Path(f"{self.events}.1").exists():
            raise RuntimeError("the event file rotated during the run: raise --events-max-bytes")
        ok = bad = 0
        with self.events.open("rb") as f:
            f.seek(before)
            for line in f:
                if b"etcdsec.grpc.request" not in line or METHOD.encode() not in line:
                    continue
                event = json.loads(line)
                if event.get("grpc_method") == METHOD:
                    ok, bad = (ok + 1, bad) if event.get("status") == 0 else (ok, bad + 1)
        return ok, bad


def etcd_range_codes(ip: str) -> dict[str, int]:
    """etcd's grpc_server_handled_total for KV.Range, per gRPC code."""
    conn = http.client.HTTPConnection(ip, 2379, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read(16 << 20).decode()
    finally:
        conn.close()
    codes: dict[str, int] = {}
    for m in re.finditer(r'^grpc_server_handled_total\{([^}]*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("grpc_method") == "Range" and labels.get("grpc_service") == "etcdserverpb.KV":
            codes[labels["grpc_code"]] = int(float(m.group(2)))
    return codes


def seed(ip: str, sources: int) -> None:
    """Write the key from every source a run uses: each worker of a honeypot may hold its own keyspace."""
    assert is_loopback(ip)
    body = json.dumps({"key": base64.b64encode(KEY).decode(), "value": base64.b64encode(VALUE).decode()})
    for i in range(1, sources + 1):
        conn = http.client.HTTPConnection(ip, 2379, timeout=10, source_address=(f"127.0.0.{i}", 0))
        try:
            conn.request("POST", "/v3/kv/put", body=body, headers={"Content-Type": "application/json"})
            status = conn.getresponse().status
        finally:
            conn.close()
        if status != 200:
            raise RuntimeError(f"seeding {ip} from 127.0.0.{i}: HTTP {status}")


def sample(ip: str, request: bytes) -> int:
    """A real gRPC client sends the very request bytes h2load sends: the answer must hold the key.
    Returns the framed response's length, what h2load must receive per call."""
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
    import grpc

    with grpc.insecure_channel(f"{ip}:2379") as channel:
        call = channel.unary_unary(METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        raw = call(request[5:], timeout=10)
    reply = pb.RangeResponse.FromString(raw)
    if reply.count != 1 or [(kv.key, kv.value) for kv in reply.kvs] != [(KEY, VALUE)]:
        raise RuntimeError(f"{ip}: Range did not return the seeded key: {reply}")
    return len(framed(raw))


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# --- the loads -------------------------------------------------------------------------------------
def h2load(shim: Path, request: Path, ip: str, calls: int, connections: int, per_connection: int,
           log: Path) -> dict[str, Any]:
    assert is_loopback(ip)
    env = {**os.environ, "LD_PRELOAD": str(shim), "SRCBIND_SOURCES": str(connections)}
    cmd = ["h2load", "-n", str(calls), "-c", str(connections), "-m", str(per_connection), "-t", "1",
           "-d", str(request), "-H", "content-type: application/grpc", "-H", "te: trailers",
           "-T", str(H2LOAD_TIMEOUT_S), "-N", "10", "--log-file", str(log), f"http://{ip}:2379{METHOD}"]
    cpu0 = cpu_seconds(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=H2LOAD_TIMEOUT_S + 30)
    client_cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    text = out.stdout
    finished = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", text)
    counts = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored, (\d+) timeout", text)
    status = re.search(r"status codes: (\d+) 2xx", text)
    data = re.search(r"traffic: .*?, [\d.]+\w* \((\d+)\) data", text)
    if not (finished and counts and status and data):
        raise RuntimeError(f"h2load failed ({out.returncode}): {out.stderr.strip() or text}")
    durations = sorted(int(row.split("\t")[2]) for row in log.read_text().splitlines() if row.count("\t") >= 2)
    pick = lambda q: round(durations[min(len(durations) - 1, int(q * len(durations)))] / 1000, 2) \
        if durations else None  # noqa: E731
    return {"requests": int(counts.group(4)), "done": int(counts.group(3)), "failed": int(counts.group(5)),
            "errored": int(counts.group(6)), "timeout": int(counts.group(7)), "http_2xx": int(status.group(1)),
            "data_bytes": int(data.group(1)), "rps": round(float(finished.group(3))), "p50_ms": pick(0.5),
            "p99_ms": pick(0.99), "client_cpu_s": client_cpu}


def grpcio(ip: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """honeypot_bench's grpcio client, one channel: a failed call raises there, so every call counted is OK."""
    cpu0 = cpu_seconds(resource.RUSAGE_SELF)
    fig = asyncio.run(grpc_load(ip, 2379, seconds, concurrency, 1))
    client_cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu0
    n = fig["requests"]
    return {**fig, "done": n, "failed": 0, "errored": 0, "timeout": 0, "http_2xx": n, "data_bytes": None,
            "client_cpu_s": client_cpu}


def verify(row: dict[str, Any], calls: int | None, response_len: int) -> list[str]:
    """Why the row's calls are not all proven successful Range calls (empty: they are)."""
    n = row["requests"]
    why = []
    if calls is not None and (row["done"] != calls or n != calls):
        why.append(f"h2load: {row['done']} of {calls} done, {n} succeeded")
    if row["failed"] or row["errored"] or row["timeout"] or row["http_2xx"] != n:
        why.append(f"h2load: {row['failed']} failed, {row['errored']} errored, {row['timeout']} timed out, "
                   f"{row['http_2xx']} 2xx")
    if row["range_ok"] != n or row["range_other"]:
        why.append(f"server: {row['range_ok']} Range calls OK, {row['range_other']} with another code, for {n}")
    if row["data_bytes"] is not None and abs(row["data_bytes"] - n * response_len) > n * REVISION_SLACK:
        why.append(f"{row['data_bytes']} DATA bytes for {n} responses of {response_len}")
    return why


# --- the run ---------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    most = max(args.connections)
    with tempfile.TemporaryDirectory(prefix="etcdsec-grpc-h2load-") as tmpdir, \
            EtcdServer(EtcdConfig(version="3.5", name="bench")) as real:
        tmp = Path(tmpdir)
        shim = build_shim(tmp)
        request = framed(pb.RangeRequest(key=KEY).SerializeToString())
        (tmp / "range.bin").write_bytes(request)
        assert real.proc is not None
        servers = [Server("etcd 3.5.1", real.ip, real.proc.pid, None)]
        honeypots = [("honeypot x1", []), ("honeypot auto", ["--workers", "auto"])]
        if args.shared:
            honeypots.append(("honeypot auto shared", ["--workers", "auto", "--shared-keyspace"]))
        procs = []
        try:
            for name, extra in honeypots:
                where = tmp / name.replace(" ", "-")
                where.mkdir()
                proc, ip, events = start_honeypot(where, "--events-max-bytes", str(4 << 30), *extra)
                procs.append(proc)
                servers.append(Server(name, ip, proc.pid, events))
            workers = os.cpu_count() or 1
            for server in servers:
                seed(server.ip, most)
                server.response_len = sample(server.ip, request)
                h2load(shim, tmp / "range.bin", server.ip, 500, 2, 8, tmp / "warm.log")  # warm-up, not counted
            print(f"# response {servers[0].response_len} bytes (etcd), "
                  f"{', '.join(str(s.response_len) for s in servers[1:])} (honeypots); with {workers} workers "
                  f"the sources of -c {most} land on workers "
                  f"{[worker_for(f'127.0.0.{i}', workers) for i in range(1, most + 1)]}", flush=True)
            loads = [f"h2load -c {c}" for c in args.connections] + ([] if args.no_grpcio else ["grpcio 1 channel"])
            for round_no in range(1, args.rounds + 1):
                for load in loads:
                    turn = (round_no - 1) % len(servers)
                    for server in servers[turn:] + servers[:turn]:
                        rows.append(measure(args, shim, tmp, server, load, round_no))
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    return rows


def measure(args: argparse.Namespace, shim: Path, tmp: Path, server: Server, load: str,
            round_no: int) -> dict[str, Any]:
    before = server.calls_before()
    load_avg, cpu0 = os.getloadavg()[0], tree_cpu_seconds(server.pid)
    calls: int | None = None
    if load.startswith("h2load"):
        connections = int(load.rsplit(" ", 1)[1])
        calls = args.calls
        fig = h2load(shim, tmp / "range.bin", server.ip, calls, connections,
                     max(1, args.in_flight // connections), tmp / "calls.log")
    else:
        fig = grpcio(server.ip, args.grpcio_seconds, args.in_flight)
    cpu = tree_cpu_seconds(server.pid) - cpu0
    ok, other = server.proven(before, fig["requests"])
    n = max(1, fig["requests"])
    row = {"round": round_no, "load": load, "server": server.name, **fig, "range_ok": ok, "range_other": other,
           "server_cpu_us_per_call": round(cpu / n * 1e6, 1),
           "client_cpu_us_per_call": round(fig.pop("client_cpu_s") / n * 1e6, 1), "load_average": round(load_avg, 2)}
    why = verify(row, calls, server.response_len)
    row["verified"] = not why
    print(f"{load:<17} {server.name:<21} {row['rps']:>7} calls/s  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  "
          f"server cpu {row['server_cpu_us_per_call']} us/call  client cpu {row['client_cpu_us_per_call']} us/call  "
          f"load {row['load_average']}  ({ok} proven OK)" + ("" if not why else "  NOT VERIFIED: " + "; ".join(why)),
          flush=True)
    return row


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Medians of the verified rounds per load and server, with the ratio to etcd in the same load."""
    out = []
    good = [r for r in rows if r["verified"]]
    for load in dict.fromkeys(r["load"] for r in rows):
        etcd = [r["rps"] for r in good if r["load"] == load and r["server"] == "etcd 3.5.1"]
        base = statistics.median(etcd) if etcd else None
        for server in dict.fromkeys(r["server"] for r in rows if r["load"] == load):
            mine = [r for r in good if (r["load"], r["server"]) == (load, server)]
            if not mine:
                out.append(f"{load:<17} {server:<21} no verified round")
                continue
            rps = statistics.median(r["rps"] for r in mine)
            ratio = f"  {rps / base:.2f}x etcd" if base and server != "etcd 3.5.1" else ""
            out.append(f"{load:<17} {server:<21} median of {len(mine)}: {rps:>7.0f} calls/s  "
                       f"p99 {statistics.median(r['p99_ms'] for r in mine):.2f} ms  server cpu "
                       f"{statistics.median(r['server_cpu_us_per_call'] for r in mine):.1f} us/call  client cpu "
                       f"{statistics.median(r['client_cpu_us_per_call'] for r in mine):.1f} us/call{ratio}")
    loads = [r["load_average"] for r in rows]
    out.append(f"load average during the rows: {min(loads):.1f}-{max(loads):.1f}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=30_000, help="h2load -n per row")
    parser.add_argument("--connections", type=int, nargs="+", default=[2, 4, 8], help="h2load -c values")
    parser.add_argument("--in-flight", type=int, default=32, help="calls in flight, over all connections")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grpcio-seconds", type=float, default=3.0)
    parser.add_argument("--no-grpcio", action="store_true", help="skip the grpcio rows")
    parser.add_argument("--shared", action="store_true", help="add a --workers auto --shared-keyspace honeypot")
    parser.add_argument("--json")
    args = parser.parse_args()
    if not (0 < args.calls <= 200_000 and all(0 < c <= 64 for c in args.connections) and 0 < args.in_flight <= 256
            and 0 < args.rounds <= 10 and 0 < args.grpcio_seconds <= 30):
        print("grpc_h2load: --calls 1..200000, --connections 1..64, --in-flight 1..256, --rounds 1..10, "
              "--grpcio-seconds in (0, 30]", file=sys.stderr)
        return 2
    missing = [tool for tool in ("h2load", "gcc") if shutil.which(tool) is None]
    if missing:
        print(f"grpc_h2load: needs {' and '.join(missing)} (Debian: apt-get install nghttp2-client gcc)",
              file=sys.stderr)
        return 2
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"h2load -n {args.calls} -c {'/'.join(map(str, args.connections))}, {args.in_flight} calls in flight, "
          f"{args.rounds} rounds", flush=True)
    rows = run(args)
    print("\n".join(summary(rows)), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    failed = sum(not r["verified"] for r in rows)
    print(f"rows not verified: {failed}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

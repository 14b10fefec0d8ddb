#!/usr/bin/env python3
"""Logged writes per second: real etcd 3.5.1 next to the honeypot with 1 and 2 workers, driven by wrk.

Usage:  .venv/bin/python bench/honeypot_writes.py [--seconds 5] [--rounds 3] [--sources 16] [--json out.json]
        [--keyspace kept forgotten]  (honeypot rows with the keyspace journalled to disk, without, or both)
        [--shared off on]  (rows with workers: a keyspace each (--keyspace-per-worker), one keyspace
                            (the default), or both)
        [--only TEXT]  (only the scenarios whose name contains TEXT)
Needs:  wrk and gcc (Debian: apt-get install wrk gcc); h2load (nghttp2-client) for the gRPC row.

A honeypot is written to by many addresses at once (one source alone meets the per-source rate
limit long before 10,000/s), so the load comes from `--sources` loopback addresses 127.0.0.1, ...:
wrk cannot choose a source address, so `bench/srcbind.c`, built here, binds each of its connections
to the next one (LD_PRELOAD). wrk is C: it leaves the servers most of this machine, where the Python
client of honeypot_bench.py takes a whole core. Scenarios: v2 PUT and v3 gateway put, each to
numbered keys (50,000-key space), then reads of those keys: v3 gateway range (wrk) and gRPC
KV.Range (h2load, the same shim, one RangeRequest repeated). Per row: requests/s, p50/p99
latency (wrk --latency; h2load gives the mean only), server CPU per request (from /proc, the
supervisor and its workers summed) and, for the honeypot, answered requests with no
`etcdsec.http.request` (or `grpc.request`) event in the JSON-lines file (must be 0). Servers
alternate within each round; the summary gives medians. Every address is on 127.0.0.0/8; wrk and
h2load run for a fixed time.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
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
from honeypot_bench import KEYSPACE, logged, start_honeypot

from etcdsec.testbed.addresses import is_loopback
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

BENCH = Path(__file__).resolve().parent

V2_PUT_LUA = """
local n = 0
request = function()
  n = n + 1
  local k = n % {keys}
  return wrk.format("PUT", "/v2/keys/bench/put/" .. k, {["Content-Type"] = "application/x-www-form-urlencoded"},
                    "value=v" .. k)
end
"""


def gateway_put_lua(bodies: int = 1000) -> str:
    """Lua has no base64: a table of ready JSON bodies, cycled."""
    rows = []
    for n in range(bodies):
        body = json.dumps({"key": base64.b64encode(f"/bench/put/{n}".encode()).decode(),
                           "value": base64.b64encode(b"v" * 10).decode()})
        rows.append("  " + json.dumps(body) + ",")
    return ("local bodies = {\n" + "\n".join(rows) + "\n}\nlocal n = 0\nrequest = function()\n  n = n + 1\n"
            "  return wrk.format(\"POST\", \"/v3/kv/put\", {[\"Content-Type\"] = \"application/json\"},"
            " bodies[(n % #bodies) + 1])\nend\n")


def gateway_range_lua(bodies: int = 1000) -> str:
    rows = ["  " + json.dumps(json.dumps({"key": base64.b64encode(f"/bench/put/{n}".encode()).decode()})) + ","
            for n in range(bodies)]
    return ("local bodies = {\n" + "\n".join(rows) + "\n}\nlocal n = 0\nrequest = function()\n  n = n + 1\n"
            "  return wrk.format(\"POST\", \"/v3/kv/range\", {[\"Content-Type\"] = \"application/json\"},"
            " bodies[(n % #bodies) + 1])\nend\n")


def grpc_range_message(key: bytes = b"/bench/put/1") -> bytes:
    """One gRPC message: uncompressed, length-prefixed RangeRequest{key} (field 1, bytes)."""
    request = b"\x0a" + bytes([len(key)]) + key
    return b"\x00" + len(request).to_bytes(4, "big") + request


HTTP_EVENT, GRPC_EVENT = "etcdsec.http.request", "etcdsec.grpc.request"
SCENARIOS = [  # (name, tool, script (lua, or the gRPC message), event id, what the event line holds)
    ("v2 key PUT (logged write)", "wrk", V2_PUT_LUA.replace("{keys}", str(KEYSPACE)), HTTP_EVENT,
     '"path":"/v2/keys/bench/put/'),
    ("v3 gateway put (logged write)", "wrk", gateway_put_lua(), HTTP_EVENT, '"path":"/v3/kv/put"'),
    ("v3 gateway range (read)", "wrk", gateway_range_lua(), HTTP_EVENT, '"path":"/v3/kv/range"'),
    ("gRPC KV.Range (read)", "h2load", "", GRPC_EVENT, '"/etcdserverpb.KV/Range"'),
]


def build_shim(tmp: Path) -> Path:
    out = tmp / "srcbind.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(out), str(BENCH / "srcbind.c"), "-ldl"], check=True)
    return out


def process_tree_cpu(pid: int) -> float:
    """User + system seconds of a process and its direct children (the supervisor and its workers)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def h2load(shim: Path, message: Path, ip: str, seconds: float, sources: int, connections: int) -> dict[str, Any]:
    """gRPC unary calls from `connections` connections over `sources` addresses, 8 streams each."""
    assert is_loopback(ip)
    env = {**os.environ, "LD_PRELOAD": str(shim), "SRCBIND_SOURCES": str(sources)}
    out = subprocess.run(["h2load", "-D", f"{seconds:g}", "-c", str(connections), "-m", "8", "-t", "2",
                          "-d", str(message), "-H", "content-type: application/grpc", "-H", "te: trailers",
                          f"http://{ip}:2379/etcdserverpb.KV/Range"],
                         env=env, capture_output=True, text=True, timeout=seconds + 30)
    text = out.stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", text)
    rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", text)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\b", text)
    if not done or not rps:
        raise RuntimeError(f"h2load failed: {out.stderr or text}")
    mean_ms = float(mean.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[mean.group(2)] if mean else float("nan")
    # h2load gives no percentiles: p50 holds the mean, p99 is left out
    return {"requests": int(done.group(2)), "rps": round(float(rps.group(1))), "p50_ms": mean_ms,
            "p99_ms": float("nan"), "non_2xx": int(done.group(1)) - int(done.group(2))}


def wrk(shim: Path, script: Path, ip: str, seconds: float, sources: int, connections: int) -> dict[str, Any]:
    assert is_loopback(ip)
    env = {**os.environ, "LD_PRELOAD": str(shim), "SRCBIND_SOURCES": str(sources)}
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script),
                          f"http://{ip}:2379/"], env=env, capture_output=True, text=True, timeout=seconds + 30)
    text = out.stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    done = re.search(r"(\d+) requests in", text)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not done or not rps:
        raise RuntimeError(f"wrk failed: {out.stderr or text}")
    return {"requests": int(done.group(1)), "rps": round(float(rps.group(1))), "p50_ms": ms("50"),
            "p99_ms": ms("99"), "non_2xx": int(errors.group(1)) if errors else 0}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="etcdsec-hp-writes-") as tmpdir, \
            EtcdServer(EtcdConfig(version="3.5", enable_v2=True, name="bench")) as real:
        tmp = Path(tmpdir)
        shim = build_shim(tmp)
        scenarios = [s for s in SCENARIOS if not args.only or args.only in s[0]]
        scripts = []
        for i, (_, tool, text, _, _) in enumerate(scenarios):
            path = tmp / f"s{i}.{'lua' if tool == 'wrk' else 'grpc'}"
            if tool == "wrk":
                path.write_text(text)
            else:
                path.write_bytes(grpc_range_message())
            scripts.append(path)
        servers: list[tuple[str, str, int, Path | None]] = []
        procs = []
        assert real.proc is not None
        servers.append(("etcd 3.5.1", real.ip, real.proc.pid, None))
        for workers in args.workers:
            for keep in args.keyspace:  # the keyspace journalled to disk (the default) or forgotten
                for shared in args.shared if workers > 1 else ["on"]:  # one keyspace (the default) or not
                    where = tmp / f"w{workers}-{keep}-{shared}"
                    where.mkdir()
                    proc, ip, events = start_honeypot(where, "--workers", str(workers),
                                                      *(["--forget-writes"] if keep == "forgotten" else []),
                                                      *(["--keyspace-per-worker"] if shared == "off" else []),
                                                      *args.honeypot_args.split())
                    procs.append(proc)
                    label = f" {keep}" if len(args.keyspace) > 1 else ""
                    label += "" if workers == 1 else " shared" if shared == "on" else " per-worker"
                    servers.append((f"honeypot x{workers}{label}", ip, proc.pid, events))
        if args.compare_src:  # an older source tree's honeypot in the same rounds: before and after in one run
            where = tmp / "compare"
            where.mkdir()
            saved = os.environ.get("PYTHONPATH")
            os.environ["PYTHONPATH"] = args.compare_src
            try:
                proc, ip, events = start_honeypot(where, "--workers", str(max(args.workers)),
                                                  *args.compare_args.split())
            finally:
                if saved is None:
                    del os.environ["PYTHONPATH"]
                else:
                    os.environ["PYTHONPATH"] = saved
            procs.append(proc)
            servers.append((f"honeypot x{max(args.workers)} before", ip, proc.pid, events))
        try:
            for round_no in range(1, args.rounds + 1):
                for (name, tool, _, eventid, needle), script in zip(scenarios, scripts, strict=True):
                    for server, ip, pid, events in servers:
                        before = logged(events, eventid, needle) if events else 0
                        load, cpu0 = os.getloadavg()[0], process_tree_cpu(pid)
                        load_tool = wrk if tool == "wrk" else h2load
                        fig = load_tool(shim, script, ip, args.seconds, args.sources, args.connections)
                        cpu = process_tree_cpu(pid) - cpu0
                        row = {"round": round_no, "scenario": name, "server": server, **fig,
                               "server_cpu_us_per_request": round(cpu / max(1, fig["requests"]) * 1e6, 1),
                               "load_average": round(load, 2)}
                        if events is not None:
                            time.sleep(0.3)
                            row["events_logged"] = logged(events, eventid, needle) - before
                            row["events_lost"] = max(0, fig["requests"] - row["events_logged"])
                        rows.append(row)
                        lost = f"  events lost {row['events_lost']}" if "events_lost" in row else ""
                        print(f"{name:<30} {server:<22} {row['rps']:>7} req/s  p50 {row['p50_ms']:.2f} ms  "
                              f"p99 {row['p99_ms']:.2f} ms  cpu {row['server_cpu_us_per_request']} us/req  "
                              f"load {row['load_average']}  ({row['requests']} requests, {row['non_2xx']} not 2xx)"
                              f"{lost}", flush=True)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    return rows


def summary(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for scenario, server in dict.fromkeys((r["scenario"], r["server"]) for r in rows):
        mine = [r for r in rows if (r["scenario"], r["server"]) == (scenario, server)]
        rps = statistics.median(r["rps"] for r in mine)
        p99 = statistics.median(r["p99_ms"] for r in mine)
        cpu = statistics.median(r["server_cpu_us_per_request"] for r in mine)
        lost = sum(r.get("events_lost", 0) for r in mine)
        out.append(f"{scenario:<30} {server:<22} median of {len(mine)}: {rps:>8.0f} req/s  p99 {p99:.2f} ms  "
                   f"cpu {cpu:.1f} us/req" + (f"  events lost {lost}" if server.startswith("honeypot") else ""))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sources", type=int, default=16, help="loopback source addresses (127.0.0.1 ...)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="honeypot worker counts to run")
    parser.add_argument("--keyspace", nargs="+", choices=("kept", "forgotten"), default=["kept"],
                        help="honeypot rows with the keyspace journalled to disk (default), without, or both")
    parser.add_argument("--shared", nargs="+", choices=("off", "on"), default=["on"],
                        help="rows with several workers: one keyspace (on, the default), a keyspace each "
                             "(off: --keyspace-per-worker), or both")
    parser.add_argument("--only", help="only the scenarios whose name contains this")
    parser.add_argument("--honeypot-args", default="",
                        help="more honeypot options, space-separated (e.g. an older version's --shared-keyspace)")
    parser.add_argument("--compare-src", help="also run this source tree's honeypot (PYTHONPATH), e.g. an older "
                        "commit's src/ from `git archive`, with the most workers asked")
    parser.add_argument("--compare-args", default="", help="its options, space-separated (e.g. --shared-keyspace)")
    parser.add_argument("--json")
    args = parser.parse_args()
    if not (0 < args.seconds <= 60 and 0 < args.rounds <= 10 and 0 < args.sources <= 250
            and 0 < args.connections <= 256 and all(0 < w <= 16 for w in args.workers)):
        print("honeypot_writes: --seconds in (0, 60], --rounds 1..10, --sources 1..250, --connections 1..256, "
              "--workers 1..16", file=sys.stderr)
        return 2
    missing = [tool for tool in ("wrk", "gcc", "h2load") if shutil.which(tool) is None]
    if missing:
        print(f"honeypot_writes: needs {' and '.join(missing)} (Debian: apt-get install wrk gcc nghttp2-client)",
              file=sys.stderr)
        return 2
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, wrk -t2 "
          f"-c{args.connections}, {args.sources} source addresses, {args.seconds:g} s per row", flush=True)
    rows = run(args)
    print("\n".join(summary(rows)), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    lost = sum(r.get("events_lost", 0) for r in rows)
    print(f"events lost in total: {lost}")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

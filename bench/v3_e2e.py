#!/usr/bin/env python3
"""Honeypot CPU per v3 request, end to end: a sensor process under the bench client's load.

Usage:  .venv/bin/python bench/v3_e2e.py [--seconds 5] [--concurrency 16] [--ip 127.9.9.5]

Starts `etcdsec honeypot --persona 3.5.1` on a loopback address, writes /bench/key, then loads it
with honeypot_bench's http_load (POST /v3/kv/range) and grpc_load (KV.Range) and reports requests/s
and the sensor's CPU µs per request (utime + stime from /proc/PID/stat): throughput is noisy on a
shared machine, CPU per request much less so. Loopback only; every load is bounded in time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from honeypot_bench import grpc_load, http_load, scenarios

from etcdsec.testbed.addresses import is_loopback


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def start(ip: str, tmp: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{ip}:2379", "--persona",
                             "3.5.1", "--enable-v2", "true", "--events", str(tmp / "e.jsonl"), "--state",
                             str(tmp / "s.json"), "--rate", "0", "--max-connections-per-source", "1000"],
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    if "listening" not in proc.stderr.readline().decode():
        proc.kill()
        raise RuntimeError("honeypot did not start")
    return proc


async def measure(ip: str, pid: int, seconds: float, concurrency: int) -> None:
    body = json.dumps({"key": base64.b64encode(b"/bench/key").decode(),
                       "value": base64.b64encode(b"v").decode()}).encode()
    await http_load(ip, 2379, b"POST /v3/kv/put HTTP/1.1\r\nHost: b\r\nContent-Length: "
                    + str(len(body)).encode() + b"\r\n\r\n" + body, 0.01, 1)
    gateway = next(req for name, _, req, _ in scenarios() if name == "v3 gateway range")
    assert gateway is not None
    for name, run in (("v3 gateway range", lambda: http_load(ip, 2379, gateway, seconds, concurrency)),
                      ("gRPC KV.Range", lambda: grpc_load(ip, 2379, seconds, concurrency))):
        await asyncio.sleep(0.3)
        before = cpu_seconds(pid)
        fig = await run()
        used = cpu_seconds(pid) - before
        print(f"{name:<18} {fig['rps']:>6} req/s  {used / max(1, fig['requests']) * 1e6:6.1f} CPU µs/request  "
              f"p50 {fig['p50_ms']} ms  ({fig['requests']} requests, {used:.2f} CPU s)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--ip", default="127.9.9.5")
    args = parser.parse_args()
    if not is_loopback(args.ip) or not 0 < args.seconds <= 30 or not 0 < args.concurrency <= 256:
        print("v3_e2e: --ip on 127.0.0.0/8, --seconds in (0, 30], --concurrency in (0, 256]", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="etcdsec-v3-e2e-") as tmp:
        proc = start(args.ip, Path(tmp))
        try:
            time.sleep(0.2)
            asyncio.run(measure(args.ip, proc.pid, args.seconds, args.concurrency))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())

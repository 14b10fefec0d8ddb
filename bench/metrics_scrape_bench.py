#!/usr/bin/env python3
"""`/metrics` and `/debug/vars` scrape cost: the sensor next to real etcd 3.5.1, one client, one run.

Usage:  .venv/bin/python bench/metrics_scrape_bench.py [--scrapes 200]

Both servers on 127.0.0.0/8 (the sensor as its own `etcdsec honeypot --persona 3.5.1` process);
sequential keep-alive GETs, plain and with `Accept-Encoding: gzip`, bounded in count and time.
Prints scrapes/s, body size and each server's CPU time per scrape (from /proc).
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from honeypot_bench import cpu_seconds, start_honeypot

from etcdsec.testbed.addresses import is_loopback
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

MAX_SECONDS = 60.0


def scrape(ip: str, pid: int, path: str, n: int, gzip: bool) -> dict[str, float]:
    assert is_loopback(ip)
    conn = http.client.HTTPConnection(ip, 2379, timeout=10)
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    size, done = 0, 0
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    while done < n and time.perf_counter() - t0 < MAX_SECONDS:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        size = len(resp.read())
        done += 1
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    conn.close()
    return {"per_s": done / wall, "bytes": size, "cpu_ms": 1000 * cpu / max(done, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scrapes", type=int, default=200)
    n = min(ap.parse_args().scrapes, 5000)
    with tempfile.TemporaryDirectory() as tmp, EtcdServer(EtcdConfig(version="3.5")) as real:
        proc, hp_ip, _ = start_honeypot(Path(tmp))
        try:
            assert real.proc is not None
            print(f"{n} sequential scrapes each (noisy: a shared 2-core machine)")
            for path, gz in (("/metrics", False), ("/metrics", True), ("/debug/vars", False)):
                for name, ip, pid in (("etcd 3.5.1", real.ip, real.proc.pid), ("honeypot", hp_ip, proc.pid)):
                    r = scrape(ip, pid, path, n, gz)
                    label = path + (" gzip" if gz else "")
                    print(f"{label:<16} {name:<11} {r['per_s']:>7.0f}/s  {r['bytes']:>7} bytes  "
                          f"server cpu {r['cpu_ms']:.2f} ms/scrape")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()

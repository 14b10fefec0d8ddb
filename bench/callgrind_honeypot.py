"""What the end-to-end callgrind benchmarks share: `etcdsec honeypot` started under callgrind on one
loopback address, driven by the caller's client, stopped with SIGTERM, and callgrind's total read back;
two runs of different lengths give the cost of one request with start-up cancelled out.

Used by http1_callgrind.py (HTTP/1 requests) and v3_e2e_callgrind.py (gRPC and gateway calls).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable

from etcdsec.testbed.addresses import is_loopback

MAX_REQUESTS = 5000  # per run
PORT = 2379


def instructions(ip: str, honeypot_args: list[str], drive: Callable[[], None]) -> int:
    """Instructions the honeypot process ran while `drive()` (the client's work) talked to ip:PORT."""
    if not is_loopback(ip):
        raise ValueError("the callgrind benchmarks listen on loopback only")
    with tempfile.TemporaryDirectory(prefix="etcdsec-callgrind-") as tmp:
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                                 "-m", "etcdsec", "honeypot", "--listen", f"{ip}:{PORT}", "--events", f"{tmp}/e.jsonl",
                                 "--state", f"{tmp}/s.json", *honeypot_args],
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        try:
            for _ in range(200):  # valgrind's banner comes first
                if "listening" in proc.stderr.readline():
                    break
            drive()
            proc.send_signal(signal.SIGTERM)
            err = proc.stderr.read()
            proc.wait(120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    found = re.search(r"Collected : (\d+)", err)
    if found is None:
        raise RuntimeError("callgrind printed no total")
    return int(found.group(1))


def counts(text: str) -> tuple[int, int] | None:
    """`A,B` with 0 <= A < B <= MAX_REQUESTS, else None."""
    try:
        a, b = (int(x) for x in text.split(","))
    except ValueError:
        return None
    return (a, b) if 0 <= a < b <= MAX_REQUESTS else None


def per_request(run: Callable[[int], int], a: int, b: int) -> int:
    """The instructions of one request: runs of `a` and of `b` requests, the difference over b - a."""
    low = run(a)
    return (run(b) - low) // (b - a)

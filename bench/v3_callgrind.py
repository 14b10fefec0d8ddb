#!/usr/bin/env python3
"""Server-only cost of unary gRPC calls, for instruction counting under callgrind.

Usage:  .venv/bin/python bench/v3_callgrind.py [--calls N] [--method range|put] [--build N]
        valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/v3_callgrind.py ...

The client's bytes for --build calls (default: --calls) are made first by an h2 client, then the
first --calls of them are fed to one server `GrpcConnection` (`receive` + `data_to_send` per call).
Run twice with the same --build and two --calls: the difference over the difference in calls is the
server's instructions per call, with no client work in it. The client opens a ~2 GiB window at
once, so no WINDOW_UPDATE is needed in between. Bounded: at most 200,000 calls.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import h2.config
import h2.connection

sys.path.insert(0, str(Path(__file__).parent))
from v3_micro import GRPC_HEADERS, _b64, gateway_call, make_sensor

from etcdsec.honeypot.context import Session
from etcdsec.honeypot.v3.grpc.server import GrpcConnection, frame_message
from etcdsec.proto import etcd_v3_pb2 as pb

MAX_CALLS = 200_000


def client_bytes(path: str, message: bytes, n: int) -> tuple[bytes, list[bytes]]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    client.initiate_connection()
    client.increment_flow_control_window(2**31 - 1 - 65535)
    preface = client.data_to_send()
    calls = []
    headers = [*GRPC_HEADERS[:3], (":path", path), *GRPC_HEADERS[4:]]
    body = frame_message(message)
    for _ in range(n):
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, headers)
        client.send_data(sid, body, end_stream=True)
        calls.append(client.data_to_send())
        client.streams.pop(sid, None)  # the client never reads answers: keep its stream table small
    return preface, calls


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--build", type=int, default=0)
    parser.add_argument("--method", choices=["range", "put"], default="range")
    parser.add_argument("--h2-only", action="store_true", help="gRPC through h2 only (no lean reader)")
    args = parser.parse_args()
    n = max(0, min(args.calls, MAX_CALLS))
    build = max(n, min(args.build or n, MAX_CALLS))
    if args.method == "range":
        path, msg = "/etcdserverpb.KV/Range", pb.RangeRequest(key=b"/bench/key").SerializeToString()
    else:
        path, msg = "/etcdserverpb.KV/Put", pb.PutRequest(key=b"/bench/put", value=b"v").SerializeToString()
    preface, calls = client_bytes(path, msg, build)
    with tempfile.TemporaryDirectory(prefix="etcdsec-v3-cg-") as tmpdir:
        sensor = make_sensor(Path(tmpdir))
        gateway_call(sensor, "/v3/kv/put", json.dumps({"key": _b64(b"/bench/key"), "value": _b64(b"v")}).encode())()
        server = GrpcConnection(sensor.ctx, sensor.v3_state, Session.new("127.9.9.1", 40001, "127.9.9.8", 2379),
                                lean=not args.h2_only)
        server.start()
        server.receive(preface)
        server.data_to_send()
        sent = 0
        for data in calls[:n]:
            server.receive(data)
            sent += len(server.data_to_send())
        if sensor.writer is not None:
            sensor.writer.close()
    print(f"{n} calls, {sent} bytes out", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

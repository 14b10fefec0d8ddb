#!/usr/bin/env python3
"""Instructions per unary gRPC call in the honeypot process, end to end (event loop and sockets included).

Usage:  .venv/bin/python bench/v3_e2e_callgrind.py [--method range|put|gateway-range|h2load-range] [--calls 100,600]
                                                    [--ip 127.9.9.25] [--rate 0]

Starts `etcdsec honeypot` under callgrind twice, makes each make the given number of sequential calls
(after 20 warm-up calls) over one grpcio channel, stops it with SIGTERM and reads callgrind's total;
the difference over the difference in calls is the per-call cost, start-up excluded. Sequential
calls make the count steady (within ~1%); wall-clock CPU under load is what bench/v3_e2e.py shows.
`gateway-range` is POST /v3/kv/range over one HTTP/1.1 keep-alive connection; `h2load-range` is
KV.Range from h2load (C; one connection, 16 calls in flight, so many calls per read, as
bench/grpc_h2load.py drives it), after one gateway Put of the key; `--rate` is the
sensor's per-source rate (0: off, the token bucket not consulted; 200 is the CLI's default).
Loopback only; at most 5,000 calls per run; each run bounded by a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
from callgrind_honeypot import MAX_REQUESTS, PORT, counts, instructions, per_request

from etcdsec.proto import etcd_v3_pb2 as pb
from etcdsec.testbed.addresses import is_loopback


def http_calls(ip: str, count: int) -> None:
    conn = http.client.HTTPConnection(ip, PORT, timeout=30)
    try:
        for _ in range(count):
            conn.request("POST", "/v3/kv/range", body=b'{"key":"L2JlbmNoL2tleQ=="}')
            conn.getresponse().read()
    finally:
        conn.close()


async def grpc_calls(ip: str, method: str, count: int) -> None:
    async with grpc.aio.insecure_channel(f"{ip}:{PORT}") as channel:
        if method == "range":
            call = channel.unary_unary("/etcdserverpb.KV/Range",
                                       request_serializer=pb.RangeRequest.SerializeToString,
                                       response_deserializer=pb.RangeResponse.FromString)
            request: object = pb.RangeRequest(key=b"/bench/key")
        else:
            call = channel.unary_unary("/etcdserverpb.KV/Put",
                                       request_serializer=pb.PutRequest.SerializeToString,
                                       response_deserializer=pb.PutResponse.FromString)
            request = pb.PutRequest(key=b"/bench/put", value=b"v")
        for _ in range(count):
            await call(request, timeout=30)


def h2load_calls(ip: str, count: int) -> None:
    conn = http.client.HTTPConnection(ip, PORT, timeout=30)
    try:
        conn.request("POST", "/v3/kv/put", body=b'{"key":"L2JlbmNoL2tleQ==","value":"dg=="}')
        conn.getresponse().read()
    finally:
        conn.close()
    request = pb.RangeRequest(key=b"/bench/key").SerializeToString()
    with tempfile.TemporaryDirectory(prefix="etcdsec-h2load-") as tmp:
        body = Path(tmp, "range.bin")
        body.write_bytes(b"\0" + len(request).to_bytes(4, "big") + request)
        done = subprocess.run(["h2load", "-n", str(count), "-c", "1", "-m", "16", "-t", "1", "-d", str(body),
                               "-H", "content-type: application/grpc", "-H", "te: trailers",
                               f"http://{ip}:{PORT}/etcdserverpb.KV/Range"],
                              capture_output=True, text=True, timeout=600)
    if f"{count} succeeded" not in done.stdout:
        raise RuntimeError(f"h2load: not every call succeeded\n{done.stdout}")


def run(n: int, method: str, ip: str, rate: str = "0") -> int:
    def drive() -> None:  # n sequential calls after 20 warm-up ones
        if method == "gateway-range":
            http_calls(ip, 20 + n)
        elif method == "h2load-range":
            h2load_calls(ip, 50 + n)
        else:
            asyncio.run(asyncio.wait_for(grpc_calls(ip, method, 20 + n), timeout=600))

    return instructions(ip, ["--persona", "3.5.1", "--rate", rate], drive)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=["range", "put", "gateway-range", "h2load-range"], default="range")
    parser.add_argument("--calls", default="100,600", help="two call counts, A<B")
    parser.add_argument("--ip", default="127.9.9.25")
    parser.add_argument("--rate", default="0", help="the sensor's --rate (per-source requests/s; 0: off)")
    args = parser.parse_args()
    ab = counts(args.calls)
    if not is_loopback(args.ip) or ab is None:
        print(f"v3_e2e_callgrind: --ip on 127.0.0.0/8, --calls A<B<={MAX_REQUESTS}", file=sys.stderr)
        return 2
    cost = per_request(lambda n: run(n, args.method, args.ip, args.rate), *ab)
    print(f"{args.method} --rate {args.rate}: {cost} instructions per call, end to end")
    return 0


if __name__ == "__main__":
    sys.exit(main())

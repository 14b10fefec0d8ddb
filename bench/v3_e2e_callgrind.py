#!/usr/bin/env python3
"""Instructions per unary gRPC call in the honeypot process, end to end (event loop and sockets included).

Usage:  .venv/bin/python bench/v3_e2e_callgrind.py [--method range|put|gateway-range] [--calls 100,600]
                                                    [--ip 127.9.9.25] [--rate 0]

Starts `etcdsec honeypot` under callgrind twice, makes each make the given number of sequential calls
(after 20 warm-up calls) over one grpcio channel, stops it with SIGTERM and reads callgrind's total;
the difference over the difference in calls is the per-call cost, start-up excluded. Sequential
calls make the count steady (within ~1%); wall-clock CPU under load is what bench/v3_e2e.py shows.
`gateway-range` is POST /v3/kv/range over one HTTP/1.1 keep-alive connection; `--rate` is the
sensor's per-source rate (0: off, the token bucket not consulted; 200 is the CLI's default).
Loopback only; at most 5,000 calls per run; each run bounded by a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import re
import signal
import subprocess
import sys
import tempfile

import grpc

from etcdsec.proto import etcd_v3_pb2 as pb
from etcdsec.testbed.addresses import is_loopback

MAX_CALLS = 5000


def http_calls(ip: str, count: int) -> None:
    conn = http.client.HTTPConnection(ip, 2379, timeout=30)
    try:
        for _ in range(count):
            conn.request("POST", "/v3/kv/range", body=b'{"key":"L2JlbmNoL2tleQ=="}')
            conn.getresponse().read()
    finally:
        conn.close()


def run(n: int, method: str, ip: str, rate: str = "0") -> int:
    with tempfile.TemporaryDirectory(prefix="etcdsec-v3-e2e-cg-") as tmp:
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                                 "-m", "etcdsec", "honeypot", "--listen", f"{ip}:2379", "--persona", "3.5.1",
                                 "--events", f"{tmp}/e.jsonl", "--state", f"{tmp}/s.json", "--rate", rate],
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        try:
            for _ in range(200):  # valgrind's banner comes first
                if "listening" in proc.stderr.readline():
                    break

            async def calls() -> None:
                async with grpc.aio.insecure_channel(f"{ip}:2379") as channel:
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
                    for _ in range(20 + n):
                        await call(request, timeout=30)

            if method == "gateway-range":
                http_calls(ip, 20 + n)
            else:
                asyncio.run(asyncio.wait_for(calls(), timeout=600))
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=["range", "put", "gateway-range"], default="range")
    parser.add_argument("--calls", default="100,600", help="two call counts, A<B")
    parser.add_argument("--ip", default="127.9.9.25")
    parser.add_argument("--rate", default="0", help="the sensor's --rate (per-source requests/s; 0: off)")
    args = parser.parse_args()
    a, b = (int(x) for x in args.calls.split(","))
    if not is_loopback(args.ip) or not 0 <= a < b <= MAX_CALLS:
        print(f"v3_e2e_callgrind: --ip on 127.0.0.0/8, --calls A<B<={MAX_CALLS}", file=sys.stderr)
        return 2
    low, high = run(a, args.method, args.ip, args.rate), run(b, args.method, args.ip, args.rate)
    print(f"{args.method} --rate {args.rate}: {(high - low) // (b - a)} instructions per call, end to end")
    return 0


if __name__ == "__main__":
    sys.exit(main())

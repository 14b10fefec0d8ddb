#!/usr/bin/env python3
"""The event lines of a fixed request sequence, with what changes run to run masked: diff two trees' output.

Usage:  .venv/bin/python bench/event_lines.py [--ip 127.9.9.28] > after.txt
        PYTHONPATH=/path/to/other/tree/src .venv/bin/python bench/event_lines.py > before.txt; diff before.txt after.txt

Starts `etcdsec honeypot` (a three-key `--seed`, v2 on, `--rate 0`, `--sensor bench`), sends it the same
HTTP/1 requests (GET /version, v2 PUT and GET, a gateway Range, /metrics, /health, a honeytoken, a
malformed line) and gRPC calls (sequential, then 16 at once on one channel), stops it with SIGTERM and
prints the events file and the kept file byte for byte, except timestamps, session ids, client ports
and durations, which are replaced by placeholders (session ids by their order of appearance), the
lines grouped by session. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).parent))
from event_callgrind import SEED

from etcdsec.proto import etcd_v3_pb2 as pb
from etcdsec.testbed.addresses import is_loopback

PORT = 2379
HTTP = [
    b"GET /version HTTP/1.1\r\nHost: h\r\nUser-Agent: bench/1\r\n\r\n",
    b"PUT /v2/keys/bench HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 7\r\n\r\nvalue=v",
    b"GET /v2/keys/bench?quorum=true HTTP/1.1\r\nHost: h\r\n\r\n",
    b"POST /v3/kv/range HTTP/1.1\r\nHost: h\r\nContent-Length: 26\r\n\r\n{\"key\":\"L2JlbmNoL2tleQ==\"}",
    b"GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /v2/keys/config?token=s3cr3t-canary-1 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /version HTTP/1.1\r\nHost: h\r\nX-Bin: \xff\xfe\r\n\r\n",
]
MASKS = [
    (re.compile(rb'"timestamp":"[^"]*"'), b'"timestamp":"T"'),
    (re.compile(rb'"src_port":\d+'), b'"src_port":P'),
    (re.compile(rb'"duration(_ms)?":[0-9.e-]+'), rb'"duration\1":D'),
]


def http_requests(ip: str) -> None:
    for request in HTTP:  # one connection each: the answer is read to its end by the server closing
        with socket.create_connection((ip, PORT), timeout=10) as sock:
            sock.sendall(request.replace(b"Host: h\r\n", b"Host: h\r\nConnection: close\r\n"))
            while sock.recv(65536):
                pass
    with socket.create_connection((ip, PORT), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass


async def grpc_calls(ip: str) -> None:
    async with grpc.aio.insecure_channel(f"{ip}:{PORT}") as channel:
        rng = channel.unary_unary("/etcdserverpb.KV/Range", request_serializer=pb.RangeRequest.SerializeToString,
                                  response_deserializer=pb.RangeResponse.FromString)
        put = channel.unary_unary("/etcdserverpb.KV/Put", request_serializer=pb.PutRequest.SerializeToString,
                                  response_deserializer=pb.PutResponse.FromString)
        await put(pb.PutRequest(key=b"/bench/put", value=b"v"), timeout=10)
        for _ in range(3):
            await rng(pb.RangeRequest(key=b"/bench/key"), timeout=10)
        await asyncio.gather(*(rng(pb.RangeRequest(key=b"/bench/key"), timeout=10) for _ in range(16)))


def masked(data: bytes, sessions: dict[bytes, bytes]) -> bytes:
    for pattern, repl in MASKS:
        data = pattern.sub(repl, data)

    def session(m: re.Match[bytes]) -> bytes:
        return b'"session":"S%d"' % int(sessions.setdefault(m.group(1), str(len(sessions)).encode()))
    return re.sub(rb'"session":"([0-9a-f]+)"', session, data)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ip", default="127.9.9.28")
    args = parser.parse_args()
    if not is_loopback(args.ip):
        print("event_lines: --ip on 127.0.0.0/8", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="etcdsec-event-lines-") as tmp:
        seed, events = Path(tmp) / "seed.yaml", Path(tmp) / "e.jsonl"
        seed.write_text(SEED)
        proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{args.ip}:{PORT}",
                                 "--events", str(events), "--state", f"{tmp}/s.json", "--seed", str(seed),
                                 "--enable-v2", "true", "--rate", "0", "--sensor", "bench"],
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        try:
            for _ in range(50):
                if "listening" in proc.stderr.readline():
                    break
            http_requests(args.ip)
            asyncio.run(asyncio.wait_for(grpc_calls(args.ip), 60))
            deadline = time.monotonic() + 5  # every connection seen closed, so none ends as "shutdown"
            closed = len(HTTP) + 2  # the HTTP/1 connections, the malformed one, the gRPC channel
            while events.read_bytes().count(b'"etcdsec.session.closed"') < closed and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        sessions: dict[bytes, bytes] = {}
        for path in (events, events.with_name("e.kept.jsonl")):
            # each session's lines in their order, sessions in order of first sight (a session.closed
            # may land before or after the next connection's first event: the client does not wait)
            groups: dict[bytes, list[bytes]] = {}
            for line in masked(path.read_bytes(), sessions).splitlines(keepends=True):
                found = re.search(rb'"session":"(S\d+)"', line)
                groups.setdefault(found.group(1) if found else b"", []).append(line)
            lines = b"".join(b"".join(g) for g in groups.values())
            sys.stdout.buffer.write(b"== " + path.name.encode() + b"\n" + lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

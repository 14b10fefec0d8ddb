"""The event file never lags the wire: when a client has an answer, the event of its request is on disk.

A real `etcdsec honeypot` process; the file is read (never flushed by the test) the moment each answer
arrives, and `kill -9` right after an answer must lose none of the answered requests' events. The
gRPC calls go 24 at once on one channel, so several arrive in one read and take the batched path
(`JsonlWriter.hold`/`release` around the read, one write before the answers)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from etcdsec.proto import etcd_v3_pb2 as pb
from etcdsec.testbed.addresses import free_loopback_ip

CALLS = 24


@contextmanager
def honeypot(tmp: Path, *extra: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    ip = free_loopback_ip((2379,))
    proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{ip}:2379", "--rate", "0",
                             "--events", str(tmp / "e.jsonl"), "--state", str(tmp / "s.json"), *extra],
                            stderr=subprocess.PIPE, cwd=tmp)
    try:
        assert proc.stderr is not None and "listening on" in proc.stderr.readline().decode()
        yield ip, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def on_disk(path: Path) -> list[dict]:
    """The whole lines on disk: the sensor (another process) may be writing a later batch as we read,
    and a read can end inside it; what a client was answered for was written before its answer."""
    whole = path.read_bytes().rpartition(b"\n")[0]
    return [json.loads(line) for line in whole.splitlines()]


def get(sock: socket.socket, target: str) -> bytes:
    """One keep-alive GET, its whole answer read (Content-Length)."""
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        body += chunk
    return head


async def ranges(ip: str, check: object) -> list[bytes]:
    """CALLS Range calls at once on one channel; `check(key)` runs as each answer arrives."""
    async with grpc.aio.insecure_channel(f"{ip}:2379") as channel:
        rng = channel.unary_unary("/etcdserverpb.KV/Range", request_serializer=pb.RangeRequest.SerializeToString,
                                  response_deserializer=pb.RangeResponse.FromString)
        await rng(pb.RangeRequest(key=b"/warm"), timeout=10)  # the channel is up: the calls go out together

        async def one(i: int) -> bytes:
            key = f"/durable/{i}".encode()
            await rng(pb.RangeRequest(key=key), timeout=10)
            check(key)  # type: ignore[operator]
            return key

        return list(await asyncio.gather(*(one(i) for i in range(CALLS))))


def grpc_keys(events: list[dict]) -> set[bytes]:
    return {e["request"]["key"].encode() for e in events
            if e["eventid"] == "etcdsec.grpc.request" and isinstance(e.get("request"), dict)}


def test_an_answered_request_is_on_disk_when_the_client_has_the_answer(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    with honeypot(tmp_path) as (ip, _proc):
        with socket.create_connection((ip, 2379), timeout=10) as sock:
            for i in range(30):
                assert get(sock, f"/version?n={i}").startswith(b"HTTP/1.1 200")
                assert any(e.get("path") == f"/version?n={i}" for e in on_disk(events)), i

        late: list[bytes] = []

        def check(key: bytes) -> None:
            if key not in grpc_keys(on_disk(events)):
                late.append(key)

        answered = asyncio.run(asyncio.wait_for(ranges(ip, check), 60))
        assert len(answered) == CALLS and late == []
        # the first gRPC call of this source reached the kept file too (it is not held)
        kept = on_disk(tmp_path / "e.kept.jsonl")
        assert [e["request"]["key"] for e in kept if e["eventid"] == "etcdsec.grpc.request"] == ["/warm"]


def test_kill_9_right_after_an_answer_loses_no_answered_request(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    with honeypot(tmp_path) as (ip, proc):
        with socket.create_connection((ip, 2379), timeout=10) as sock:
            get(sock, "/version?before=kill")

        answered: list[bytes] = []

        def kill_at_the_first_answer(key: bytes) -> None:
            answered.append(key)
            if len(answered) == 1:
                os.kill(proc.pid, signal.SIGKILL)

        try:
            asyncio.run(asyncio.wait_for(ranges(ip, kill_at_the_first_answer), 60))
        except (grpc.aio.AioRpcError, TimeoutError):
            pass  # the calls after the kill fail: only the answered ones count
        assert proc.wait(10) == -signal.SIGKILL
    logged = on_disk(events)
    assert any(e.get("path") == "/version?before=kill" for e in logged)
    assert answered and set(answered) <= grpc_keys(logged)


def test_flush_interval_still_batches_the_held_reads(tmp_path: Path) -> None:
    """--flush-interval keeps its meaning (batches, bounded by the interval): the held read's release
    does not write; the stop writes everything."""
    events = tmp_path / "e.jsonl"
    with honeypot(tmp_path, "--flush-interval", "60") as (ip, proc):
        answered = asyncio.run(asyncio.wait_for(ranges(ip, lambda key: None), 60))
        assert grpc_keys(on_disk(events)) == set()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert set(answered) <= grpc_keys(on_disk(events))

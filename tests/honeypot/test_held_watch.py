"""By default a watch is held like etcd's: past the idle timeout, until the client leaves (real etcd
3.5.1 held a curl `/v3/watch` and a v2 `?wait=true` for 150 s, the curl timeout, in a measurement).

The sensor here has a 0.5 s idle timeout, so anything held for 1.5 s proves that quiet watches are
not treated as idle connections; the watcher counts prove that a client leaving frees them."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from etcdsec.honeypot.context import Limits
from etcdsec.honeypot.sensor import SensorConfig
from tests.support.harness import BackgroundSensor

from .conftest import b64, json_post, raw_exchange, read_until

HOLD_S = 1.5


def v2_put(key: str, value: str) -> bytes:
    body = f"value={value}".encode()
    return (f"PUT /v2/keys/{key} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.fixture(scope="module")
def hp():
    limits = Limits(idle_timeout_s=0.5, rate_per_source=0)
    assert limits.wait_timeout_s == 0  # the default: no bound
    config = SensorConfig(persona="3.5.1", state_file=None, limits=limits, enable_v2=True)
    with BackgroundSensor(config) as sensor:
        yield sensor


def settle(hp, count, want: int, timeout: float = 2.0) -> int:
    deadline = time.monotonic() + timeout
    while (got := hp.call(count())) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def test_gateway_watch_outlives_the_idle_timeout_and_ends_with_its_client(hp) -> None:
    async def watchers() -> int:
        return int(hp.sensor.v3_state.namespace(None).hub.count)

    with socket.create_connection((hp.ip, 2379), timeout=5) as sock:
        sock.sendall(json_post("/v3/watch", {"create_request": {"key": b64("held/key")}}))
        assert b'"created":true' in read_until(sock, b'"created":true', 2)
        time.sleep(HOLD_S)  # three idle timeouts of silence
        put = raw_exchange(hp.ip, 2379, json_post("/v3/kv/put", {"key": b64("held/key"), "value": b64("v1")}))
        assert put.startswith(b"HTTP/1.1 200 OK")
        got = read_until(sock, b'"events"', 3)
        assert b'"events":[{"kv":{"key":"' + b64("held/key").encode() in got
        assert b"0\r\n\r\n" not in got  # still open: no last chunk
        assert hp.call(watchers()) == 1
    assert settle(hp, watchers, 0) == 0


def test_v2_wait_on_the_h11_path_is_held_and_freed_when_the_client_leaves(hp) -> None:
    """`%61` in the target sends the request down the h11 path (the fast recogniser leaves escapes to it)."""
    async def waiting() -> int:
        return len(hp.sensor.client_app.v2_store.watchers)

    with socket.create_connection((hp.ip, 2379), timeout=5) as sock:
        sock.sendall(b"GET /v2/keys/w%61ited?wait=true HTTP/1.1\r\nHost: x\r\n\r\n")
        head = read_until(sock, b"\r\n\r\n", 2)
        assert head.startswith(b"HTTP/1.1 200 OK")
        time.sleep(HOLD_S)
        assert hp.call(waiting()) == 1
    assert settle(hp, waiting, 0) == 0  # the client left before any event: its watcher is gone

    with socket.create_connection((hp.ip, 2379), timeout=5) as sock:
        sock.sendall(b"GET /v2/keys/w%61ited?wait=true HTTP/1.1\r\nHost: x\r\n\r\n")
        read_until(sock, b"\r\n\r\n", 2)
        time.sleep(HOLD_S)
        assert raw_exchange(hp.ip, 2379, v2_put("waited", "later")).startswith(b"HTTP/1.1 201")
        got = read_until(sock, b"0\r\n\r\n", 3)
        assert b'"action":"set"' in got and b'"value":"later"' in got  # the event, then the end


def test_grpc_watch_is_not_cut_as_idle(hp) -> None:
    import grpc

    from etcdsec.proto import etcd_v3_pb2 as pb

    async def run() -> list[bytes]:
        async with grpc.aio.insecure_channel(hp.addr) as channel:
            watch = channel.stream_stream("/etcdserverpb.Watch/Watch",
                                          request_serializer=pb.WatchRequest.SerializeToString,
                                          response_deserializer=pb.WatchResponse.FromString)
            requests: asyncio.Queue[pb.WatchRequest | None] = asyncio.Queue()
            await requests.put(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"grpc/held")))

            async def feed():
                while (item := await requests.get()) is not None:
                    yield item

            call = watch(feed())
            created = await asyncio.wait_for(call.read(), 3)
            assert created.created
            await asyncio.sleep(HOLD_S)
            async with grpc.aio.insecure_channel(hp.addr) as other:  # a second connection writes
                put = other.unary_unary("/etcdserverpb.KV/Put", request_serializer=pb.PutRequest.SerializeToString,
                                        response_deserializer=pb.PutResponse.FromString)
                await put(pb.PutRequest(key=b"grpc/held", value=b"v"), timeout=3)
            got = await asyncio.wait_for(call.read(), 3)
            call.cancel()
            return [ev.kv.key for ev in got.events]

    assert asyncio.run(run()) == [b"grpc/held"]


def test_a_request_pipelined_behind_a_held_wait_is_answered_after_it(hp) -> None:
    with socket.create_connection((hp.ip, 2379), timeout=5) as sock:
        sock.sendall(b"GET /v2/keys/p%69pelined?wait=true HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        read_until(sock, b"\r\n\r\n", 2)
        time.sleep(0.3)
        assert raw_exchange(hp.ip, 2379, v2_put("pipelined", "now")).startswith(b"HTTP/1.1 201")
        got = read_until(sock, b'"etcdcluster"', 3)
        event_at, version_at = got.find(b'"value":"now"'), got.find(b'"etcdserver"')
        assert 0 <= event_at < version_at  # the held answer first, then the pipelined one

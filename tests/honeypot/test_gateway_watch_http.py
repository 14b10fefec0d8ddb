"""A /v3/watch over HTTP/1.1 stays open like etcd's: later writes arrive as chunks; a client that
goes away releases its watcher; the time bound ends the stream."""

from __future__ import annotations

import socket
import time

import pytest

from etcdsec.honeypot.context import Limits
from etcdsec.honeypot.sensor import SensorConfig
from tests.support.harness import BackgroundSensor

from .conftest import b64, json_post, raw_exchange, read_until


@pytest.fixture(scope="module")
def hp(tmp_path_factory):
    limits = Limits(wait_timeout_s=2.0, rate_per_source=0)
    with BackgroundSensor(SensorConfig(persona="3.5.1", state_file=None, limits=limits)) as sensor:
        yield sensor


def test_watch_stream_delivers_a_later_put_then_ends_at_the_bound(hp) -> None:
    with socket.create_connection((hp.ip, 2379), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(json_post("/v3/watch", {"create_request": {"key": b64("live/key")}}))
        head = read_until(sock, b'"created":true', 2)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"Transfer-Encoding: chunked" in head
        put = raw_exchange(hp.ip, 2379, json_post("/v3/kv/put", {"key": b64("live/key"), "value": b64("v1")}))
        assert put.startswith(b"HTTP/1.1 200 OK")
        rest = read_until(sock, b"0\r\n\r\n", 5)
        assert b'"events":[{"kv":{"key":"' + b64("live/key").encode() in rest
        assert 1.8 < time.monotonic() - started < 4.5  # held until wait_timeout_s, then the last chunk
    watches = [e for e in hp.memory.of("http.request") if e["path"] == "/v3/watch"]
    assert watches and watches[-1]["status"] == 200


def test_a_watcher_that_disconnects_is_released(hp) -> None:
    async def watchers() -> int:  # read on the sensor's own loop
        return int(hp.sensor.v3_state.namespace(None).hub.count)

    with socket.create_connection((hp.ip, 2379), timeout=5) as sock:
        sock.sendall(json_post("/v3/watch", {"create_request": {"key": b64("gone")}}))
        assert b'"created":true' in read_until(sock, b'"created":true', 2)
        assert hp.call(watchers()) == 1
    deadline = time.monotonic() + 1.5  # well before the 2 s bound would end it anyway
    while hp.call(watchers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hp.call(watchers()) == 0

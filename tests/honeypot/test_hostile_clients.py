"""Clients that break the rules on purpose (issue 17): each ends as etcd ends it, with an event,
never with a sensor.error or a socket left open."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import h2.config
import h2.connection
import pytest
from hyperframe.frame import HeadersFrame

from etcdsec.honeypot.context import Limits
from etcdsec.honeypot.harness import BackgroundSensor
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

from .conftest import b64, json_post, read_until


@pytest.fixture(scope="module")
def hp() -> Iterator[BackgroundSensor]:
    limits = Limits(idle_timeout_s=30, wait_timeout_s=0.3, rate_per_source=0)
    with BackgroundSensor(SensorConfig(persona="3.5.1", state_file=None, limits=limits, enable_v2=True)) as sensor:
        yield sensor


def until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes; fails if it is still open after `timeout`."""
    sock.settimeout(timeout)
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


@pytest.mark.parametrize("held", [
    json_post("/v3/watch", {"create_request": {"key": b64("w")}}),
    b"GET /v2/keys/w?wait=true HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_watch_timeout_on_the_h11_path_then_the_next_request(hp: BackgroundSensor, held: bytes) -> None:
    """`OPTIONS *` sends the connection to the h11 path; --watch-timeout ends the held answer and
    the same connection carries the next request (it raised RuntimeError: two readers)."""
    errors_before = len(hp.memory.of("sensor.error"))
    with socket.create_connection((hp.ip, hp.port), timeout=5) as sock:
        sock.sendall(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n" + held)
        assert b"0\r\n\r\n" in read_until(sock, b"0\r\n\r\n", 5)  # the held answer ended
        sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b'"etcdserver":"3.5.1"' in until_closed(sock)
    assert hp.memory.of("sensor.error")[errors_before:] == []


def reused_stream_id() -> bytes:
    """Preface, SETTINGS, HEADERS 1, DATA 1 END_STREAM, HEADERS 1: one write."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    headers = [(":method", "POST"), (":scheme", "http"), (":authority", "x"), (":path", "/etcdserverpb.KV/Range"),
               ("content-type", "application/grpc"), ("te", "trailers")]
    client.send_headers(1, headers)
    client.send_data(1, b"\x00\x00\x00\x00\x05\x0a\x03foo", end_stream=True)
    again = HeadersFrame(1, data=client.encoder.encode(headers), flags=["END_HEADERS"])
    return client.data_to_send() + again.serialize()


def frame_types(data: bytes) -> list[int]:
    types, i = [], 0
    while i + 9 <= len(data):
        types.append(data[i + 3])
        i += 9 + int.from_bytes(data[i:i + 3], "big")
    return types


SETTINGS, GOAWAY, RST_STREAM = 4, 7, 3


def test_h2_stream_id_reused_closes_as_etcd_does(hp: BackgroundSensor) -> None:
    errors_before = len(hp.memory.of("sensor.error"))
    with socket.create_connection((hp.ip, hp.port), timeout=5) as sock:
        sock.sendall(reused_stream_id())
        got = until_closed(sock)  # closed at once, not after the 30 s idle time
    assert set(frame_types(got)) == {SETTINGS}  # grpc-go's preface, then nothing: no answer, no GOAWAY
    assert hp.memory.of("sensor.error")[errors_before:] == []
    assert any(e.get("error") == "StreamIdReused" for e in hp.memory.of("malformed"))


@pytest.mark.parametrize("version", ["3.4", "3.5"])
def test_real_etcd_closes_a_reused_stream_id_without_goaway(version: str) -> None:
    """What the test above copies, measured: grpc-go ends the connection, RST_STREAM and GOAWAY never come."""
    with EtcdServer(EtcdConfig(version=version)) as real, \
            socket.create_connection((real.host, 2379), timeout=5) as sock:
        sock.sendall(reused_stream_id())
        got = until_closed(sock)
    assert SETTINGS in frame_types(got) and not {GOAWAY, RST_STREAM} & set(frame_types(got))

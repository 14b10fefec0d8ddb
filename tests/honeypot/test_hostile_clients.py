"""Clients that break the rules on purpose (issue 17): each ends as etcd ends it, with an event,
never with a sensor.error or a socket left open."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import pytest
from hyperframe.frame import HeadersFrame

from etcdsec.honeypot.context import Limits
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from etcdsec.testbed.pki import TestCA
from tests.support.harness import BackgroundSensor

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


def tls_exchange(ip: str, cafile: Path, data: bytes, quiet: float = 2.0) -> bytes:
    """Over TLS with ALPN h2: what arrives until the server closes or says nothing for `quiet` s."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((ip, 2379), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=ip) as sock:
        assert sock.selected_alpn_protocol() == "h2"
        sock.sendall(data)
        return read_until(sock, b"never", quiet)


@pytest.mark.parametrize("version", ["3.4", "3.5"])
def test_h2_stream_id_reused_over_tls_is_reset_as_etcd_does(tmp_path: Path, version: str) -> None:
    """Over TLS etcd serves gRPC with Go's http2 server: RST_STREAM (STREAM_CLOSED) on the stream, the
    connection stays open; the sensor answers the same, without a sensor.error."""
    with EtcdServer(EtcdConfig(version=version, tls=True)) as real:
        assert real.ca is not None
        want = frame_types(tls_exchange(real.host, real.ca.cert_path, reused_stream_id()))
    ip = free_loopback_ip((2379,))
    ca = TestCA(tmp_path / "pki")
    cert = ca.issue("server", ips=[ip])
    config = SensorConfig(persona={"3.4": "3.4.23", "3.5": "3.5.1"}[version], state_file=None, tls_cert=cert.cert,
                          tls_key=cert.key)
    with BackgroundSensor(config, ip=ip) as hp:
        got = frame_types(tls_exchange(ip, ca.cert_path, reused_stream_id()))
        assert hp.memory.of("sensor.error") == []
    assert RST_STREAM in want and GOAWAY not in want
    assert RST_STREAM in got and GOAWAY not in got

"""Slowloris and silent WebSockets (issue 17) against a real sensor with a lowered connection cap:
a request head has a deadline far below the idle time, a WebSocket that watches nothing is idle,
and at the cap the connection that sent least is shed (with an event) so a new source is served."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from etcdsec.honeypot.context import Limits
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.honeypot.serve.shedding import SHED_GRACE_S
from tests.support.harness import BackgroundSensor

from .conftest import b64

CAP, PER_SOURCE, SOURCES = 24, 4, 6  # the slowloris: 6 addresses x 4 connections = the whole cap
GET = b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
WS = (b"GET /v3/watch HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def source(i: int) -> str:
    return f"127.91.0.{10 + i}"


def open_from(src: str, hp: BackgroundSensor, first: bytes) -> socket.socket:
    sock = socket.create_connection((hp.ip, hp.port), timeout=5, source_address=(src, 0))
    sock.sendall(first)
    return sock


def ask_from(src: str, hp: BackgroundSensor, request: bytes) -> bytes:
    """One request from `src`; the answer, read until the server closes (Connection: close)."""
    with open_from(src, hp, request) as sock:
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def closed_by_server(sock: socket.socket) -> bool:
    try:
        sock.settimeout(0.01)
        return sock.recv(65536) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def closed_reason(hp: BackgroundSensor, session: str, wait: float = 5.0) -> str | None:
    """The reason in the session's `session.closed` event (written once its task has finished)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        reasons = [e["reason"] for e in hp.memory.of("session.closed") if e["session"] == session]
        if reasons:
            return reasons[0]
        time.sleep(0.05)
    return None


def drip_until_closed(sock: socket.socket, every: float, rounds: int) -> bool:
    """One header line per `every` seconds, `rounds` at most; whether the server closed meanwhile."""
    for n in range(rounds):
        if closed_by_server(sock):
            return True
        try:
            sock.sendall(b"X-Drip-%d: a\r\n" % n)
        except OSError:
            return True
        time.sleep(every)
    return closed_by_server(sock)


@pytest.fixture()
def capped() -> Iterator[BackgroundSensor]:
    limits = Limits(max_connections=CAP, max_connections_per_source=PER_SOURCE, rate_per_source=0,
                    idle_timeout_s=60, header_timeout_s=60)  # only shedding frees a slot here
    with BackgroundSensor(SensorConfig(persona="3.5.1", state_file=None, limits=limits)) as hp:
        yield hp


def fill(hp: BackgroundSensor, first: bytes) -> list[socket.socket]:
    held = [open_from(source(i), hp, first) for i in range(SOURCES) for _ in range(PER_SOURCE)]
    deadline = time.monotonic() + 5
    while hp.sensor.client.active < CAP and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.02)
    assert hp.sensor.client.active == CAP  # type: ignore[union-attr]
    return held


def test_a_new_source_is_served_during_a_slowloris(capped: BackgroundSensor) -> None:
    held = fill(capped, b"GET /version HTTP/1.1\r\n")
    try:
        for n in range(int(SHED_GRACE_S / 0.25) + 2):  # old enough to be shed, dripping all along
            for sock in held:
                sock.sendall(b"X-Drip-%d: a\r\n" % n)
            time.sleep(0.25)
        newcomers = [ask_from(source(100 + i), capped, GET) for i in range(3)]
        assert all(answer.startswith(b"HTTP/1.1 200 OK") for answer in newcomers), newcomers
        shed = capped.memory.of("session.shed")
        assert len(shed) == 1  # one slot freed; each newcomer leaves after its answer, freeing it again
        assert {e["src_ip"] for e in shed} <= {source(i) for i in range(SOURCES)}  # only the slowloris paid
        assert all(e["requests_in"] == 0 and e["for_src_ip"].startswith("127.91.0.1") for e in shed)
        assert all(closed_reason(capped, e["session"]) == "shed" for e in shed)
    finally:
        for sock in held:
            sock.close()
    assert capped.memory.of("sensor.error") == []


def test_silent_websockets_are_shed_for_a_new_source(capped: BackgroundSensor) -> None:
    held = fill(capped, WS)
    try:
        for sock in held:
            assert sock.recv(4096).startswith(b"HTTP/1.1 101 Switching Protocols")
        time.sleep(SHED_GRACE_S + 0.2)
        assert ask_from(source(200), capped, GET).startswith(b"HTTP/1.1 200 OK")
        assert len(capped.memory.of("session.shed")) == 1
    finally:
        for sock in held:
            sock.close()


def test_a_dripped_request_head_meets_its_deadline() -> None:
    limits = Limits(idle_timeout_s=60, header_timeout_s=0.5, rate_per_source=0)
    with BackgroundSensor(SensorConfig(persona="3.5.1", state_file=None, limits=limits)) as hp:
        # the fast path, then the h11 path (an `OPTIONS *` first hands the connection over)
        for first in (b"GET /version HTTP/1.1\r\n", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nGET /version HTTP/1.1\r\n"):
            with open_from("127.91.1.1", hp, first) as sock:
                assert drip_until_closed(sock, every=0.1, rounds=100)  # long before the idle time
        with open_from("127.91.1.2", hp, b"") as sock:  # one that never says a word
            assert sock.recv(1) == b""
        # a keep-alive client that pauses between requests is the idle time's, not the head's
        with open_from("127.91.1.3", hp, b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n") as sock:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
            time.sleep(1.0)
            sock.sendall(GET)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
        assert any(e["reason"] == "request head timeout" for e in hp.memory.of("malformed"))
        assert hp.memory.of("sensor.error") == []


def test_a_websocket_with_no_watch_is_idle_and_one_watching_is_not() -> None:
    limits = Limits(idle_timeout_s=0.5, rate_per_source=0)
    with BackgroundSensor(SensorConfig(persona="3.5.1", state_file=None, limits=limits)) as hp, \
            open_from("127.91.2.1", hp, WS) as silent, open_from("127.91.2.2", hp, WS) as watching:
        assert silent.recv(4096).startswith(b"HTTP/1.1 101")
        assert watching.recv(4096).startswith(b"HTTP/1.1 101")
        msg = b'{"create_request":{"key":"%s"}}' % b64("k").encode()
        watching.sendall(bytes([0x81, 0x80 | len(msg)]) + b"\0\0\0\0" + msg)  # masked text frame
        assert b'"created":true' in watching.recv(4096)
        silent.settimeout(10)
        assert silent.recv(4096) == b""  # closed at the idle time
        assert not closed_by_server(watching)


def test_the_victim_is_the_connection_that_sent_least() -> None:
    from etcdsec.honeypot.context import Session
    from etcdsec.honeypot.serve.shedding import pick_victim

    def conn(src: str, age: float, requests: int, sent: int) -> Session:
        s = Session.new(src, 1, "127.0.0.1", 2379)
        s.started, s.requests_in, s.bytes_in = 100.0 - age, requests, sent
        return s

    busy = conn("10.0.0.1", 50, 3, 900)  # served three requests
    drip = conn("10.0.0.2", 30, 0, 90)  # a slowloris: no request in 30 s
    silent = conn("10.0.0.3", 30, 0, 0)  # a WebSocket that never spoke
    lone_new = conn("10.0.0.4", 0.2, 0, 0)  # a new source, still sending its first request
    crowd = {"10.0.0.2": 20, "10.0.0.5": 20}
    assert pick_victim([busy, drip, silent, lone_new], 100.0, lambda s: crowd.get(s, 1)) is silent
    assert pick_victim([busy, drip, lone_new], 100.0, lambda s: crowd.get(s, 1)) is drip
    assert pick_victim([busy, lone_new], 100.0, lambda s: crowd.get(s, 1)) is busy  # the lone newcomer is spared
    assert pick_victim([lone_new], 100.0) is None
    reconnected = conn("10.0.0.5", 0.2, 0, 23)  # young, but its source holds twenty: no grace
    assert pick_victim([busy, reconnected, lone_new], 100.0, lambda s: crowd.get(s, 1)) is reconnected

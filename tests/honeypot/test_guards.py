"""Caps, PROXY protocol and trusted X-Forwarded-For, against a real sensor on loopback."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from etcdsec.honeypot.context import Limits
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.honeypot.wire import proxyproto
from tests.honeypot.conftest import raw_exchange
from tests.support.harness import BackgroundSensor

GET = b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def test_proxy_header_parsing() -> None:
    v1 = proxyproto.parse(b"PROXY TCP4 203.0.113.5 10.0.0.1 40000 2379\r\nGET /")
    assert v1 == proxyproto.ProxyHeader(44, "203.0.113.5", 40000, "10.0.0.1", 2379)
    assert proxyproto.parse(b"PROXY TCP4 203.0.113.5") is None  # needs more bytes
    assert proxyproto.parse(b"PROXY UNKNOWN\r\n").src_ip is None
    body = socket.inet_aton("198.51.100.9") + socket.inet_aton("10.0.0.1") + struct.pack("!HH", 5555, 2379)
    v2 = proxyproto.parse(proxyproto.V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body)
    assert v2 is not None and (v2.src_ip, v2.src_port, v2.length) == ("198.51.100.9", 5555, 28)
    local = proxyproto.parse(proxyproto.V2_SIGNATURE + bytes([0x20, 0x00, 0, 0]))
    assert local is not None and local.src_ip is None
    for bad in (b"PROXY TCP4 nonsense 1 2 3\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n",
                proxyproto.V2_SIGNATURE + bytes([0x31, 0x11, 0, 0])):
        with pytest.raises(proxyproto.ProxyError):
            proxyproto.parse(bad)


@pytest.fixture(scope="module")
def proxied():
    config = SensorConfig(state_file=None, proxy_protocol=True, trusted_proxies=["127.0.0.0/8"], trust_xff=True)
    with BackgroundSensor(config) as hp:
        yield hp


def test_proxy_v1_and_v2_give_the_real_client_address(proxied) -> None:
    out = raw_exchange(proxied.ip, 2379, b"PROXY TCP4 203.0.113.5 10.0.0.1 40000 2379\r\n" + GET)
    assert out.startswith(b"HTTP/1.1 200 OK")
    body = socket.inet_aton("198.51.100.9") + socket.inet_aton("10.0.0.1") + struct.pack("!HH", 5555, 2379)
    header = proxyproto.V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body
    assert raw_exchange(proxied.ip, 2379, header + GET).startswith(b"HTTP/1.1 200 OK")
    sources = {(e["src_ip"], e.get("peer_ip")) for e in proxied.memory.of("http.request")}
    assert ("203.0.113.5", "127.0.0.1") in sources and ("198.51.100.9", "127.0.0.1") in sources


def test_plain_connections_still_work_when_proxy_protocol_is_on(proxied) -> None:
    assert raw_exchange(proxied.ip, 2379, GET).startswith(b"HTTP/1.1 200 OK")


def test_trusted_x_forwarded_for(proxied) -> None:
    req = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.44, 127.0.0.9\r\nConnection: close\r\n\r\n"
    assert raw_exchange(proxied.ip, 2379, req).startswith(b"HTTP/1.1 200 OK")
    event = next(e for e in proxied.memory.of("http.request") if e["path"] == "/health")
    assert event["src_ip"] == "192.0.2.44" and event["peer_ip"] == "127.0.0.1"


def test_proxy_and_xff_are_ignored_by_default() -> None:
    with BackgroundSensor(SensorConfig(state_file=None)) as hp:
        raw_exchange(hp.ip, 2379, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.44\r\n"
                                  b"Connection: close\r\n\r\n")
        assert raw_exchange(hp.ip, 2379, b"PROXY TCP4 203.0.113.5 10.0.0.1 1 2\r\n" + GET) == b""
        assert {e["src_ip"] for e in hp.memory.events if "src_ip" in e} == {"127.0.0.1"}


@pytest.fixture(scope="module")
def capped():
    limits = Limits(max_connections_per_source=2, max_request_bytes=1000, max_header_count=20, idle_timeout_s=0.5,
                    rate_per_source=50, burst_per_source=5)
    with BackgroundSensor(SensorConfig(state_file=None, limits=limits)) as hp:
        yield hp


def test_connections_per_source_are_capped(capped) -> None:
    held = [socket.create_connection((capped.ip, 2379)) for _ in range(2)]
    try:
        time.sleep(0.1)
        assert raw_exchange(capped.ip, 2379, GET, timeout=1) == b""
        assert capped.memory.of("session.refused")
    finally:
        for s in held:
            s.close()
    time.sleep(0.2)
    assert raw_exchange(capped.ip, 2379, GET).startswith(b"HTTP/1.1 200 OK")


def test_oversized_body_and_too_many_headers_are_refused(capped) -> None:
    big = b"PUT /v2/keys/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"a" * 5000
    assert raw_exchange(capped.ip, 2379, big).startswith(b"HTTP/1.1 413 Request Entity Too Large")
    many = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(30)) + b"\r\n"
    assert raw_exchange(capped.ip, 2379, many).startswith(b"HTTP/1.1 431 Request Header Fields Too Large")


def test_idle_connections_are_closed(capped) -> None:
    with socket.create_connection((capped.ip, 2379), timeout=3) as sock:
        started = time.monotonic()
        assert sock.recv(10) == b""  # the sensor hangs up after the idle time
        assert time.monotonic() - started < 2.5


def test_a_flooding_source_is_throttled_not_the_sensor(capped) -> None:
    before = capped.sensor.guard.throttled
    pipeline = (b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n" * 29) + GET
    started = time.monotonic()
    out = raw_exchange(capped.ip, 2379, pipeline, timeout=5)
    elapsed = time.monotonic() - started
    assert out.count(b"HTTP/1.1 200 OK") == 30
    assert capped.sensor.guard.throttled - before >= 20 and elapsed >= 0.4  # 25 over the burst at 50/s
    with BackgroundSensor(SensorConfig(state_file=None)) as other:  # other sources are not slowed
        assert raw_exchange(other.ip, 2379, GET).startswith(b"HTTP/1.1 200 OK")


def test_v2_store_is_bounded_under_a_write_flood() -> None:
    from etcdsec.honeypot.v2.keystore import V2Error, V2Store

    store = V2Store(max_keys=100, max_bytes=10_000, max_watchers=5)
    refused = 0
    for i in range(5000):  # bounded flood: distinct keys, growing values
        try:
            store.set(f"/flood/{i}", "v" * (i % 300))
        except V2Error as err:
            assert err.code == 300 and err.status == 500
            refused += 1
    assert store.keys <= 100 and store.bytes <= 10_000 and refused > 4800
    for _ in range(50):
        store.watch("/flood", True, None, lambda _e: None)
    assert len(store.watchers) == 5  # oldest watchers give way


def test_caps_apply_to_the_client_behind_a_trusted_balancer() -> None:
    """All connections come from the balancer; the per-source cap counts the PROXY-named clients."""
    limits = Limits(max_connections_per_source=2, idle_timeout_s=2)
    config = SensorConfig(state_file=None, limits=limits, proxy_protocol=True, trusted_proxies=["127.0.0.0/8"])
    with BackgroundSensor(config) as hp:
        def held(client: str) -> socket.socket:
            s = socket.create_connection((hp.ip, 2379))
            s.sendall(f"PROXY TCP4 {client} 10.0.0.1 4000 2379\r\n".encode())
            return s

        socks = [held("203.0.113.1"), held("203.0.113.1"), held("203.0.113.2"), held("203.0.113.2")]
        try:
            time.sleep(0.3)
            # a third connection of .1 is refused, one of a new client is served
            refused = raw_exchange(hp.ip, 2379, b"PROXY TCP4 203.0.113.1 10.0.0.1 1 2379\r\n" + GET, timeout=1)
            served = raw_exchange(hp.ip, 2379, b"PROXY TCP4 203.0.113.3 10.0.0.1 1 2379\r\n" + GET)
            assert refused == b"" and served.startswith(b"HTTP/1.1 200 OK")
        finally:
            for s in socks:
                s.close()
        time.sleep(0.3)
        guard = hp.sensor.guard
        assert guard.total == 0 and guard.per_source == {}  # every admit was released


def test_xff_believes_only_the_hop_the_trusted_proxy_added(proxied) -> None:
    """A client cannot choose its logged address by writing its own X-Forwarded-For."""
    req = (b"GET /version?xff HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6, 198.51.100.77\r\n"
           b"Connection: close\r\n\r\n")
    assert raw_exchange(proxied.ip, 2379, req).startswith(b"HTTP/1.1 200 OK")
    event = next(e for e in proxied.memory.of("http.request") if e["path"] == "/version?xff")
    assert event["src_ip"] == "198.51.100.77" and event["peer_ip"] == "127.0.0.1"

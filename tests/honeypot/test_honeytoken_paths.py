"""The same honeytoken, sent once by every path a request can take into the sensor, raises exactly one
`honeytoken.used` event each: every path searches the one view of a request (`request.token_view`)."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time

import grpc
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdsec.errors import UserError
from etcdsec.honeypot.core.bait import load_seed_file
from etcdsec.honeypot.core.eventsink import EventSink
from etcdsec.honeypot.core.honeytokens import Honeytokens, token_problem
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.honeypot.wire import fast_head
from etcdsec.honeypot.wire.request import token_view
from etcdsec.proto import etcd_v3_pb2 as pb
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.pki import TestCA
from tests.support.harness import BackgroundSensor

from .conftest import json_post, raw_exchange, read_until
from .test_fasthead import MAX_BODY, MAX_HEAD, MAX_HEADERS
from .test_websocket import HANDSHAKE, client_frame

TOKEN = "canary-7f3a9c1e5d"
B64 = base64.b64encode(TOKEN.encode()).decode()
FAST = f"GET /version HTTP/1.1\r\nHost: x\r\nX-Api-Key: {TOKEN}\r\n\r\n".encode()
CAREFUL = f"GET /version?t=%41 HTTP/1.1\r\nHost: x\r\nX-Api-Key: {TOKEN}\r\n\r\n".encode()  # '%': h11's


def _events_after(hp: BackgroundSensor, before: int) -> list[dict]:
    """The honeytoken events past the first `before`, once the sensor has had its turn (bounded)."""
    deadline = time.monotonic() + 5
    while len(hp.memory.of("honeytoken.used")) <= before and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # a second event for the same request would come right after the first
    return hp.memory.of("honeytoken.used")[before:]


def _grpc_range(addr: str) -> None:
    with grpc.insecure_channel(addr) as channel:
        call = channel.unary_unary("/etcdserverpb.KV/Range", request_serializer=pb.RangeRequest.SerializeToString,
                                   response_deserializer=pb.RangeResponse.FromString)
        call(pb.RangeRequest(key=TOKEN.encode()), timeout=10)


def _h2_plain(ip: str) -> None:
    out = subprocess.run(["curl", "-s", "-k", "--http2", "-o", "/dev/null", "-w", "%{http_version}",
                          "-H", f"X-Api-Key: {TOKEN}", f"https://{ip}:2379/version"],
                         capture_output=True, timeout=20, check=True).stdout
    assert out == b"2"


def _websocket(ip: str) -> None:
    with socket.create_connection((ip, 2379), timeout=5) as sock:
        sock.sendall(HANDSHAKE)
        assert read_until(sock, b"\r\n\r\n", 5).startswith(b"HTTP/1.1 101")
        sock.sendall(client_frame(json.dumps({"create_request": {"key": B64}}).encode()))
        assert read_until(sock, b"created", 5)


def test_one_honeytoken_event_per_request_on_every_path(tmp_path) -> None:
    assert isinstance(fast_head.parse(FAST, 8192, 100, 1 << 20), fast_head.Head)
    assert fast_head.parse(CAREFUL, 8192, 100, 1 << 20) is fast_head.UNSURE
    seed = tmp_path / "seed.yaml"
    seed.write_text(f"keys: {{}}\nhoneytokens:\n  {TOKEN}: canary\n")
    ip = free_loopback_ip((2379, 2380))
    cert = TestCA(tmp_path).issue("server", ips=[ip])
    config = SensorConfig(persona="3.5.1", state_file=tmp_path / "state.json", seed_file=seed,
                          tls_cert=cert.cert, tls_key=cert.key)
    with BackgroundSensor(config, ip=ip) as hp:
        paths = {
            "http/1 fast": lambda: raw_exchange(ip, 2379, FAST).startswith(b"HTTP/1.1 200"),
            "http/1 h11": lambda: raw_exchange(ip, 2379, CAREFUL).startswith(b"HTTP/1.1 200"),
            "v3 gateway": lambda: raw_exchange(ip, 2379, json_post("/v3/kv/range", {"key": B64}))
            .startswith(b"HTTP/1.1 200"),
            "grpc": lambda: _grpc_range(hp.addr),
            "h2 plain": lambda: _h2_plain(ip),
            "websocket": lambda: _websocket(ip),
        }
        seen = {}
        for name, send in paths.items():
            before = len(hp.memory.of("honeytoken.used"))
            assert send() is not False, name
            seen[name] = [(e["token"], e["where"]) for e in _events_after(hp, before)]
        assert seen == {
            "http/1 fast": [("canary", "request")],
            "http/1 h11": [("canary", "request")],
            "v3 gateway": [("canary", "request")],
            "grpc": [("canary", "grpc")],
            "h2 plain": [("canary", "request")],
            "websocket": [("canary", "websocket")],
        }
        used = json.dumps(hp.memory.of("honeytoken.used"))
        assert TOKEN not in used and B64 not in used  # named by label, never by value


def test_a_throttled_request_raises_its_alert_before_it_waits(tmp_path) -> None:
    """The scan comes before the throttle's wait: a request still waiting when the sensor stops (or
    the client gives up) has raised its alert. The sensor is stopped once the guard has throttled the
    request; the stop runs on the sensor's loop, after the step that throttled (and scanned) it."""
    seed = tmp_path / "seed.yaml"
    seed.write_text(f"keys: {{}}\nhoneytokens:\n  {TOKEN}: canary\n")
    config = SensorConfig(persona="3.5.1", state_file=tmp_path / "state.json", seed_file=seed)
    config.limits.rate_per_source, config.limits.burst_per_source = 0.2, 1  # the second request waits 5 s
    hp = BackgroundSensor(config).start()
    try:
        assert hp.sensor is not None
        guard = hp.sensor.guard
        with socket.create_connection((hp.ip, 2379), timeout=5) as sock:
            sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n" + CAREFUL)  # the h11 reader's
            assert read_until(sock, b"\r\n\r\n", 5).startswith(b"HTTP/1.1 200")
            deadline = time.monotonic() + 10
            while guard.throttled == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert guard.throttled == 1
            hp.stop()
    finally:
        hp.stop()
    assert [e["token"] for e in hp.memory.of("honeytoken.used")] == ["canary"]


SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~=&"


@st.composite
def simple_requests(draw: st.DrawFn) -> bytes:
    """Requests of the shape the fast recogniser accepts (any spacing around header values)."""
    target = "/" + draw(st.text(SAFE + "/?", max_size=30))
    names, values = st.text(SAFE[:62] + "-", min_size=1, max_size=12), st.text(SAFE + " /:;,", max_size=30)
    headers = [("Host", "etcd"), *draw(st.lists(st.tuples(names, values), max_size=4))]
    body = draw(st.text(SAFE + " :\n", max_size=40)).encode()
    space = draw(st.sampled_from(["", " ", "  "]))
    head = f"{draw(st.sampled_from(['GET', 'PUT', 'POST']))} {target} HTTP/1.1\r\n" + "".join(
        f"{name}:{space}{value}\r\n" for name, value in headers)
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@settings(max_examples=400, deadline=None)
@given(data=simple_requests(), start=st.integers(0, 10_000), length=st.integers(8, 24))
def test_the_fast_readers_raw_bytes_hold_every_token_its_view_holds(data: bytes, start: int, length: int) -> None:
    """The fast reader searches its raw bytes before building the view: any token inside one piece of
    the view (no line break, no ": " in it) must be found in those bytes too."""
    head = fast_head.parse(data, MAX_HEAD, MAX_HEADERS, MAX_BODY)
    if not isinstance(head, fast_head.Head):
        return  # a header name drawn twice (Host) or other odd shape: h11's
    raw = data[:head.end]
    view = token_view(head.method, head.target, [(name, value) for name, _, value in head.items],
                      raw[head.body_start:])
    start %= len(view)
    token = view[start:start + length]
    if b"\n" in token or b": " in token or token_problem(token.decode("latin-1")):
        return  # not a token the sensor accepts (one piece of the view, no spaces at its ends)
    tokens = Honeytokens(EventSink("test"), {token.decode("latin-1"): "t"})
    assert tokens.find(view) == ["t"] and tokens.find(raw) == ["t"]


@pytest.mark.parametrize(("value", "problem"), [("short", "shorter than 8"), (" padded-token", "white space"),
                                                ("line\r\nbreak-token", "control character")])
def test_a_seed_token_that_could_not_arrive_intact_is_refused(tmp_path, value: str, problem: str) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump({"keys": {}, "honeytokens": {value: "bait"}}))
    with pytest.raises(UserError, match=problem):
        load_seed_file(seed)

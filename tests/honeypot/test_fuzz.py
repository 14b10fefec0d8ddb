"""Hypothesis fuzz of the listener and the HTTP/1.1 path: hostile bytes never crash the sensor."""

from __future__ import annotations

import asyncio
import os
import random
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcdsec.honeypot.context import Limits, Session
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.honeypot.wire import proxyproto
from etcdsec.honeypot.wire.request import Request
from tests.support.harness import BackgroundSensor

from . import fuzzgen

METHODS = st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "PRI", "get", "", "G\x00T"])
PATHS = st.one_of(
    st.sampled_from(["/version", "/health", "/v2/keys/", "/v2/keys/a?wait=true&waitIndex=1", "/v2/members",
                     "/v2/auth/users/root", "/v2/stats/store", "/v3/kv/range", "/v3beta/kv/put", "*", "//..//",
                     "/v2/keys/a?ttl=-1", "/v2/keys/%zz", "/v2/keys/a?prevExist=x&dir=true"]),
    st.text(min_size=0, max_size=60).map(lambda t: "/" + t),
)
HEADER = st.tuples(st.sampled_from(["Host", "Content-Length", "Transfer-Encoding", "Content-Type", "Connection",
                                    "Expect", "X-Forwarded-For", "Upgrade", "Authorization", "X"]),
                   st.text(max_size=30))
BODY = st.one_of(st.binary(max_size=200), st.sampled_from([b"value=1", b'{"key":"YQ=="}', b"{bad", b"0\r\n\r\n"]))


@st.composite
def http_like(draw: st.DrawFn) -> bytes:
    method, path = draw(METHODS), draw(PATHS)
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1", "", "HTTP/1.1 extra"]))
    headers = draw(st.lists(HEADER, max_size=6))
    sep = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    head = f"{method} {path} {version}{sep}" + "".join(f"{k}: {v}{sep}" for k, v in headers) + sep
    return head.encode("utf-8", "surrogatepass") + draw(BODY)


@pytest.fixture(scope="module")
def fuzz_target():
    limits = Limits(idle_timeout_s=0.3, wait_timeout_s=0.2, rate_per_source=0)
    config = SensorConfig(persona="3.3.27", state_file=None, limits=limits, proxy_protocol=True,
                          trusted_proxies=["127.0.0.0/8"])
    with BackgroundSensor(config) as hp:
        yield hp


def _send(ip: str, data: bytes) -> None:
    with socket.create_connection((ip, 2379), timeout=2) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(1.0)
            while sock.recv(65536):
                pass
        except OSError:
            pass


def _alive(hp: BackgroundSensor) -> bool:
    with socket.create_connection((hp.ip, 2379), timeout=2) as sock:
        sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        sock.settimeout(2)
        return sock.recv(64).startswith(b"HTTP/1.1 200 OK")


WS_HANDSHAKE = (b"GET /v3alpha/watch HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(data=st.one_of(http_like(), st.binary(max_size=300),
                      st.binary(max_size=80).map(lambda b: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b),
                      st.binary(max_size=80).map(lambda b: b"\x16\x03\x01" + b),
                      st.binary(max_size=80).map(lambda b: b"PROXY " + b),
                      st.binary(max_size=80).map(lambda b: proxyproto.V2_SIGNATURE + b),
                      st.binary(max_size=120).map(lambda b: WS_HANDSHAKE + b)))
def test_sensor_survives_any_first_bytes(fuzz_target, data: bytes) -> None:
    _send(fuzz_target.ip, data)
    assert _alive(fuzz_target)


def test_no_sensor_errors_after_fuzzing(fuzz_target) -> None:
    assert _alive(fuzz_target)
    assert fuzz_target.memory.of("sensor.error") == []


def test_seeded_fuzz_of_the_whole_sensor() -> None:
    """Thousands of hostile connections (tests/honeypot/fuzzgen.py), many at once: no sensor.error,
    no HTTP 500, no connection held past its timeouts. ETCDSEC_FUZZ_SEED replays a run; the larger
    run is bench/honeypot_fuzz.py."""
    seed = int(os.environ.get("ETCDSEC_FUZZ_SEED") or random.randrange(1 << 32))
    count = int(os.environ.get("ETCDSEC_FUZZ_INPUTS", "2000"))
    print(f"fuzz seed {seed} (replay: ETCDSEC_FUZZ_SEED={seed})")
    limits = Limits(idle_timeout_s=1.0, header_timeout_s=0.5, wait_timeout_s=0.5, rate_per_source=0)
    config = SensorConfig(persona="3.5.1", state_file=None, limits=limits, enable_v2=True, proxy_protocol=True,
                          trusted_proxies=["127.93.0.0/16"])
    with BackgroundSensor(config) as hp:
        stats = asyncio.run(fuzzgen.run_fuzz(hp.ip, hp.port, seed, count, concurrency=64,
                                             hang_after=2 * (1.0 + 0.5 + 0.5) + 2))
        assert _alive(hp)
        errors = [e.get("error") for e in hp.memory.of("sensor.error")]
    assert stats.inputs >= count * 0.99, stats.line()
    assert (errors, stats.server_errors, stats.hangs) == ([], 0, 0), (stats.line(), errors[:5], stats.hung_kinds)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_proxy_parser_only_returns_or_raises_proxyerror(data: bytes) -> None:
    try:
        header = proxyproto.parse(data)
    except proxyproto.ProxyError:
        return
    assert header is None or header.length <= max(len(data), 16)


@settings(max_examples=300, deadline=None)
@given(target=st.text(max_size=80), body=st.binary(max_size=80), ctype=st.binary(max_size=40))
def test_request_parsing_never_raises(target: str, body: bytes, ctype: bytes) -> None:
    req = Request("PUT", target or "/", [(b"content-type", ctype)], body)
    assert req.raw_path and isinstance(req.path, str)
    form = req.form()
    assert all(isinstance(v, str) for values in form.values() for v in values)


@pytest.fixture(scope="module")
def v2_api():
    from etcdsec.honeypot.sensor import Sensor

    sensor = Sensor(SensorConfig(persona="3.3.27", state_file=None, listen=("127.0.0.1", 0)))
    return sensor.client_app


FORM_KEYS = st.sampled_from(["value", "ttl", "dir", "prevExist", "prevValue", "prevIndex", "recursive", "sorted",
                             "wait", "waitIndex", "refresh", "quorum", "stream"])
FORM_VALUES = st.one_of(st.sampled_from(["", "true", "false", "0", "1", "-1", "99999999999999999999", "abc"]),
                        st.text(max_size=12))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"]),
       key=st.lists(st.sampled_from(["a", "b", "_h", "dir", "..", "%20", ""]), max_size=4),
       form=st.dictionaries(FORM_KEYS, FORM_VALUES, max_size=5),
       where=st.sampled_from(["/v2/keys", "/v2/members", "/v2/auth/users", "/v2/auth/enable", "/v2/stats/store"]))
def test_v2_handlers_answer_everything_without_raising(v2_api, method, key, form, where) -> None:
    import asyncio
    from urllib.parse import urlencode

    form = {k: v for k, v in form.items() if k != "wait"}  # a wait would (boundedly) block the example
    path = where + "/" + "/".join(key)
    body = urlencode(form).encode() if method in ("PUT", "POST") else b""
    target = path + ("?" + urlencode(form) if method not in ("PUT", "POST") and form else "")
    req = Request(method, target, [(b"content-type", b"application/x-www-form-urlencoded")], body)
    session = Session.new("127.0.0.1", 1, "127.0.0.2", 2379)
    resp = asyncio.run(v2_api.handle(session, req))
    assert 200 <= resp.status < 600
    assert resp.status != 500 or b"database space" in resp.body  # no internal error slips out


@settings(max_examples=1000, deadline=None)
@given(text=st.text("ab=&%+;#20 é", max_size=24))
def test_query_fast_split_equals_parse_qs(text: str) -> None:
    from urllib.parse import parse_qs

    from etcdsec.honeypot.wire.request import _parse_query

    assert _parse_query(text) == parse_qs(text, keep_blank_values=True)


@settings(max_examples=2000, deadline=None)
@given(path=st.text("/.ab%", max_size=14))
def test_clean_path_shortcut_agrees_with_full_resolution(path: str) -> None:
    from urllib.parse import unquote_to_bytes

    from etcdsec.honeypot.routes import _resolve_path, _unclean_redirect

    decoded = unquote_to_bytes(path).decode("latin-1")
    clean = _resolve_path(decoded)
    assert (_unclean_redirect(path) is None) == (clean == decoded)

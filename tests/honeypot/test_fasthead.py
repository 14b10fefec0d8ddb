"""The fast HTTP/1 path: whatever the strict recogniser accepts, h11 reads the same way; and the
protocol connection answers, pipelines, hands over and ends exactly as the h11 path does."""

from __future__ import annotations

import socket
import time

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdsec.honeypot.context import Limits
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.honeypot.wire import fast_head
from tests.support.harness import BackgroundSensor

from .conftest import raw_exchange

MAX_HEAD, MAX_HEADERS, MAX_BODY = 16 << 10, 100, 1 << 20

# Near-misses on purpose: every piece is usually valid and sometimes subtly not.
METHOD = st.sampled_from([b"GET", b"PUT", b"POST", b"DELETE", b"HEAD", b"OPTIONS", b"get", b"PATCH", b"GE T"])
TARGET = st.one_of(
    st.sampled_from([b"/version", b"/v2/keys/a?recursive=true", b"/v3/kv/range", b"*", b"/a%20b", b"/a#f",
                     b"http://x/y", b"/\xc3\xa9", b"/a b", b""]),
    st.binary(max_size=20).map(lambda b: b"/" + b),
)
VERSION = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b"HTTP/1.1 "])
NAME = st.one_of(st.sampled_from([b"Host", b"host", b"Content-Length", b"Content-Type", b"Connection",
                                  b"Transfer-Encoding", b"Expect", b"Upgrade", b"User-Agent", b"X-A"]),
                 st.binary(min_size=0, max_size=6))
VALUE = st.one_of(st.sampled_from([b"x", b" x ", b"", b"\tx", b"a b", b"0", b"7", b"007", b"+1", b"-1",
                                   b"close", b"keep-alive", b"chunked", b"100-continue", b"\x80", b"a\x00b"]),
                  st.binary(max_size=10))
SEP = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    sep = draw(SEP)
    line = draw(METHOD) + b" " + draw(TARGET) + b" " + draw(VERSION) + sep
    colons = st.sampled_from([b": ", b":", b" : ", b": \t", b"", b" "])
    headers = draw(st.lists(st.tuples(NAME, colons, VALUE), max_size=6))
    if draw(st.booleans()):
        headers.insert(draw(st.integers(0, len(headers))), (b"Host", b": ", b"etcd"))
    body = draw(st.binary(max_size=12))
    if draw(st.booleans()):
        headers.append((b"Content-Length", b": ", str(len(body)).encode()))
    fold = draw(st.sampled_from([b"", b"", b" folded" + sep]))
    head = line + b"".join(k + c + v + sep for k, c, v in headers) + fold + draw(SEP)
    return head + body


def h11_read(data: bytes) -> tuple[h11.Request, bytes] | None:
    """What h11 makes of one request at the start of data (None when it refuses or needs more)."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    conn.receive_data(data)
    body = b""
    request = None
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return None
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, body
    except h11.RemoteProtocolError:
        return None


@settings(max_examples=1500, deadline=None)
@given(data=requests(), tail=st.sampled_from([b"", b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00junk"]))
def test_whatever_fast_path_accepts_h11_reads_the_same(data: bytes, tail: bytes) -> None:
    whole = data + tail
    head = fast_head.parse(whole, MAX_HEAD, MAX_HEADERS, MAX_BODY)
    if not isinstance(head, fast_head.Head):
        return
    seen = h11_read(whole)
    assert seen is not None, "the fast path accepted what h11 refuses"
    request, body = seen
    assert (head.method.encode(), head.target.encode()) == (request.method, request.target)
    assert (b"1.0" if head.http10 else b"1.1") == request.http_version
    assert head.items == list(request.headers._full_items)  # (name as sent, lower-cased, value), bytes both
    assert head.headers == list(request.headers)  # Request.headers: (lower-cased name, value), as h11 iterates
    assert head.body(whole) == body
    assert h11_read(whole[:head.end]) is not None  # the request ends where the fast path says


@settings(max_examples=400, deadline=None)
@given(data=requests())
def test_a_prefix_of_an_accepted_request_only_asks_for_more(data: bytes) -> None:
    head = fast_head.parse(data, MAX_HEAD, MAX_HEADERS, MAX_BODY)
    if not isinstance(head, fast_head.Head):
        return
    for cut in range(head.end):
        assert fast_head.parse(data[:cut], MAX_HEAD, MAX_HEADERS, MAX_BODY) is fast_head.NEED_MORE


def test_common_clients_take_the_fast_path_and_odd_input_does_not() -> None:
    fast = [
        b"GET /version HTTP/1.1\r\nHost: 127.0.0.1:2379\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
        b"PUT /v2/keys/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 7\r\n\r\nvalue=1",
        b"GET /v2/keys/?recursive=true HTTP/1.0\r\nHost: x\r\n\r\n",
    ]
    careful = [
        b"GET /version HTTP/1.1\r\n\r\n",  # no Host: Go's exact 400
        b"GET /version HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"PUT /v2/keys/a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n1",
        b"GET /version HTTP/1.1\nHost: x\n\n",  # bare LF
        b"GET /v2/keys/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x00",
    ]
    for data in fast:
        assert isinstance(fast_head.parse(data, MAX_HEAD, MAX_HEADERS, MAX_BODY), fast_head.Head), data
    for data in careful:
        assert fast_head.parse(data, MAX_HEAD, MAX_HEADERS, MAX_BODY) is fast_head.UNSURE, data
    # a header name seen before is remembered, but a line of it without a colon is still refused
    assert isinstance(fast_head.parse(b"GET / HTTP/1.1\r\nHost: x\r\nAccept: y\r\n\r\n", MAX_HEAD, MAX_HEADERS,
                                     MAX_BODY), fast_head.Head)
    for line in (b"Accept", b" Accept: y", b"Accept : y", b"Accept:\x01"):
        assert fast_head.parse(b"GET / HTTP/1.1\r\nHost: x\r\n" + line + b"\r\n\r\n", MAX_HEAD, MAX_HEADERS,
                              MAX_BODY) is fast_head.UNSURE, line
    big = b"PUT /v2/keys/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"
    assert fast_head.parse(big, MAX_HEAD, MAX_HEADERS, MAX_BODY) is fast_head.UNSURE  # Go's 413 is the careful path's


# --- the connection ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hp(tmp_path_factory):
    limits = Limits(idle_timeout_s=1.0, rate_per_source=0)
    config = SensorConfig(persona="3.4.23", state_file=tmp_path_factory.mktemp("fast") / "s.json", limits=limits,
                          enable_v2=True)
    with BackgroundSensor(config) as sensor:
        yield sensor


def _without_date(answer: bytes) -> bytes:
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.startswith(b"Date: "))


def test_pipelined_requests_are_answered_in_order_each_logged(hp) -> None:
    before = len(hp.memory.of("http.request"))
    data = b"".join(f"PUT /v2/keys/pipe/{i} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
                    f"\r\nContent-Length: 7\r\n\r\nvalue={i}".encode() for i in range(3))
    out = raw_exchange(hp.ip, 2379, data + b"GET /v2/keys/pipe/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 201 Created") == 3 and out.count(b"HTTP/1.1 200 OK") == 1
    assert out.index(b'"key":"/pipe/0"') < out.index(b'"key":"/pipe/1"') < out.index(b'"key":"/pipe/2"')
    assert out.rstrip().endswith(b'"value":"2","modifiedIndex":' + out.rsplit(b'"modifiedIndex":', 1)[1].rstrip())
    paths = [e["path"] for e in hp.memory.of("http.request")[before:]]
    assert paths == ["/v2/keys/pipe/0", "/v2/keys/pipe/1", "/v2/keys/pipe/2", "/v2/keys/pipe/2"]


def test_a_request_sent_a_byte_at_a_time_gets_the_same_answer(hp) -> None:
    request = b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    whole = raw_exchange(hp.ip, 2379, request)
    with socket.create_connection((hp.ip, 2379), timeout=3) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(request)):
            sock.sendall(request[i:i + 1])
            time.sleep(0.002)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    assert _without_date(out) == _without_date(whole) != b""


def test_odd_request_mid_connection_is_handed_to_the_careful_path(hp) -> None:
    before = len(hp.memory.of("http.request"))
    simple = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
    odd = b"GET /version HTTP/1.1\r\nHost: x\r\nX-Odd: caf\xe9\r\n\r\n"  # obs-text: legal, but not simple
    two_hosts = b"GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"
    alone = raw_exchange(hp.ip, 2379, two_hosts)
    out = raw_exchange(hp.ip, 2379, simple + odd + simple + two_hosts)
    answers = out.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"200", b"200", b"200", b"400"]
    assert _without_date(answers[0]) == _without_date(answers[1]) == _without_date(answers[2])
    assert b"HTTP/1.1 " + answers[3] == alone  # Go's own 400, as on a connection of its own
    assert [e["status"] for e in hp.memory.of("http.request")[before:]] == [200, 200, 200]


def test_first_odd_request_is_answered_as_before(hp) -> None:
    out = raw_exchange(hp.ip, 2379, b"GET /version HTTP/1.1\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 Bad Request: missing required Host header\r\n")


def test_http10_and_connection_close_end_the_connection(hp) -> None:
    for request in (b"GET /version HTTP/1.0\r\nHost: x\r\n\r\n",
                    b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
        started = time.monotonic()
        out = raw_exchange(hp.ip, 2379, request, timeout=3)
        assert out.count(b" 200 OK") == 1 and time.monotonic() - started < 0.5  # closed by the sensor, not idle


def test_half_sent_request_then_eof_is_logged_malformed(hp) -> None:
    before = len(hp.memory.of("malformed"))
    with socket.create_connection((hp.ip, 2379), timeout=2) as sock:
        sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n")
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2)
        assert sock.recv(100) == b""
    time.sleep(0.1)
    new = hp.memory.of("malformed")[before:]
    assert [e["reason"] for e in new] == ["incomplete request"]
    assert new[0]["raw_len"] == len(b"GET /version HTTP/1.1\r\nHost: x\r\n")


def test_idle_connection_with_a_partial_request_is_closed_after_idle_timeout(hp) -> None:
    before = len(hp.memory.of("malformed"))
    with socket.create_connection((hp.ip, 2379), timeout=4) as sock:
        sock.sendall(b"PUT /v2/keys/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nval")
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert 0.8 < time.monotonic() - started < 2.5  # idle_timeout_s=1.0
    time.sleep(0.1)
    assert [e["reason"] for e in hp.memory.of("malformed")[before:]] == ["incomplete request"]


# A recursive dump of one bait subtree (about 35 kB): the whole keyspace's dump grew past 500 kB with
# the bait, which made these tests move a gigabyte.
DUMP_35KB = b"GET /v2/keys/registry/serviceaccounts?recursive=true HTTP/1.1\r\nHost: x\r\n\r\n"


def test_client_that_never_reads_is_paused_and_loses_nothing(hp) -> None:
    """2,000 pipelined requests for a 35 kB answer each (70 MB) from a client that reads nothing for a
    while: the sensor stops answering (and reading) once the socket buffers are full, and when the
    client reads at last every answer arrives, each logged once."""
    n, marker = 2_000, b"HTTP/1.1 200 OK"
    pending = DUMP_35KB * n
    before = len(hp.memory.of("http.request"))
    with socket.create_connection((hp.ip, 2379), timeout=5) as sock:
        sock.setblocking(False)
        until = time.monotonic() + 0.6  # not reading for less than the idle timeout (1 s)
        while time.monotonic() < until:  # write only
            try:
                pending = pending[sock.send(pending):]
            except BlockingIOError:
                pass
            time.sleep(0.01)
        logged_while_not_reading = len(hp.memory.of("http.request")) - before
        received, tail = 0, b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and received < n:
            if pending:
                try:
                    pending = pending[sock.send(pending):]
                except BlockingIOError:
                    pass
            try:
                chunk = sock.recv(1 << 20)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            joined = tail + chunk
            received += joined.count(marker)
            tail = joined[-(len(marker) - 1):]
    assert logged_while_not_reading < n // 2
    assert received == n
    assert len(hp.memory.of("http.request")) - before == n


def test_client_that_stops_reading_for_the_idle_timeout_is_cut_off(hp) -> None:
    request = DUMP_35KB
    before = len([e for e in hp.memory.of("session.closed") if e["reason"] == "client stopped reading"])
    with socket.create_connection((hp.ip, 2379), timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
        sock.sendall(request * 1_000)  # 35 MB of answers: far more than the socket buffers hold
        time.sleep(2.0)  # idle_timeout_s=1.0
        sock.settimeout(3)
        received = b""
        try:
            while chunk := sock.recv(1 << 20):
                received += chunk
        except ConnectionResetError:
            pass  # the sensor aborts: whether the RST or the end of the buffered data comes first varies
    assert 0 < received.count(b"HTTP/1.1 200 OK") < 1_000
    closed = [e for e in hp.memory.of("session.closed") if e["reason"] == "client stopped reading"]
    assert len(closed) - before == 1


def test_bytes_after_connection_close_are_recorded_not_answered(hp) -> None:
    before = len(hp.memory.of("malformed"))
    extra = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    out = raw_exchange(hp.ip, 2379, b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + extra)
    assert out.count(b"HTTP/1.1 ") == 1
    time.sleep(0.1)
    new = hp.memory.of("malformed")[before:]
    assert [e["reason"] for e in new] == ["sent after the connection was closed"]
    assert new[0]["raw_len"] == len(extra)


def test_a_head_read_before_reads_the_same_and_shares_nothing() -> None:
    """The kept heads: the same bytes give an equal Head each time, with lists of their own, and the
    caller's limits and the body's arrival still decide (a head kept under large limits)."""
    fast_head._kept.clear()
    raw = b"POST /v2/keys/k HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nvalue"
    first = fast_head.parse(raw, 8192, 100, 1 << 20)
    assert isinstance(first, fast_head.Head) and raw[:first.body_start] in fast_head._kept
    first.items.append((b"X-B", b"x-b", b"2"))  # a caller that changes its lists changes only its own
    first.headers.clear()
    again = fast_head.parse(raw, 8192, 100, 1 << 20)
    assert isinstance(again, fast_head.Head)
    assert (again.method, again.target, again.body_start, again.end) == ("POST", "/v2/keys/k", first.body_start,
                                                                        len(raw))
    assert again.headers == [(b"host", b"h"), (b"content-length", b"5"), (b"x-a", b"1")]
    assert len(again.items) == 3
    assert fast_head.parse(raw[:-2], 8192, 100, 1 << 20) is fast_head.NEED_MORE  # the body is not all here
    assert fast_head.parse(raw, 8192, 2, 1 << 20) is fast_head.UNSURE  # more headers than this sensor takes
    assert fast_head.parse(raw, 8192, 100, 4) is fast_head.UNSURE  # a body over this sensor's cap


def test_kept_heads_stay_bounded() -> None:
    fast_head._kept.clear()
    for i in range(fast_head.MAX_KEPT_HEADS + 10):
        assert isinstance(fast_head.parse(b"GET /k%d HTTP/1.1\r\nHost: h\r\n\r\n" % i, 8192, 100, 0), fast_head.Head)
    assert len(fast_head._kept) <= fast_head.MAX_KEPT_HEADS
    big = b"GET /" + b"a" * 600 + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    assert isinstance(fast_head.parse(big, 8192, 100, 0), fast_head.Head)
    assert big not in fast_head._kept  # past MAX_KEPT_HEAD bytes: read each time, never kept

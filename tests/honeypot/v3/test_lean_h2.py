"""The lean HTTP/2 reader against the h2 path: the same bytes in give the same bytes out.

Two GrpcConnections on one state, one lean (with its hand-over to h2) and one on h2 alone, read the
same client bytes cut at the same places; every answer must be byte for byte the same. Read-only
calls only, so both see the same keyspace. Then each hand-over trigger on its own: the lean reader
must give the connection to h2 there, and the answers must still be h2's.
"""

from __future__ import annotations

import struct

import h2.config
import h2.connection
import h2.events
import h2.utilities
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcdsec.honeypot.v3.grpc.lean_h2 import PREFACE, frame
from etcdsec.honeypot.v3.grpc.lean_headers import vouch_request
from etcdsec.honeypot.v3.grpc.server import GrpcConnection, frame_message
from etcdsec.honeypot.v3.state import V3State
from etcdsec.proto import etcd_v3_pb2 as pb

from .conftest import make_ctx, session

CTX, _ = make_ctx(dataset=[(b"/registry/secrets/a", b"tok"), (b"foo", b"bar")])
STATE = V3State(CTX)
RANGE = frame_message(pb.RangeRequest(key=b"foo").SerializeToString())
CALLS = [("/etcdserverpb.KV/Range", RANGE), ("/etcdserverpb.KV/Range", frame_message(b"\xff\xff")),
         ("/grpc.health.v1.Health/Check", frame_message(b"")), ("/etcdserverpb.KV/Nope", RANGE),
         ("/etcdserverpb.KV/Range", RANGE[:3]), ("/etcdserverpb.KV/Range", frame_message(b"x" * 70000))]
PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pair() -> tuple[GrpcConnection, GrpcConnection]:
    conns = (GrpcConnection(CTX, STATE, session(), lean=True), GrpcConnection(CTX, STATE, session(), lean=False))
    for conn in conns:
        conn.start()
    return conns


def feed(conns: tuple[GrpcConnection, GrpcConnection], data: bytes) -> bytes:
    """The same bytes to both; their answers, which must be equal."""
    lean, plain = conns
    lean.receive(data)
    plain.receive(data)
    out = lean.data_to_send()
    assert out == plain.data_to_send()
    assert lean.closed == plain.closed
    return out


def client(**kw: object) -> h2.connection.H2Connection:
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None, **kw))
    c.initiate_connection()
    return c


def request_headers(path: str, metadata: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()), (b":authority", b"x"),
            (b"content-type", b"application/grpc"), (b"te", b"trailers"), *metadata]


metadata = st.lists(st.tuples(st.sampled_from([b"user-agent", b"grpc-timeout", b"token", b"x-a"]),
                              st.binary(min_size=1, max_size=12).filter(lambda v: v.strip() == v and b"\x00" not in v
                                                                        and b"\r" not in v and b"\n" not in v)),
                    max_size=3)
action = st.one_of(
    st.tuples(st.just("call"), st.sampled_from(range(len(CALLS))), metadata, st.booleans()),
    st.tuples(st.just("ping"), st.binary(min_size=8, max_size=8)),
    st.tuples(st.just("window"), st.integers(1, 2**20)),
    st.tuples(st.just("settings"), st.sampled_from([(0x4, 1 << 20), (0x4, 100), (0x1, 0), (0x1, 4096), (0x5, 20000)])),
    st.tuples(st.just("open-reset")),
    st.tuples(st.just("watch"), st.booleans()),
    st.tuples(st.just("split"), st.integers(1, len(RANGE) - 1)),
    st.tuples(st.just("odd"), st.sampled_from(["priority", "unknown", "padded-data"])),
    # a content-length (as h2load sends), right or wrong, once or twice, with the body cut anywhere
    st.tuples(st.just("sized"), st.sampled_from([b"0", b"1", b"+1", b"1x", b"00", b"9" * 19]),
              st.sampled_from([-3, -1, 0, 0, 0, 1, 4]), st.integers(0, len(RANGE)), st.booleans()),
)


def content_length(value: bytes, delta: int, body: bytes) -> bytes:
    """A content-length value: a right one (len(body) + delta), or the odd `value` itself."""
    return value if not value.isdigit() or len(value) > 2 else str(max(0, len(body) + delta)).encode()


@PROPS
@given(st.lists(action, min_size=1, max_size=8), st.lists(st.integers(1, 200), max_size=6))
def test_lean_and_h2_answer_alike(actions: list[tuple], cuts: list[int]) -> None:
    conns = pair()
    c = client(validate_outbound_headers=False)
    wire = bytearray(c.data_to_send())
    for act in actions:
        if act[0] == "call":
            _, which, meta, in_headers = act
            path, body = CALLS[which]
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, request_headers(path, meta), end_stream=in_headers and not body)
            if body and c.local_flow_control_window(sid) >= len(body) and len(body) <= c.max_outbound_frame_size:
                c.send_data(sid, body, end_stream=True)
            else:
                c.end_stream(sid)
        elif act[0] == "ping":
            c.ping(act[1])
        elif act[0] == "window":
            c.increment_flow_control_window(act[1])
        elif act[0] == "settings":
            c.update_settings({act[1][0]: act[1][1]})
        elif act[0] == "watch":  # a bidirectional stream left open, or half-closed by the client
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, request_headers("/etcdserverpb.Watch/Watch", []))
            create = pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"foo"))
            c.send_data(sid, frame_message(create.SerializeToString()), end_stream=act[1])
        elif act[0] == "split":  # one message in two DATA frames
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, request_headers("/etcdserverpb.KV/Range", []))
            c.send_data(sid, RANGE[:act[1]])
            c.send_data(sid, RANGE[act[1]:], end_stream=True)
        elif act[0] == "sized":
            _, value, delta, cut, twice = act
            length = content_length(value, delta, RANGE)
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, request_headers("/etcdserverpb.KV/Range", [(b"content-length", length)]
                                                * (2 if twice else 1)))
            c.send_data(sid, RANGE[:cut])
            c.send_data(sid, RANGE[cut:], end_stream=True)
        elif act[0] == "open-reset":
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, request_headers("/etcdserverpb.Watch/Watch", []))
            c.reset_stream(sid, 8)
        elif act[1] == "priority":
            wire += c.data_to_send() + frame(0x2, 0, 1, struct.pack(">IB", 0, 15))
        elif act[1] == "unknown":
            wire += c.data_to_send() + frame(0xBB, 0, 0, b"xyz")
        else:
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, request_headers("/etcdserverpb.KV/Range", []))
            wire += c.data_to_send() + frame(0x0, 0x9, sid, b"\x02" + RANGE + b"\x00\x00")
        wire += c.data_to_send()
    data, pos = bytes(wire), 0
    try:
        for cut in [*cuts, len(data)]:
            feed(conns, data[pos:pos + cut])
            pos += cut
        feed(conns, data[pos:])
    finally:  # watches count against the source's limit: both connections end here
        for conn in conns:
            conn.close()


def test_the_usual_shape_stays_lean() -> None:
    conns = pair()
    c = client()
    for _ in range(3):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, request_headers("/etcdserverpb.KV/Range", [(b"user-agent", b"etcdctl")]))
        c.send_data(sid, RANGE, end_stream=True)
        c.ping(b"12345678")
        c.increment_flow_control_window(1000)
        assert feed(conns, c.data_to_send())
    assert conns[0].lean is not None


def test_h2loads_shape_stays_lean() -> None:
    """h2load (nghttp2 1.52, `-d range.bin -H 'content-type: application/grpc' -H 'te: trailers'`) sends
    this block, content-length included; a body that matches it stays on the lean path."""
    conns = pair()
    c = client()
    h2load = [(b":path", b"/etcdserverpb.KV/Range"), (b":scheme", b"http"), (b":authority", b"127.0.0.1:2379"),
              (b":method", b"POST"), (b"user-agent", b"h2load nghttp2/1.52.0"),
              (b"content-type", b"application/grpc"), (b"te", b"trailers"),
              (b"content-length", str(len(RANGE)).encode())]
    for _ in range(3):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, h2load)
        c.send_data(sid, RANGE[:7])
        c.send_data(sid, RANGE[7:], end_stream=True)
        out = feed(conns, c.data_to_send())
        assert [ev for ev in c.receive_data(out) if isinstance(ev, h2.events.StreamEnded)]
    assert conns[0].lean is not None


def test_a_body_that_breaks_its_content_length_goes_to_h2() -> None:
    for length, parts in ((len(RANGE) - 1, [RANGE]), (len(RANGE) + 1, [RANGE]), (3, [RANGE[:2], RANGE[2:]]),
                          (len(RANGE), [RANGE, b"x"])):
        conns = pair()
        c = client(validate_outbound_headers=False)
        c.send_headers(1, request_headers("/etcdserverpb.KV/Range", [(b"content-length", str(length).encode())]))
        for part in parts[:-1]:
            c.send_data(1, part)
        feed(conns, c.data_to_send())
        assert conns[0].lean is not None
        c.send_data(1, parts[-1], end_stream=True)
        feed(conns, c.data_to_send())  # h2's InvalidBodyLengthError, on both
        assert conns[0].lean is None, (length, parts)


TRIGGERS = {
    "unknown frame type": frame(0xBB, 0, 0, b"hi"),
    "PRIORITY frame": frame(0x2, 0, 3, struct.pack(">IB", 0, 15)),
    "CONTINUATION": frame(0x1, 0, 3, b"\x83") + frame(0x9, 0x4, 3, b"\x86"),
    "HEADERS with priority": frame(0x1, 0x24, 3, struct.pack(">IB", 0, 15) + b"\x83\x86"),
    "padded HEADERS": frame(0x1, 0xC, 3, b"\x01\x83\x86\x00"),
    "host header": None,
    "content-length twice": None,
    "content-length not digits": None,
    "uppercase name": None,
    "GET": None,
    "stream id reused": None,
    "even stream id": frame(0x1, 0x4, 2, b"\x83\x86"),
    "too large frame": frame(0x0, 0, 1, b"x" * 16385),
    "window overflow": frame(0x8, 0, 0, struct.pack(">I", 2**31 - 1)),
    "WINDOW_UPDATE on an idle stream": frame(0x8, 0, 99, struct.pack(">I", 5)),
    "bad HPACK": frame(0x1, 0x4, 3, b"\xff\xff\xff\xff\xff"),
    "DATA on a closed stream": frame(0x0, 0x1, 1, RANGE),
    "RST_STREAM on a closed stream": frame(0x3, 0, 1, struct.pack(">I", 8)),
    "odd settings value": frame(0x4, 0, 0, struct.pack(">HI", 0x2, 7)),
}


def test_each_trigger_hands_over_to_h2() -> None:
    for name, raw in TRIGGERS.items():
        conns = pair()
        c = client(validate_outbound_headers=False, normalize_outbound_headers=False)
        c.send_headers(1, request_headers("/etcdserverpb.KV/Range", []))
        c.send_data(1, RANGE, end_stream=True)
        first = feed(conns, c.data_to_send())
        assert first and conns[0].lean is not None, name
        if raw is None:
            extra = {"host header": [(b"host", b"x")],
                     "content-length twice": [(b"content-length", b"0"), (b"content-length", b"0")],
                     "content-length not digits": [(b"content-length", b"+0")],
                     "uppercase name": [(b"X-Up", b"1")], "GET": []}.get(name)
            headers = request_headers("/etcdserverpb.KV/Range", extra or [])
            if name == "GET":
                headers[0] = (b":method", b"GET")
            if name == "stream id reused":
                raw = frame(0x1, 0x5, 1, b"\x83\x86\x84")  # POST http / on stream 1 again
            else:
                c.send_headers(3, headers, end_stream=True)
                raw = c.data_to_send()
        feed(conns, raw)
        assert conns[0].lean is None, f"{name}: the lean reader kept it"
        if not conns[0].closed:  # the connection lives on under h2: a later call answers alike
            c.send_headers(7, request_headers("/etcdserverpb.KV/Range", []))
            c.send_data(7, RANGE, end_stream=True)
            feed(conns, c.data_to_send())


def test_hand_over_with_a_stream_open_keeps_its_state() -> None:
    conns = pair()
    c = client()
    sized = [(b"user-agent", b"a"), (b"content-length", str(len(RANGE)).encode())]  # h2 takes over the count too
    c.send_headers(1, request_headers("/etcdserverpb.KV/Range", sized))
    c.send_data(1, RANGE[:4])
    feed(conns, c.data_to_send())
    feed(conns, frame(0x2, 0, 1, struct.pack(">IB", 0, 15)))  # PRIORITY: h2 from here
    assert conns[0].lean is None
    c.send_data(1, RANGE[4:], end_stream=True)
    c.send_headers(3, request_headers("/etcdserverpb.KV/Range", [(b"user-agent", b"a")]))
    c.send_data(3, RANGE, end_stream=True)
    out = feed(conns, c.data_to_send())
    answers = [ev for ev in c.receive_data(out) if isinstance(ev, h2.events.StreamEnded)]
    assert sorted(ev.stream_id for ev in answers) == [1, 3]


@PROPS
@given(st.lists(st.tuples(st.sampled_from([b":method", b":path", b":scheme", b":authority", b"te", b"host",
                                           b"x-a", b"X-B", b"content-type", b"connection", b"content-length",
                                           b""]),
                          st.binary(max_size=6)), max_size=7))
def test_vouched_blocks_are_blocks_h2_accepts(headers: list[tuple[bytes, bytes]]) -> None:
    if not vouch_request(headers):
        return
    flags = h2.utilities.HeaderValidationFlags(is_client=False, is_trailer=False, is_response_header=False,
                                               is_push_promise=False)
    list(h2.utilities.validate_headers(headers, flags))  # raises on what h2 refuses


def test_data_beyond_the_window_goes_to_h2() -> None:
    conns = pair()
    c = client()
    c.send_headers(1, request_headers("/etcdserverpb.KV/Range", []))
    feed(conns, c.data_to_send())
    chunk = frame(0x0, 0, 1, b"\x00\x00\x10\x00\x00" + b"\x00" * 16379)  # part of a 1 MiB message
    feed(conns, chunk * 3)  # 49,152 bytes: within the window, and our WINDOW_UPDATE refills it
    assert conns[0].lean is not None
    feed(conns, frame(0x0, 0, 1, b"\x00" * 16384) * 4)  # in one read, before any WINDOW_UPDATE: 1 byte too many
    assert conns[0].lean is None
    assert conns[0].closed and conns[1].closed  # h2's FLOW_CONTROL_ERROR, on both


def test_one_stream_over_the_concurrency_limit_goes_to_h2() -> None:
    conns = pair()
    c = client()
    for sid in range(1, 2 * 256, 2):  # 256 open streams: the limit we enforce
        c.send_headers(sid, request_headers("/etcdserverpb.KV/Range", []))
    feed(conns, c.data_to_send())
    assert conns[0].lean is not None
    feed(conns, frame(0x1, 0x4, 513, c.encoder.encode(request_headers("/etcdserverpb.KV/Range", []))))
    assert conns[0].lean is None


raw_frames = st.lists(st.tuples(st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9, 0xBB]),
                                st.sampled_from([0, 0x1, 0x4, 0x5, 0x8, 0x20, 0xFF]),
                                st.sampled_from([0, 1, 2, 3, 5, 2**31 + 1]), st.binary(max_size=24)), max_size=6)


@PROPS
@given(raw_frames, st.booleans())
def test_hostile_frames_get_h2s_answers(frames: list[tuple[int, int, int, bytes]], call_first: bool) -> None:
    """Frames of every type with any flags, ids and payloads, after a real start: as h2 answers."""
    conns = pair()
    c = client()
    if call_first:
        c.send_headers(1, request_headers("/etcdserverpb.KV/Range", []))
        c.send_data(1, RANGE, end_stream=True)
    try:
        feed(conns, c.data_to_send())
        for kind, flags, sid, payload in frames:
            if conns[0].closed:
                break
            if kind == 0x1 and payload[:1] != b"\xff":  # mostly a real request block
                payload = c.encoder.encode(request_headers("/etcdserverpb.KV/Range", []))
            feed(conns, frame(kind, flags, sid, payload))
    finally:
        for conn in conns:
            conn.close()


def test_a_start_it_cannot_vouch_for_goes_to_h2_from_the_first_byte() -> None:
    starts = {"not the preface": b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + frame(0x4, 0, 0, b""),
              "PING before SETTINGS": PREFACE + frame(0x6, 0, 0, b"12345678") + frame(0x4, 0, 0, b""),
              "SETTINGS ACK first": PREFACE + frame(0x4, 0x1, 0, b"")}
    for name, data in starts.items():
        conns = pair()
        for conn in conns:
            conn.data_to_send()
        for i in range(0, len(data), 7):  # in small reads: the lean reader waits for the whole preface
            feed(conns, data[i:i + 7])
        assert conns[0].lean is None, name

"""Fuzz the gRPC/h2 and gateway paths: hostile input never raises, every stream gets a gRPC status."""

from __future__ import annotations

import base64
import binascii
import json
import struct

import h2.config
import h2.connection
import h2.events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcdsec.honeypot.v3 import service
from etcdsec.honeypot.v3.gateway import json_gateway, jsonrequest
from etcdsec.honeypot.v3.grpc.server import GrpcConnection, frame_message
from etcdsec.honeypot.v3.state import V3State
from etcdsec.honeypot.wire import go_json_errors

from .conftest import make_ctx, session

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PATHS = [*service.METHODS, "/etcdserverpb.KV/Nope", "/nope.Service/X", "/grpc.health.v1.Health/Check", "/", "x",
         "//", "/a/b/c", "/etcdserverpb.KV/Range/"]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CTX, _ = make_ctx(dataset=[(b"/registry/secrets/a", b"tok"), (b"foo", b"bar")])
STATE = V3State(CTX)


def new_conn() -> GrpcConnection:
    conn = GrpcConnection(CTX, STATE, session())
    conn.start()
    conn.data_to_send()
    return conn


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_after_the_preface_never_raise(data: bytes) -> None:
    conn = new_conn()
    conn.receive(PREFACE + data)
    conn.pump()
    assert len(conn.data_to_send()) < 1 << 20


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.binary(max_size=300), st.booleans(),
                          st.sampled_from(["application/grpc", "application/grpc+proto", "text/plain"])),
                min_size=1, max_size=6))
def test_every_grpc_call_gets_a_status(calls: list[tuple[str, bytes, bool, str]]) -> None:
    # grpc-go's trailers may end in a space ("unknown service "), which h2's validation would refuse
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                                                  validate_inbound_headers=False))
    client.initiate_connection()
    server = new_conn()
    unary: set[int] = set()
    refused: set[int] = set()
    for path, payload, framed, ctype in calls:
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "x"),
                                  (":path", path), ("content-type", ctype), ("te", "trailers")])
        client.send_data(sid, frame_message(payload) if framed else payload, end_stream=True)
        method = service.METHODS.get(path)
        if ctype == "text/plain":
            refused.add(sid)
        elif method is None or not method.path.endswith("/Watch"):
            unary.add(sid)
    statuses: dict[int, str] = {}
    reset: set[int] = set()
    for _ in range(100):  # exchange until quiet, acknowledging data as a real client does
        server.receive(client.data_to_send())
        out = server.data_to_send()
        if not out:
            break
        for ev in client.receive_data(out):
            if isinstance(ev, h2.events.DataReceived):
                client.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if isinstance(ev, h2.events.TrailersReceived | h2.events.ResponseReceived):
                status = dict(ev.headers).get("grpc-status")
                if status is not None:
                    statuses[ev.stream_id] = status
            if isinstance(ev, h2.events.StreamReset):
                reset.add(ev.stream_id)
    assert unary <= set(statuses), (unary, statuses)
    assert refused <= reset  # not gRPC: reset like grpc-go does


@FUZZ
@given(st.sampled_from(sorted(service.GATEWAY)), st.sampled_from(["POST", "GET", "PUT"]),
       st.one_of(st.binary(max_size=400),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(
                                  st.sampled_from(["key", "range_end", "value", "ID", "TTL", "limit", "revision",
                                                   "create_request", "compare", "success", "name", "x"]),
                                  c, max_size=5), max_leaves=12).map(lambda v: json.dumps(v).encode())))
def test_gateway_never_raises_and_answers_json_or_go_text(path: str, method: str, body: bytes) -> None:
    result = json_gateway.handle(CTX, STATE, session(), method, path, [], body)
    assert result is not None
    status, headers, payload = result
    assert status in {200, 400, 404, 405, 412, 429, 500, 501, 503}
    if dict(headers).get(b"Content-Type") == b"application/json":
        for line in payload.splitlines():
            json.loads(line)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                                                  allow_infinity=False)
                           | st.text(max_size=10),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=10)


@FUZZ
@given(json_values)
def test_go_json_scanner_accepts_valid_json(value: object) -> None:
    data = json.dumps(value).encode()
    assert go_json_errors.decode_error(data) == (None, len(data))


@FUZZ
@given(st.binary(max_size=200))
def test_go_json_scanner_agrees_with_a_strict_parser_on_objects(data: bytes) -> None:
    err, end = go_json_errors.decode_error(b"{" + data)
    try:
        strict = json.loads(b"{" + data, parse_constant=_reject)
        ok = isinstance(strict, dict)
    except (ValueError, RecursionError):
        ok = False
    if ok:
        assert err is None
    if err is None:
        json.loads((b"{" + data)[:end], parse_constant=_reject)


def _reject(name: str) -> None:
    raise ValueError(name)


@FUZZ
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=%-_ ", max_size=24))
def test_go_base64_rules_match_a_strict_decoder(text: str) -> None:
    try:
        base64.b64decode(text, validate=True)
        strict_ok = len(text) % 4 == 0 and "=" not in text.rstrip("=")
    except (binascii.Error, ValueError):
        strict_ok = False
    assert (go_json_errors.base64_error(text.encode()) is None) == strict_ok


def test_a_message_bigger_than_the_cap_is_refused_without_buffering_it() -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    client.initiate_connection()
    server = new_conn()
    sid = client.get_next_available_stream_id()
    client.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "x"),
                              (":path", "/etcdserverpb.KV/Put"), ("content-type", "application/grpc")])
    client.send_data(sid, b"\x00" + struct.pack(">I", 1 << 30) + b"x" * 100)
    server.receive(client.data_to_send())
    trailers = [dict(ev.headers) for ev in client.receive_data(server.data_to_send())
                if isinstance(ev, h2.events.ResponseReceived | h2.events.TrailersReceived)]
    assert trailers[-1]["grpc-status"] == "8"
    assert trailers[-1]["grpc-message"].startswith("grpc: received message larger than max")


@FUZZ
@given(st.dictionaries(st.sampled_from(["key", "range_end", "rangeEnd", "limit", "revision", "keys_only",
                                        "count_only", "sort_order", "x"]),
                       st.one_of(st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=12),
                                 st.sampled_from(["Zm9v", "AA==", "12", "-3", "DESCEND", "99999999999999999999"])),
                       max_size=5))
def test_fast_json_decoding_agrees_with_json_format(obj: dict[str, object]) -> None:
    from google.protobuf import json_format

    from etcdsec.proto import etcd_v3_pb2 as pb

    body = json.dumps(obj).encode()
    try:
        fast, _ = json_gateway.parse_request(body, pb.RangeRequest)
    except jsonrequest.BadInput:
        fast = None
    try:
        jsonrequest.check_bytes(pb.RangeRequest.DESCRIPTOR, obj)
        slow = json_format.ParseDict(obj, pb.RangeRequest(), ignore_unknown_fields=True)
    except (jsonrequest.BadInput, json_format.ParseError, ValueError, TypeError, AttributeError):
        slow = None
    assert fast == slow


@FUZZ
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n%é", max_size=24))
def test_the_clean_base64_shortcut_only_passes_what_go_accepts(text: str) -> None:
    if jsonrequest.CLEAN_B64.fullmatch(text):
        assert go_json_errors.base64_error(text.encode()) is None
        assert binascii.a2b_base64(text) == base64.b64decode(text)


@FUZZ
@given(st.lists(st.tuples(st.binary(max_size=16), st.binary(max_size=16), st.integers(0, 2**63 - 1)), max_size=4),
       st.text(max_size=20), st.integers(0, 2**64 - 1))
def test_orjson_rendering_is_the_json_dumps_rendering(kvs: list[tuple[bytes, bytes, int]], name: str,
                                                      member: int) -> None:
    from google.protobuf import json_format

    from etcdsec.honeypot.v3.gateway import jsonpb
    from etcdsec.proto import etcd_v3_pb2 as pb

    messages = [
        pb.RangeResponse(header=pb.ResponseHeader(member_id=member, revision=3), count=len(kvs),
                         kvs=[pb.KeyValue(key=k, value=v, mod_revision=r, lease=-r) for k, v, r in kvs]),
        pb.MemberListResponse(members=[pb.Member(ID=member, name=name, peerURLs=[name, "<&>\u2028"])]),
        pb.AuthUserGetResponse(roles=[name, "\x00\x1f\x7f"]),
        pb.WatchResponse(events=[pb.Event(type=pb.Event.DELETE, kv=pb.KeyValue(key=k)) for k, _, _ in kvs]),
    ]
    for msg in messages:
        d = jsonpb.to_dict(msg)
        assert d == json_format.MessageToDict(msg, preserving_proto_field_name=True)
        assert json_gateway.to_json(msg) == json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()


@FUZZ
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=4), st.binary(max_size=4), st.integers(0, 2**63 - 1)),
                max_size=6),
       st.binary(max_size=3), st.sampled_from([b"", b"\x00", b"\xff", b"b"]), st.integers(0, 4),
       st.sampled_from([0, 1, 2]), st.sampled_from([0, 1, 2, 3, 4]), st.booleans(), st.booleans(),
       st.integers(0, 6))
def test_the_gateway_renders_a_range_as_to_json_of_do_range(
        writes: list[tuple[bytes, bytes, int]], key: bytes, end: bytes, limit: int, order: int, target: int,
        keys_only: bool, count_only: bool, min_mod: int) -> None:
    from etcdsec.honeypot.v3.call import Call
    from etcdsec.proto import etcd_v3_pb2 as pb

    ctx, _ = make_ctx(dataset=[(b"a", b"1")])
    state = V3State(ctx)
    ns = state.namespace(None)
    for k, v, lease in writes:
        with ns.store.txn() as txn:
            txn.put(k, v, lease)
            txn.commit()
    r = pb.RangeRequest(key=key, range_end=end, limit=limit, sort_order=order, sort_target=target,  # type: ignore[arg-type]
                        keys_only=keys_only, count_only=count_only, min_mod_revision=min_mod)
    call = Call(state, ns, None, ctx.persona)
    try:
        want = json_gateway.to_json(service.do_range(call, r))
    except service.errors.V3Error as exc:
        want = exc.message.encode()
    try:
        got = json_gateway.range_json(state, service.range_result(call, r))
    except service.errors.V3Error as exc:
        got = exc.message.encode()
    assert got == want

"""The gateway's Range/Put shortcut (simple bodies read without protobuf, answers rendered from the
store) against the general path: the same fields, the same bytes, the same store afterwards."""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcdsec.honeypot.context import Session
from etcdsec.honeypot.v3.gateway import json_gateway, jsonpb, jsonrequest
from etcdsec.honeypot.v3.gateway.plain import PlainPut, PlainRange
from etcdsec.honeypot.v3.state import V3State
from etcdsec.proto import etcd_v3_pb2 as pb

from .conftest import make_ctx

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["key", "range_end", "rangeEnd", "limit", "revision", "keys_only", "keysOnly", "count_only",
         "sort_order", "sort_target", "serializable", "min_mod_revision", "maxCreateRevision", "value", "lease",
         "prev_kv", "prevKv", "ignore_value", "ignore_lease", "x", "Key"]
VALUES = st.one_of(
    st.booleans(), st.none(), st.integers(-2**70, 2**70), st.floats(allow_nan=False), st.text(max_size=8),
    st.sampled_from(["Zm9v", "AA==", "YQ", "YQ==\n", "Zm9vMg==", "", "12", "007", "-3", "1e3", "９",
                     "99999999999999999999", "999999999999999999", "DESCEND", "MOD", "\ud800", "é"]),
    st.lists(st.just("Zm9v"), max_size=2), st.dictionaries(st.just("a"), st.integers(0, 3), max_size=1))
OBJECTS = st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=5)
PLAIN = {pb.RangeRequest: (PlainRange, json_gateway._RANGE_SPEC),
         pb.PutRequest: (PlainPut, json_gateway._PUT_SPEC)}


def _encode(obj: dict[str, Any], style: int) -> bytes:
    text = json.dumps(obj, ensure_ascii=style == 1)
    if style == 2:
        text = " \n" + text + "\t"
    return text.encode("utf-8", "surrogatepass")


def _attrs(cls: type) -> list[str]:
    return [a for a in vars(cls) if not a.startswith("_")]


def test_plain_requests_default_to_the_messages_proto3_defaults() -> None:
    for msg_type, (cls, spec) in PLAIN.items():
        for fd in msg_type.DESCRIPTOR.fields:
            if not fd.is_repeated and hasattr(cls, fd.name):
                assert getattr(cls, fd.name) == fd.default_value, fd.name
        # every field the shortcut may set is one the handlers read from the plain class
        for proto, kind in spec.values():
            assert kind == json_gateway._OTHER or proto in _attrs(cls)
    read_by_range = {"key", "range_end", "limit", "revision", "sort_order", "sort_target", "keys_only", "count_only",
                     "min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"}
    assert read_by_range <= set(_attrs(PlainRange))


@FUZZ
@given(OBJECTS, st.integers(0, 2), st.sampled_from(list(PLAIN)))
def test_simple_fields_are_what_parse_request_sets(obj: dict[str, Any], style: int, msg_type: Any) -> None:
    cls, spec = PLAIN[msg_type]
    body = _encode(obj, style)
    plain = json_gateway.simple_request(body, cls, spec)
    if plain is None:
        return
    msg, used = json_gateway.parse_request(body, msg_type)  # must not fail where the shortcut did not
    assert used == len(body)
    for name in _attrs(cls):
        assert getattr(plain, name) == getattr(msg, name), name


@FUZZ
@given(st.text(alphabet="ABQw+/=\r\n -_\x00é", max_size=14))
def test_the_shortcuts_base64_is_a_subset_of_the_clean_base64(text: str) -> None:
    plain = json_gateway.simple_request(json.dumps({"key": text}).encode(), PlainRange, json_gateway._RANGE_SPEC)
    if plain is not None:
        assert jsonrequest.CLEAN_B64.fullmatch(text)
        assert plain.key == binascii.a2b_base64(text)


def test_the_shortcuts_base64_exhaustively_on_short_strings() -> None:
    # every string of up to 8 of these (padding, line break, a non-base64 char): 488,281 bodies
    for n in range(9):
        for chars in itertools.product("AQ=\n-", repeat=n):
            text = "".join(chars)
            body = b'{"key":"' + text.encode().replace(b"\n", b"\\n") + b'"}'
            plain = json_gateway.simple_request(body, PlainRange, json_gateway._RANGE_SPEC)
            if plain is not None:
                assert jsonrequest.CLEAN_B64.fullmatch(text) and plain.key == binascii.a2b_base64(text), text


def test_the_common_bodies_take_the_shortcut() -> None:
    for body, msg_type in [(b'{"key":"Zm9v"}', pb.RangeRequest),
                           (b'{"key":"Zm9v","range_end":"AA==","limit":"5"}', pb.RangeRequest),
                           (b'{"key":"Zm9v","value":"YmFy","prev_kv":true}', pb.PutRequest)]:
        assert json_gateway.simple_request(body, *PLAIN[msg_type]) is not None


def _general_path_only(state: V3State) -> V3State:
    """A state whose gateway never learns a route: every call takes the general path."""
    state.gateway_memo.max_routes = 0
    return state


def _outcome(ctx: Any, state: V3State, sess: Session, path: str, headers: list[tuple[bytes, bytes]],
             body: bytes) -> object:
    try:
        return json_gateway.handle(ctx, state, sess, "POST", path, headers, body)
    except Exception as exc:  # raw lone surrogates (not UTF-8) still raise in the general path
        return f"raised {type(exc).__name__}: {exc}"


CALLS = st.lists(st.tuples(st.sampled_from(["/v3/kv/range", "/v3/kv/put", "/v3beta/kv/range", "/v3alpha/kv/put"]),
                           OBJECTS, st.integers(0, 2), st.booleans(), st.booleans()), min_size=1, max_size=8)


@FUZZ
@given(st.sampled_from(["3.4.23", "3.5.1"]), CALLS)
def test_the_shortcut_answers_the_bytes_of_the_general_path(
        persona: str, calls: list[tuple[str, dict[str, Any], int, bool, bool]]) -> None:
    ctx, _ = make_ctx(persona, dataset=[(b"foo", b"bar"), (b"foo2", b"baz"), (b"a/\xff", b"\x00<&>")])
    fast = V3State(ctx, clock=lambda: 10.0, wall_clock=lambda: 1e9)
    slow = _general_path_only(V3State(ctx, clock=lambda: 10.0, wall_clock=lambda: 1e9))
    plain, tls = Session("s1", "127.0.0.1", 1, "127.0.0.2", 2379), Session("s2", "127.0.0.3", 1, "127.0.0.2", 2379,
                                                                            tls=True)
    for path, obj, style, token, use_tls in [(p, {"key": "Zm9v", "value": "YQ=="}, 0, False, False)
                                             for p in ("/v3/kv/put", "/v3/kv/range")] + calls:
        body = _encode(obj, style)
        headers = [(b"authorization", b"nope")] if token else []  # lower-cased, as the HTTP readers pass them
        sess = tls if use_tls else plain
        assert _outcome(ctx, fast, sess, path, headers, body) == _outcome(ctx, slow, sess, path, headers, body)
    assert fast.namespace(None).store.range(b"\x00", b"") == slow.namespace(None).store.range(b"\x00", b"")


def test_the_shortcut_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, _ = make_ctx(dataset=[(b"foo", b"bar")])
    state = V3State(ctx)
    for path in ("/v3/kv/range", "/v3/kv/put"):  # the first call of a path teaches the route
        json_gateway.handle(ctx, state, None, "POST", path, [], b'{"key":"Zm9v","value":"YQ=="}')

    def no_parse(*_: object) -> None:
        raise AssertionError("general path")
    monkeypatch.setattr(json_gateway, "parse_request", no_parse)
    got = json_gateway.handle(
        ctx, state, None, "POST", "/v3/kv/put", [], b'{"key":"Zm9v","value":"Yg==","prev_kv":true}'
    )
    assert got is not None and b'"prev_kv":{"key":"Zm9v"' in got[2] and b'"value":"YQ=="' in got[2]
    got = json_gateway.handle(ctx, state, None, "POST", "/v3/kv/range", [], b'{"key":"Zm9v"}')
    assert got is not None and b'"value":"Yg=="' in got[2]


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))  # revision is an int64
def test_the_header_dict_is_to_dict_of_the_header(rev: int, other: int) -> None:
    ctx, _ = make_ctx(dataset=[])
    ctx.identity.cluster_id = 0 if other % 3 == 0 else ctx.identity.cluster_id
    state = V3State(ctx)
    for r in (rev, rev, other, 0):
        assert state.header_dict(r) == jsonpb.to_dict(state.header(r))


def test_remembered_requests_are_bounded_and_answer_as_new() -> None:
    ctx, _ = make_ctx(dataset=[(b"foo", b"bar")])
    fast = V3State(ctx, clock=lambda: 10.0, wall_clock=lambda: 1e9)
    slow = _general_path_only(V3State(ctx, clock=lambda: 10.0, wall_clock=lambda: 1e9))
    memo = fast.gateway_memo
    for i in range(json_gateway.MAX_REMEMBERED + 5):  # bounded: past the cap the table starts over
        put = b'{"key":"Zm9v","value":"%s","prev_kv":true}' % base64.b64encode(b"%d" % (i % 7))
        for path, body in [("/v3/kv/put", put), ("/v3/kv/range", b'{"key":"Zm9v"}')]:
            got = json_gateway.handle(ctx, fast, None, "POST", path, [], body)
            assert got == json_gateway.handle(ctx, slow, None, "POST", path, [], body)
        assert len(memo.ranges) <= json_gateway.MAX_REMEMBERED and len(memo.puts) <= json_gateway.MAX_REMEMBERED
    for i in range(3 * json_gateway.MAX_REMEMBERED):
        json_gateway.handle(ctx, fast, None, "POST", "/v3/kv/range", [], b'{"key":"%s"}' % base64.b64encode(b"%d" % i))
    assert 0 < len(memo.ranges) <= json_gateway.MAX_REMEMBERED
    assert not slow.gateway_memo.routes and not slow.gateway_memo.ranges

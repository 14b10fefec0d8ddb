"""etcd's v3 JSON gateway (grpc-gateway) on the client port, byte-compatible with 3.4 and 3.5.

JSON follows grpc-gateway's jsonpb with OrigName: proto field names, bytes as base64, 64-bit
integers as strings, proto3 defaults omitted. Errors are `{"error","code","message"}` (3.4
orders them error, message, code and streams them chunked with a gRPC trailer).

The HTTP/1 layer calls `handle` first for every request; None means "not a gateway path for this
persona". Returned headers are the gateway's own (Content-Type & co., Go-cased); the HTTP layer
adds Date, framing and CORS. Real etcd sends two kinds of response chunked: the streaming methods
(`is_streaming(path)`: one `{"result":..}` line per chunk) and, in 3.4, RPC errors, flagged by a
`Trailer` header, after whose body the trailers in `TRAILERS` follow. The body is complete either
way, so a layer that frames everything with Content-Length still serves correct content.
"""

from __future__ import annotations

import asyncio
import json
from binascii import a2b_base64, b2a_base64
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import orjson
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from etcdsec.honeypot.context import SensorContext
from etcdsec.honeypot.core.persona import Persona
from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.v3 import errors, service
from etcdsec.honeypot.v3.errors import V3Error
from etcdsec.honeypot.v3.gateway import jsonpb
from etcdsec.honeypot.v3.gateway.jsonrequest import (
    FLAT,
    BadInput,
    fields_of,
    json_object,
    parse_request,
)
from etcdsec.honeypot.v3.gateway.plain import PlainPut, PlainRange
from etcdsec.honeypot.v3.mvcc import KeyRev
from etcdsec.honeypot.v3.state import V3State
from etcdsec.proto import etcd_v3_pb2 as pb

Headers = list[tuple[bytes, bytes]]  # a request's: names lower-cased, as Request.headers; replies': Go-cased
Reply = tuple[int, Headers, bytes]

JSON_OK: Headers = [(b"Content-Type", b"application/json"),
                    (b"Grpc-Metadata-Content-Type", b"application/grpc")]
STREAM_OK: Headers = list(JSON_OK)
TRAILERS: Headers = [(b"Grpc-Trailer-Content-Type", b"application/grpc")]
# etcd 3.4 streams an RPC error chunked, announcing the trailer it sends after the body.
ERROR_34: Headers = [(b"Content-Type", b"application/json"), (b"Trailer", b"Grpc-Trailer-Content-Type")]
_TEXT: Headers = [(b"Content-Type", b"text/plain; charset=utf-8"), (b"X-Content-Type-Options", b"nosniff")]
MAX_STREAM_REQUESTS = 64  # JSON requests honoured in one streaming body


def to_json(msg: Message) -> bytes:
    """grpc-gateway's marshalling: compact, OrigName, defaults omitted, int64 as strings.

    orjson writes the same bytes as json.dumps(separators=(",", ":"), ensure_ascii=False) for what
    to_dict holds (protobuf strings: valid Unicode; ints within 64 bits; no floats), 10x faster.
    """
    d = jsonpb.to_dict(msg)
    try:
        return orjson.dumps(d)
    except orjson.JSONEncodeError:  # nested past orjson's 255 levels (a deep txn's responses)
        return json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()


def grpc_gateway_release(persona: Persona) -> tuple[int, int]:
    """The grpc-gateway runtime the persona's build links: etcd 3.5 vendors v1.16, 3.4 v1.9, 3.3 and
    3.2 v1.3; a distribution build may link its own (persona key `grpc_gateway`, e.g. Debian 11's
    3.3.25: 1.6.4)."""
    own = persona.extra.get("grpc_gateway")
    if own:
        major, minor = str(own).split(".")[:2]
        return int(major), int(minor)
    return {(3, 5): (1, 16), (3, 4): (1, 9)}.get(persona.major_minor, (1, 3))


def _error_body(code: int, message: str, gateway: tuple[int, int]) -> bytes:
    """grpc-gateway's error body: v1.16 error, code, message; v1.6 (measured, Debian's 3.3.25) and
    v1.9 (3.4) error, message, code; v1.3 (upstream 3.2/3.3) has no "message"."""
    msg = json.dumps(message, ensure_ascii=False)
    if gateway < (1, 6):
        return f'{{"error":{msg},"code":{code}}}'.encode()
    if gateway < (1, 16):
        return f'{{"error":{msg},"message":{msg},"code":{code}}}'.encode()
    return f'{{"error":{msg},"code":{code},"message":{msg}}}'.encode()


def reads_body(canon: str, persona: Persona) -> bool:
    """Whether grpc-gateway decodes a POST's body on this canonical path (a route it serves)."""
    return service.gateway_method(canon, persona) is not None


def is_streaming(ctx: SensorContext, path: str) -> bool:
    """Whether real etcd answers this path chunked, one JSON line per chunk (watch, keepalive)."""
    canon = ctx.persona.v3_path(path.split("?", 1)[0])
    m = service.GATEWAY.get(canon or "")
    return m is not None and (m.streaming or m.server_stream)


# Over TLS the gateway's own gRPC client goes through etcd's TLS HTTP handler and its CORS wrapper,
# whose response headers come back as gRPC metadata on every request that reached an RPC.
TLS_RPC_METADATA: Headers = [
    (b"Grpc-Metadata-Access-Control-Allow-Headers", b"accept, content-type, authorization"),
    (b"Grpc-Metadata-Access-Control-Allow-Methods", b"POST, GET, OPTIONS, PUT, DELETE"),
    (b"Grpc-Metadata-Access-Control-Allow-Origin", b"*"),
    (b"Grpc-Metadata-Content-Type", b"application/grpc"),
    (b"Grpc-Metadata-Trailer", b"Grpc-Status"),
    (b"Grpc-Metadata-Trailer", b"Grpc-Message"),
    (b"Grpc-Metadata-Trailer", b"Grpc-Status-Details-Bin"),
]
TLS_RPC_METADATA_33: Headers = [h for h in TLS_RPC_METADATA if b"-Access-Control-" not in h[0]]


def handle(ctx: SensorContext, state: V3State, session: Session | None, method: str, path: str,
           headers: Headers, body: bytes, body_error: str = "") -> Reply | Coroutine[Any, Any, Reply] | None:
    """None: not a gateway path; a coroutine when the answer comes from the keyspace owner. `headers`:
    the request's as sent, names lower-cased (`Request.headers`); `body_error`: Go's read of the body
    failed with it after `body`."""
    if body_error:
        failed = _body_read_failed(ctx, method, path, body, body_error)
        if failed is not None:
            return failed
    is_range = state.gateway_memo.routes.get(path)
    if is_range is not None and method == "POST" and ctx.persona is state.ctx.persona:
        # a forwarding worker: a simple body is answered when the owner's reply comes (a Range from
        # the replica when it is current)
        if state.remote is not None:
            plain = _simple_plain(state, is_range, body)
            if plain is not None and not (is_range and service.reads_here(state, plain.revision, _token(headers))):
                return _forwarded_simple(state, session, is_range, headers, body)
        fast = _simple_call(state, session, is_range, headers, body)
        if fast is not None:  # it reached the RPC
            if session is not None and session.tls:
                return fast[0], _with_tls_metadata(fast[1], ctx.persona), fast[2]
            return fast
    answer = _handle(ctx, state, session, method, path, headers, body)
    if answer is None:
        return None
    (status, out, payload), reached_rpc = answer
    if reached_rpc and session is not None and session.tls:
        out = _with_tls_metadata(out, ctx.persona)
    return status, out, payload


def _body_read_failed(ctx: SensorContext, method: str, path: str, body: bytes, error: str) -> Reply | None:
    """The answer to a body Go could not read, or None to serve what came before the error:
    grpc-gateway 1.16 (3.5) reads the whole body first, so the read error is the answer; 1.9 (3.4)
    decodes the first JSON value as it reads, so a value complete before the error is served."""
    m = service.gateway_method(ctx.persona.v3_path(path.split("?", 1)[0]) or "", ctx.persona)
    if m is None or method != "POST" or m.streaming:
        return None
    version = ctx.persona.major_minor
    if version < (3, 5) and body.strip(b" \t\r\n"):  # no value before the error: the error it is
        try:
            parse_request(body, m.request)
            return None
        except BadInput:
            pass
    return 400, [(b"Content-Type", b"application/json")], _error_body(3, error, grpc_gateway_release(ctx.persona))


def _with_tls_metadata(out: Headers, persona: Persona) -> Headers:
    kept = [(k, v) for k, v in out if k.lower() not in (b"grpc-metadata-content-type", b"trailer")]
    at = next((i + 1 for i, (k, _) in enumerate(kept) if k.lower() == b"content-type"), 0)
    # before 3.4 etcd's TLS handler is not behind its CORS wrapper: no CORS headers come back (3.3.25)
    metadata = TLS_RPC_METADATA if persona.major_minor >= (3, 4) else TLS_RPC_METADATA_33
    return kept[:at] + metadata + kept[at:]


def _handle(ctx: SensorContext, state: V3State, session: Session | None, method: str, path: str,
            headers: Headers, body: bytes) -> tuple[Reply, bool] | None:
    persona = ctx.persona
    if not persona.grpc_enabled:
        return None
    canon = persona.v3_path(path.split("?", 1)[0])
    if canon is None:
        return None
    m = service.gateway_method(canon, persona)
    if m is None:
        return (404, list(_TEXT), b"Not Found\n"), False
    if method != "POST":
        return (405, list(_TEXT), b"Method Not Allowed\n"), False
    version = persona.major_minor
    gateway = grpc_gateway_release(persona)
    v34 = version < (3, 5)
    if m.streaming:
        return _stream(state, session, m, body), True
    memo = state.gateway_memo
    if m.handler in _SIMPLE and "?" not in path and len(memo.routes) < memo.max_routes \
            and persona is state.ctx.persona:  # a handful: each served prefix + /kv/range or /kv/put
        memo.routes[path] = m.handler is service.do_range
    try:
        # before 3.4 the generated gateway code fails an empty body with io.EOF (3.4's lets it through)
        request, _ = parse_request(body, m.request, empty_ok=version >= (3, 4))
    except BadInput as exc:
        return (400, [(b"Content-Type", b"application/json")], _error_body(3, str(exc), gateway)), False
    token = _token(headers)
    if m.server_stream:
        try:
            lines = service.invoke_stream(state, session, m, request, token)
        except V3Error as exc:
            return (errors.grpc_gateway_http_status(exc.code, v34), [(b"Content-Type", b"application/json")],
                    _error_body(exc.code, exc.message, gateway)), True
        return (200, list(STREAM_OK), b"".join(_result(r) for r in lines)), True
    try:
        payload = _answer(state, session, m, request, token)
    except V3Error as exc:
        return _rpc_error(exc, persona), True
    return (200, list(JSON_OK), payload), True


# Paths already seen to be a Range or Put go into the sensor's GatewayMemo. Only paths without a
# query go in, which makes them one per served prefix and method; its max_routes is a backstop.
_SIMPLE = (service.do_range, service.put)


def _token(headers: Headers) -> str | None:
    """grpc-gateway turns Authorization and Grpc-Metadata-Token into the metadata etcd checks (text:
    the auth store compares it with the tokens it issued)."""
    for k, v in headers:
        if k == b"authorization" or k == b"grpc-metadata-token":
            return v.decode("latin-1")
    return None


def _rpc_error(exc: V3Error, persona: Persona) -> Reply:
    v34 = persona.major_minor < (3, 5)
    status = errors.grpc_gateway_http_status(exc.code, v34)
    body = _error_body(exc.code, exc.message, grpc_gateway_release(persona))
    if v34:
        return status, list(ERROR_34), body
    return status, [(b"Content-Type", b"application/json")], body


def _simple_call(state: V3State, session: Session | None, is_range: bool, headers: Headers,
                 body: bytes) -> Reply | None:
    """A Range or Put whose body `simple_request` reads: served without the protobuf request. None:
    not such a body, the general path decides (same bytes either way:
    tests/honeypot/v3/test_gateway_shortcuts.py)."""
    plain = _simple_plain(state, is_range, body)
    if plain is None:
        return None
    persona = state.ctx.persona
    try:
        payload = _simple_json(state, session, is_range, plain, _token(headers))
    except V3Error as exc:
        return _rpc_error(exc, persona)
    return 200, list(JSON_OK), payload


async def _forwarded_simple(state: V3State, session: Session | None, is_range: bool, headers: Headers,
                            body: bytes) -> Reply:
    """A simple Range/Put body answered by the keyspace owner's `simple_json` (--shared-keyspace)."""
    assert state.remote is not None
    try:
        payload = await state.remote.call_async(SIMPLE_RANGE if is_range else SIMPLE_PUT,
                                                session.src_ip if session is not None else "", _token(headers), body)
        reply: Reply = 200, list(JSON_OK), payload
    except V3Error as exc:
        reply = _rpc_error(exc, state.ctx.persona)
    if session is not None and session.tls:
        return reply[0], _with_tls_metadata(reply[1], state.ctx.persona), reply[2]
    return reply


SIMPLE_RANGE, SIMPLE_PUT = "gateway/simple-range", "gateway/simple-put"  # forwarded as their JSON body


def _simple_plain(state: V3State, is_range: bool, body: bytes) -> Any:
    memo = state.gateway_memo
    return _plain_request(body, memo.ranges, PlainRange, _RANGE_SPEC) if is_range else \
        _plain_request(body, memo.puts, PlainPut, _PUT_SPEC)


def _simple_json(state: V3State, session: Session | None, is_range: bool, plain: Any, token: str | None) -> bytes:
    call = service.Call(state, state.namespace(session), session, state.ctx.persona, token)
    if is_range:
        return range_json(state, service.range_result(call, plain))
    return put_json(state, *service.put_result(call, plain))


def simple_json(state: V3State, session: Session | None, path: str, body: bytes, token: str | None) -> bytes:
    """The owner's side of a forwarded simple Range/Put body (`path` SIMPLE_RANGE or SIMPLE_PUT)."""
    is_range = path == SIMPLE_RANGE
    plain = _simple_plain(state, is_range, body)
    if plain is None:  # the forwarding worker found it simple: the same function says the same here
        raise V3Error(errors.Code.INTERNAL, "etcdserver: unknown error")
    return _simple_json(state, session, is_range, plain, token)


def _plain_request(body: bytes, table: dict[bytes, Any], kind: type[Any], spec: dict[str, tuple[str, int]]) -> Any:
    """The plain request a simple body reads as, remembered for small bodies; None: not simple."""
    small = len(body) <= MAX_REMEMBERED_BODY
    plain = table.get(body) if small else None
    if plain is None:
        plain = simple_request(body, kind, spec)
        if plain is not None and small:
            _remember(table, body, plain)
    return plain


# Requests repeat (scanners, dumps, polling clients): a small body's plain request is a pure
# function of its bytes, so it is read once. Handlers only read a plain request, never change it.
MAX_REMEMBERED_BODY = 512
MAX_REMEMBERED = 1024  # per method and sensor; the table starts over when full


def _remember(table: dict[bytes, Any], body: bytes, request: Any) -> None:
    if len(table) >= MAX_REMEMBERED:
        table.clear()
    table[body] = request


_BYTES, _INT64, _BOOL, _OTHER = range(4)


def _simple_spec(desc: Any) -> dict[str, tuple[str, int]]:
    """JSON name (proto and lowerCamel) -> (proto name, kind) for one request type; _OTHER: a field
    the shortcut leaves to the general path (enums, strings, repeated, messages)."""
    spec: dict[str, tuple[str, int]] = {}
    for name, fd in fields_of(desc).items():
        t = fd.type
        kind = (_OTHER if fd.is_repeated else _BYTES if t == FieldDescriptor.TYPE_BYTES
                else _INT64 if t == FieldDescriptor.TYPE_INT64 else _BOOL if t == FieldDescriptor.TYPE_BOOL
                else _OTHER)
        spec[name] = (fd.name, kind)
    return spec


_RANGE_SPEC = _simple_spec(pb.RangeRequest.DESCRIPTOR)
_P = TypeVar("_P", PlainRange, PlainPut)
_PUT_SPEC = _simple_spec(pb.PutRequest.DESCRIPTOR)


def simple_request(body: bytes, cls: type[_P], spec: dict[str, tuple[str, int]]) -> _P | None:
    """A plain request with the fields parse_request would set, for a body it reads without
    json_format: one flat object, no escapes (no lone surrogates to mend), clean base64 for bytes,
    digits or small non-negative ints for int64, JSON booleans for bools. None for anything else."""
    if b"\\u" in body:
        return None
    obj = json_object(body)
    if obj is None:
        return None
    out = cls()
    for name, value in obj.items():
        field = spec.get(name)
        if field is None:
            if type(value) in FLAT:
                continue  # unknown fields are ignored, as etcd's gateway does
            return None
        proto, kind = field
        tv = type(value)
        if kind == _BYTES and tv is str:
            # strict base64 of whole quads, no excess padding: a subset of CLEAN_B64, cheaper than
            # the regex (tests/honeypot/v3/test_gateway_shortcuts.py); anything else falls back
            if len(value) % 4 or value.endswith("==="):
                return None
            try:
                setattr(out, proto, a2b_base64(value, strict_mode=True))
            except ValueError:  # binascii.Error is one; non-ASCII text raises ValueError
                return None
        elif kind == _INT64 and tv is int and 0 <= value < 1 << 31:
            setattr(out, proto, value)
        elif kind == _INT64 and tv is str and value.isascii() and value.isdigit() and len(value) < 19:
            setattr(out, proto, int(value))
        elif kind == _BOOL and tv is bool:
            setattr(out, proto, value)
        else:
            return None
    return out


def _answer(state: V3State, session: Session | None, m: service.Method, request: Message,
            token: str | None) -> bytes:
    """A unary call's JSON answer. Range and Put, the hot paths, go from the store to JSON without
    building the protobuf response (the same bytes: tests/honeypot/v3/test_fuzz.py)."""
    if state.remote is None:  # with --shared-keyspace the store is the owner's: the protobuf call goes there
        if m.handler is service.do_range:
            assert isinstance(request, pb.RangeRequest)
            call = service.Call(state, state.namespace(session), session, state.ctx.persona, token)
            return range_json(state, service.range_result(call, request))
        if m.handler is service.put:
            assert isinstance(request, pb.PutRequest)
            call = service.Call(state, state.namespace(session), session, state.ctx.persona, token)
            return put_json(state, *service.put_result(call, request))
    return to_json(service.invoke(state, session, m, request, token))


def range_json(state: V3State, res: service.RangeResult) -> bytes:
    """to_json(RangeResponse) from a RangeResult: fields in number order, zero values omitted."""
    out: dict[str, Any] = {"header": state.header_dict(res.revision)}
    if res.kvs:
        out["kvs"] = [_kv_dict(kv, res.keys_only) for kv in res.kvs]
    if res.more:
        out["more"] = True
    if res.count:
        out["count"] = str(res.count)
    return orjson.dumps(out)


def put_json(state: V3State, revision: int, prev: KeyRev | None) -> bytes:
    """to_json(PutResponse) from service.put_result."""
    if prev is None:
        return orjson.dumps({"header": state.header_dict(revision)})
    return orjson.dumps({"header": state.header_dict(revision), "prev_kv": _kv_dict(prev, False)})


def _kv_dict(kv: KeyRev, keys_only: bool) -> dict[str, str]:
    """jsonpb.to_dict(KeyValue) (base64 inlined: no call per bytes field)."""
    d: dict[str, str] = {}
    if kv.key:
        d["key"] = b2a_base64(kv.key, newline=False).decode("ascii")
    if kv.create_revision:
        d["create_revision"] = str(kv.create_revision)
    if kv.mod_revision:
        d["mod_revision"] = str(kv.mod_revision)
    if kv.version:
        d["version"] = str(kv.version)
    if kv.value and not keys_only:
        d["value"] = b2a_base64(kv.value, newline=False).decode("ascii")
    if kv.lease:
        d["lease"] = str(kv.lease)
    return d


def _stream_requests(m: service.Method, body: bytes) -> list[Message]:
    requests: list[Message] = []
    rest = body
    while rest.strip() and len(requests) < MAX_STREAM_REQUESTS:
        try:
            req, used = parse_request(rest, m.request)
        except BadInput:
            break
        requests.append(req)
        rest = rest[used:]
    return requests


def _stream(state: V3State, session: Session | None, m: service.Method, body: bytes) -> Reply:
    """/v3/watch and /v3/lease/keepalive: each JSON request in the body gets its `{"result":..}` lines.

    This is what is known when the request body ends (created, replayed history). A real etcd keeps
    a watch response open for later events: `live_watch` below does that for an HTTP layer that can
    stream.
    """
    requests = _stream_requests(m, body)
    out: list[bytes] = []
    if m.path.endswith("/Watch"):
        stream = service.open_watch(state, session, state.ctx.limits.max_watches_per_source)
        try:
            for req in requests:
                assert isinstance(req, pb.WatchRequest)
                stream.handle(req)
            out.extend(_result(r) for r in stream.pending)
        finally:
            stream.close()
    else:
        for req in requests:
            assert isinstance(req, pb.LeaseKeepAliveRequest)
            out.append(_result(service.keepalive(state, session, req)))
    return 200, list(STREAM_OK), b"".join(out)


def _result(msg: Message) -> bytes:
    return b'{"result":' + to_json(msg) + b"}\n"


async def live_watch(ctx: SensorContext, state: V3State, session: Session | None, path: str,
                     body: bytes) -> AsyncIterator[bytes]:
    """A /v3/watch response as real etcd streams it: the lines `handle` returned, then one line per
    later event, until the client leaves (the connection layer cancels this) or, when set,
    ctx.limits.wait_timeout_s has passed.

    For the HTTP layer: use `live_watch(...)` as the chunk source instead of the body's lines when
    `is_streaming(path)` and the path is a watch (`is_watch(path)`).
    """
    m = service.GATEWAY.get(ctx.persona.v3_path(path.split("?", 1)[0]) or "")
    if m is None or not m.path.endswith("/Watch"):
        return
    ready = asyncio.Event()
    stream = service.open_watch(state, session, ctx.limits.max_watches_per_source, ready.set)
    bound = ctx.limits.wait_timeout_s
    deadline = asyncio.get_running_loop().time() + bound if bound > 0 else None
    try:
        for req in _stream_requests(m, body):
            assert isinstance(req, pb.WatchRequest)
            stream.handle(req)
        while True:
            while stream.pending:
                yield _result(stream.pending.popleft())
            left = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if left is not None and left <= 0:
                return
            ready.clear()
            try:
                await asyncio.wait_for(ready.wait(), timeout=left)
            except TimeoutError:
                return
    finally:
        stream.close()


class LiveWatch:
    """A watch fed message by message (the gateway's WebSocket face, where grpc-websocket-proxy turns
    each frame into a request on one Watch stream): results as they happen, until `close`."""

    def __init__(self, ctx: SensorContext, state: V3State, session: Session | None, path: str) -> None:
        self.method = service.GATEWAY[ctx.persona.v3_path(path.split("?", 1)[0]) or ""]
        self.ready = asyncio.Event()  # set when results wait in `lines`
        self.stream = service.open_watch(state, session, ctx.limits.max_watches_per_source, self.ready.set)

    def feed(self, message: bytes) -> None:
        for req in _stream_requests(self.method, message):
            assert isinstance(req, pb.WatchRequest)
            self.stream.handle(req)
        if self.stream.pending:
            self.ready.set()

    def watching(self) -> bool:
        """At least one watch is open: a quiet socket is waiting for events, not idle."""
        return bool(self.stream.watchers)

    def lines(self) -> list[bytes]:
        """The results so far, each a `{"result":...}` line without its newline."""
        self.ready.clear()
        out = []
        while self.stream.pending:
            out.append(_result(self.stream.pending.popleft())[:-1])
        return out

    def close(self) -> None:
        self.stream.close()


def is_watch(ctx: SensorContext, path: str) -> bool:
    m = service.GATEWAY.get(ctx.persona.v3_path(path.split("?", 1)[0]) or "")
    return m is not None and m.path.endswith("/Watch")

"""HTTP/1.1 on the client and peer ports: h11 parses, handlers answer as etcd, Go's bytes go out.

Every request becomes one `http.request` event; unparsable input becomes `malformed` with the
raw bytes. Request line garbage closes silently (etcd's cmux drops what is not HTTP), header
errors get Go's `400 Bad Request`, a missing Host gets Go's exact text.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import importlib
import ipaddress
import posixpath
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import h11

from etcdsec.honeypot import gohttp, websocket
from etcdsec.honeypot.context import SensorContext, Session
from etcdsec.honeypot.gohttp import Response, json_response, method_not_allowed, not_found, text_error
from etcdsec.honeypot.guard import Guard, trusted
from etcdsec.honeypot.request import Request
from etcdsec.honeypot.surface import (
    cluster_id_hex,
    debug_vars_body,
    metrics_body,
    peer_members_body,
    raft_probing_body,
    version_body,
)
from etcdsec.honeypot.v2http import V2Api
from etcdsec.honeypot.v2store import V2Store

READ_SIZE = 65_536
CMUX_LINE = 4096  # cmux's maxHTTPRead
MAX_WS_MESSAGES = 64  # requests honoured on one WebSocket stream
MAX_V2_NAMESPACES = 256


def body_fields(body: bytes, limit: int) -> dict[str, Any]:
    """An event's view of a body: text when it is UTF-8, else base64; always bounded."""
    if not body:
        return {}
    cut = body[:limit]
    out: dict[str, Any] = {"body_len": len(body)}
    try:
        out["body"] = cut.decode("utf-8")
    except UnicodeDecodeError:
        out["body_b64"] = base64.b64encode(cut).decode()
    if len(body) > limit:
        out["body_truncated"] = True
    return out


def _load_gateway() -> Any | None:
    try:
        return importlib.import_module("etcdsec.honeypot.v3.gateway")
    except ImportError:  # v3 side not there yet: answer as an etcd with the gateway off
        return None


class ClientApp:
    """Routes of etcd's client port for the persona; `v3_state` comes from the v3 side (or None)."""

    def __init__(self, ctx: SensorContext, v2: V2Store | None = None, v3_state: Any | None = None) -> None:
        self.ctx = ctx
        self.v2_store = v2 or V2Store(start_index=3, max_keys=ctx.limits.max_keys,
                                      max_bytes=ctx.limits.max_store_bytes, max_watchers=ctx.limits.max_watches)
        self.v2 = V2Api(ctx, self.v2_store)
        # --namespace-writes: each source gets its own copy of the seeded v2 store (LRU-bounded)
        self.v2_by_source: OrderedDict[str, V2Api] = OrderedDict()
        self.v3_state = v3_state
        self.gateway = _load_gateway() if v3_state is not None else None
        self.cors = bool(ctx.persona.extra.get("cors", True))
        self.cmux = ctx.persona.grpc_enabled  # one port for HTTP and gRPC: cmux picks the protocol
        self.metrics_requests = 0

    async def h2_request(self, session: Session, method: str, path: str, headers: list[tuple[bytes, bytes]],
                         body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The same routes for a non-gRPC HTTP/2 stream (TLS + ALPN h2), framed as Go's h2 server does."""
        decoded = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers
                   if not k.startswith(b":")]
        req = Request(method, path, decoded, body)
        check = path.encode("latin-1", "replace") + b"\n" + b"\n".join(v for _, v in headers) + b"\n" + body
        self.ctx.honeytokens.check(session, check)
        resp = await self.handle(session, req)
        if resp.stream is not None:  # h2 streams are not held open here: send what is known
            chunks = [piece async for piece in resp.stream]  # type: ignore[attr-defined]
            resp.body = b"".join(chunks)
        out = gohttp.h2_headers(resp, cors=self.cors, head=method == "HEAD")
        self.ctx.events.emit("http.request", session, method=method, path=path, http_version="2",
                             headers=[[k, v] for k, v in decoded],
                             user_agent=next((v for k, v in decoded if k == "user-agent"), None),
                             status=resp.status, tls=session.tls or None,
                             **body_fields(body, self.ctx.limits.max_logged_body))
        return resp.status, out, b"" if method == "HEAD" else resp.body

    def _v2_for(self, session: Session) -> V2Api:
        if not self.ctx.namespace_writes:
            return self.v2
        api = self.v2_by_source.get(session.src_ip)
        if api is None:
            api = V2Api(self.ctx, copy.deepcopy(self.v2_store))
            self.v2_by_source[session.src_ip] = api
            if len(self.v2_by_source) > MAX_V2_NAMESPACES:
                self.v2_by_source.popitem(last=False)
        else:
            self.v2_by_source.move_to_end(session.src_ip)
        return api

    def subtrees(self) -> list[str]:
        """ServeMux patterns ending in "/": a request for the bare name is redirected to them."""
        trees = [p + "/" for p in self.ctx.persona.v3_prefixes_served] if self.gateway is not None else []
        if self.ctx.persona.v2_enabled:
            trees += ["/v2/keys/", "/v2/members/", "/v2/auth/"]
        return trees

    async def handle(self, session: Session, req: Request) -> Response:
        clean = _clean_path(req.raw_path)
        if clean != req.raw_path and req.method != "CONNECT":
            return _redirect(clean, req)
        if req.method == "OPTIONS":  # etcd's CORS wrapper answers every preflight (headers only with --cors)
            return Response(200, b"")
        path = req.path
        if path + "/" in self.subtrees() and path not in ("/v2/keys", "/v2/members"):
            return _redirect(path + "/", req)
        if path == "/version":
            return json_response(200, version_body(self.ctx)) if req.method == "GET" else method_not_allowed("GET")
        if path == "/health":
            if req.method != "GET":
                return method_not_allowed("GET")
            return Response(200, self.ctx.persona.health_body.encode(), sniff_type=True)
        if path == "/metrics":
            self.metrics_requests += 1
            return Response(200, metrics_body(self.ctx, self.metrics_requests),
                            [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])
        if path == "/debug/vars":
            return Response(200, debug_vars_body(self.ctx), [("Content-Type", "application/json; charset=utf-8")])
        if path.startswith("/v2/") and self.ctx.persona.v2_enabled:
            return await self._v2_for(session).handle(req)
        if self.gateway is not None and self.ctx.persona.v3_path(path) is not None and _wants_websocket(req):
            # etcd wraps the gateway in grpc-websocket-proxy (gorilla): GET upgrades, others are refused
            if req.method != "GET":
                return text_error(405, "Method Not Allowed", [("Sec-Websocket-Version", "13")])
            streaming = getattr(self.gateway, "is_streaming", None)
            if streaming is not None and streaming(self.ctx, path) and req.header("sec-websocket-key"):
                return Response(101, b"", websocket=path)
        if self.gateway is not None and self.ctx.persona.v3_path(path) is not None:
            raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in req.headers]
            result = self.gateway.handle(self.ctx, self.v3_state, session, req.method, path, raw_headers, req.body)
            if asyncio.iscoroutine(result):
                result = await result
            if result is not None:
                status, headers, body = result
                kept = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers
                        if k.lower() not in (b"date", b"content-length")]
                resp = Response(status, body, kept)
                if any(k.lower() == "trailer" for k, _ in kept):  # 3.4 streams RPC errors with a trailer
                    resp.trailers = [(k.decode(), v.decode()) for k, v in getattr(self.gateway, "TRAILERS", [])]
                streaming = getattr(self.gateway, "is_streaming", None)
                if streaming is not None and streaming(self.ctx, path):
                    resp.stream = _lines(body)  # watch / keepalive: one JSON line per chunk
                return resp
        return not_found()


def _wants_websocket(req: Request) -> bool:
    upgrade = (req.header("upgrade") or "").lower()
    connection = {t.strip().lower() for t in (req.header("connection") or "").split(",")}
    return upgrade == "websocket" and "upgrade" in connection


async def _lines(body: bytes) -> AsyncIterator[bytes]:
    for line in body.splitlines(keepends=True):
        yield line


class PeerApp:
    """The peer port as a scanner sees it: /members, /version, /raft/probing, and the raft and
    lease endpoints refusing what is not a peer (etcd checks versions and the cluster id first)."""

    def __init__(self, ctx: SensorContext) -> None:
        self.ctx = ctx
        self.cors = False
        self.cmux = False  # the peer port is served by net/http alone

    async def handle(self, session: Session, req: Request) -> Response:
        clean = _clean_path(req.raw_path)
        if clean != req.raw_path and req.method != "CONNECT":
            return _redirect(clean, req)
        cid = [("X-Etcd-Cluster-Id", cluster_id_hex(self.ctx))]
        if req.path in ("/raft", "/raft/"):
            return method_not_allowed("POST") if req.method != "POST" else self._incompatible(req, cid)
        if req.path.startswith("/raft/stream/") or req.path.startswith("/raft/snapshot"):
            return self._incompatible(req, cid)
        if req.path.startswith("/leases"):
            if req.method != "POST":
                return text_error(405, "Method Not Allowed")
            return self._incompatible(req, cid)
        if req.path.startswith("/members/promote/"):
            if req.method != "POST":
                return method_not_allowed("POST")
            return text_error(404, "membership: ID not found", cid)
        if req.path == "/members":
            if req.method != "GET":
                return method_not_allowed("GET")
            return json_response(200, peer_members_body(self.ctx), [("X-Etcd-Cluster-Id", cluster_id_hex(self.ctx))])
        if req.path == "/version":
            return json_response(200, version_body(self.ctx)) if req.method == "GET" else method_not_allowed("GET")
        if req.path == "/raft/probing":
            return Response(200, raft_probing_body(), sniff_type=True)
        return not_found()

    def _incompatible(self, req: Request, cid: list[tuple[str, str]]) -> Response:
        """A request without a peer's version headers, or from another cluster: 412 as etcd answers."""
        version = [("X-Server-Version", self.ctx.persona.version)]
        if req.header("x-server-version") is None or req.header("x-min-cluster-version") is None:
            return text_error(412, "incompatible version", cid + version)
        if req.header("x-etcd-cluster-id") != cluster_id_hex(self.ctx):
            return text_error(412, "cluster ID mismatch", cid + version)
        return text_error(400, "bad request")


def _clean_path(p: str) -> str:
    """Go's ServeMux cleanPath: resolve . and .., squeeze //, keep a trailing slash."""
    if not p.startswith("/"):
        p = "/" + p
    cleaned = posixpath.normpath(p)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if p.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def _redirect(location: str, req: Request) -> Response:
    query = req.target.split("?", 1)[1] if "?" in req.target else ""
    target = location + ("?" + query if query else "")
    body = f'<a href="{target}">Moved Permanently</a>.\n\n'.encode() if req.method in ("GET", "HEAD") else b""
    headers = [("Location", target)]
    if body:
        headers.append(("Content-Type", "text/html; charset=utf-8"))
    return Response(301, body, headers)


class Http1Connection:
    """One HTTP/1.x connection: parse with h11, answer, log, repeat until closed."""

    def __init__(self, app: ClientApp | PeerApp, ctx: SensorContext, session: Session, guard: Guard | None,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 trusted_xff: list[Any] | None = None) -> None:
        self.app, self.ctx, self.session, self.guard = app, ctx, session, guard
        self.reader, self.writer = reader, writer
        # the trusted proxy networks when X-Forwarded-For is honoured (not when PROXY protocol named
        # the client already)
        self.trusted_xff = None if session.peer_ip else trusted_xff
        self._socket_peer = session.src_ip
        limits = ctx.limits
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self.received = bytearray()  # raw bytes of the request being parsed, for malformed events
        self._lowered: list[tuple[bytes, bytes, bytes]] = []
        self._continued = False
        self._line: bytearray | None = bytearray()  # request line being collected (see _feed)
        self.requests = 0

    async def run(self, initial: bytes = b"") -> None:
        if initial:
            self._feed(initial)
        while True:
            try:
                done = await self._one_request()
            except h11.RemoteProtocolError as exc:
                await self._protocol_error(exc)
                return
            except _Drop:
                return
            if not done:
                return

    def _cmux(self) -> bool:
        """Whether etcd's cmux sits in front (plain-text client port of a gRPC-capable version)."""
        return self.app.cmux and not self.session.tls

    def _feed(self, data: bytes) -> None:
        if len(self.received) < self.ctx.limits.max_logged_body:
            self.received += data[: self.ctx.limits.max_logged_body - len(self.received)]
        if self._line is not None:  # still collecting the request line
            self._line += data
            end = self._line.find(b"\n")
            if end < 0 and len(self._line) < self.ctx.limits.max_header_bytes and data:
                return
            line, rest = (bytes(self._line[:end + 1]), bytes(self._line[end + 1:])) if end >= 0 \
                else (bytes(self._line), b"")
            self._line = None
            data = _escape_target(line) + rest
            if not data:
                self.conn.receive_data(b"")  # EOF while waiting for the line
                return
        self.conn.receive_data(data)

    async def _read(self) -> bool:
        if self.conn.they_are_waiting_for_100_continue and not self._continued:
            self._continued = True  # once per request, as Go's server does when the body is read
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            async with asyncio.timeout(self.ctx.limits.idle_timeout_s):  # no extra task per read
                data = await self.reader.read(READ_SIZE)
        except (TimeoutError, ConnectionError):
            return False
        self._feed(data)
        return bool(data)

    async def _one_request(self) -> bool:
        """Serve one request; False when the connection should end."""
        limits = self.ctx.limits
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                if not await self._read():
                    if request is not None or self.received.strip():
                        self._malformed("incomplete request")
                    return False
                continue
            if isinstance(event, h11.ConnectionClosed):
                return False
            if isinstance(event, h11.Request):
                request = event
                if self.requests == 0 and self._cmux() and b"\n" not in self.received[:CMUX_LINE]:
                    # etcd's cmux reads the first line into a 4096-byte buffer; longer: no match, closed
                    self._malformed("first line longer than cmux reads")
                    raise _Drop
                if len(event.headers) > limits.max_header_count:
                    self._malformed("too many headers")
                    await self._write_close(gohttp.go_status_error(431, "Request Header Fields Too Large"))
                    return False
                # h11's Headers is a slow Sequence: take its list once per request
                self._lowered = _header_items(event.headers)
                length = next((v for _, k, v in self._lowered if k == b"content-length"), None)
                if length is not None and int(length) > limits.max_request_bytes:
                    self._log_request(event, b"", 413)
                    await self._write_close(gohttp.go_status_error(413, "Request Entity Too Large"))
                    return False
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > limits.max_request_bytes:
                    self._malformed("body over the size cap")
                    await self._write_close(gohttp.go_status_error(413, "Request Entity Too Large"))
                    return False
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                keep_alive = await self._respond(request, bytes(body))
                return keep_alive and self._next_cycle()

    async def _respond(self, event: h11.Request, body: bytes) -> bool:
        """Answer one request; whether the connection may carry another."""
        started = time.perf_counter()
        if event.http_version not in (b"1.0", b"1.1"):
            self._malformed(f"HTTP version {event.http_version.decode('latin-1')}")
            if not self._cmux():  # no cmux in front: net/http itself refuses it
                await self._write_close(gohttp.go_status_error(505, "HTTP Version Not Supported",
                                                               "unsupported protocol version"))
            raise _Drop  # in plain text, cmux hands only HTTP/1.x to net/http: silent close
        items = self._lowered
        refusal = _go_refusal(event, items)
        if refusal is not None:
            self._log_request(event, body, int(refusal[9:12]))
            await self._write_close(refusal)
            raise _Drop
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for _, k, v in items]
        req = Request(event.method.decode("latin-1"), event.target.decode("latin-1"), headers, body,
                      http10=event.http_version == b"1.0")
        self._apply_xff(req)  # first: the rate limit is the client's, not the balancer's
        if self.guard is not None:
            delay = self.guard.delay_for(self.session.src_ip)
            if delay:
                await asyncio.sleep(min(delay, 5.0))  # throttle the flooding source, not the sensor
        check = event.target + b"\n" + b"\n".join(v for _, _, v in items) + b"\n" + body
        self.ctx.honeytokens.check(self.session, check)
        try:
            if req.method == "OPTIONS" and req.target == "*":  # Go's server answers this itself
                resp = Response(200, b"", [("Content-Length", "0")])
            else:
                resp = await self.app.handle(self.session, req)
        except Exception as exc:  # never leak a traceback to the client: answer like Go's recover
            self.ctx.events.emit("sensor.error", self.session, error=type(exc).__name__, path=req.target)
            resp = Response(500, b"", [])
        tokens = {t.strip().lower() for t in (req.header("connection") or "").split(",")}
        close = "close" in tokens
        head = req.method == "HEAD"
        if resp.websocket is not None:
            self._log_request(event, body, resp.status, req, started)
            self.writer.write(websocket.handshake_response(req.header("sec-websocket-key") or ""))
            await self._websocket(req, resp.websocket)
            raise _Drop
        if resp.stream is not None:
            self._log_request(event, body, resp.status, req, started)
            await self._stream(resp, close)
        else:
            # logged before the answer leaves: a crash never loses an answered request
            self._log_request(event, body, resp.status, req, started)
            cors = self.app.cors and req.target != "*"
            self.writer.write(gohttp.render(resp, head=head, http10=req.http10, close=close, cors=cors))
        self.requests += 1
        self.received.clear()
        await self.writer.drain()
        if req.method == "CONNECT" or "upgrade" in tokens:
            return False
        return "keep-alive" in tokens if req.http10 else "close" not in tokens

    async def _websocket(self, req: Request, path: str) -> None:
        """Serve gateway stream requests sent as WebSocket messages; results go back one per frame."""
        app = self.app
        assert isinstance(app, ClientApp) and app.gateway is not None
        parser = websocket.FrameParser(self.ctx.limits.max_request_bytes)
        data, _ = self.conn.trailing_data
        message = bytearray()
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in req.headers]
        history: list[bytes] = []  # the stream's requests so far: watch ids and state carry over
        while True:
            try:
                frames = parser.feed(bytes(data))
            except websocket.FrameError as exc:
                self._malformed(f"websocket: {exc}")
                return
            for frame in frames:
                if frame.opcode == websocket.CLOSE:
                    return
                if frame.opcode == websocket.PING:
                    self.writer.write(websocket.encode(frame.payload, websocket.PONG))
                    continue
                if frame.opcode not in (websocket.TEXT, websocket.BINARY, websocket.CONTINUATION):
                    continue
                message += frame.payload
                if len(message) > self.ctx.limits.max_request_bytes:
                    self._malformed("websocket message over the size cap")
                    return
                if frame.fin:
                    if len(history) < MAX_WS_MESSAGES:
                        history.append(bytes(message))
                        await self._websocket_message(app, path, raw_headers, history)
                    message.clear()
            await self.writer.drain()
            try:
                async with asyncio.timeout(self.ctx.limits.idle_timeout_s):
                    data = await self.reader.read(READ_SIZE)
            except (TimeoutError, ConnectionError):
                return
            if not data:
                return

    async def _websocket_message(self, app: ClientApp, path: str, headers: list[tuple[bytes, bytes]],
                                 history: list[bytes]) -> None:
        """Answer the newest message. The gateway is stateless per body, so the stream's whole
        history is replayed and only the results beyond those already sent go out (bounded)."""
        message = history[-1]
        self.ctx.honeytokens.check(self.session, message, where="websocket")
        self.ctx.events.emit("websocket.message", self.session, path=path,
                             **body_fields(message, self.ctx.limits.max_logged_body))
        before = await self._gateway_lines(app, path, headers, history[:-1]) if len(history) > 1 else []
        after = await self._gateway_lines(app, path, headers, history)
        for line in after[len(before):]:
            self.writer.write(websocket.encode(line))

    async def _gateway_lines(self, app: ClientApp, path: str, headers: list[tuple[bytes, bytes]],
                             messages: list[bytes]) -> list[bytes]:
        assert app.gateway is not None
        result = app.gateway.handle(self.ctx, app.v3_state, self.session, "POST", path, headers,
                                    b"\n".join(messages))
        if asyncio.iscoroutine(result):
            result = await result
        return result[2].splitlines() if result is not None else []

    async def _stream(self, resp: Response, close: bool) -> None:
        self.writer.write(gohttp.render_stream_head(resp, cors=self.app.cors, close=close))
        await self.writer.drain()
        stream: AsyncIterator[bytes] = resp.stream  # type: ignore[assignment]
        async for piece in stream:
            self.writer.write(gohttp.chunk(piece))
            await self.writer.drain()
        self.writer.write(gohttp.last_chunk(resp.trailers))

    def _next_cycle(self) -> bool:
        """A fresh h11 parser for the next request, fed what the client already pipelined.

        Our responses are written by gohttp (h11 cannot produce Go's bytes), so instead of walking
        h11's server state machine through a fake response, each request gets a new parser.
        """
        self._continued = False
        leftover, closed = self.conn.trailing_data
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.ctx.limits.max_header_bytes)
        self._line = bytearray()
        if leftover:
            self._feed(bytes(leftover))
        if closed:
            self._feed(b"")
        return True

    def _apply_xff(self, req: Request) -> None:
        """The client is the rightmost X-Forwarded-For hop that is not a trusted proxy (hops to its left
        are whatever the client wrote, so they are not believed). Applies per request."""
        if self.trusted_xff is None:
            return
        client = self._socket_peer
        for hop in reversed([h.strip() for h in (req.header("x-forwarded-for") or "").split(",") if h.strip()]):
            if not _is_ip(hop):
                break
            client = hop
            if not trusted(hop, self.trusted_xff):
                break
        self.session.src_ip = client
        self.session.peer_ip = self._socket_peer if client != self._socket_peer else ""

    def _log_request(self, event: h11.Request, body: bytes, status: int, req: Request | None = None,
                     started: float | None = None) -> None:
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, _, v in self._lowered]
        user_agent = next((v for k, v in headers if k.lower() == "user-agent"), None)
        fields: dict[str, Any] = {
            "method": event.method.decode("latin-1"), "path": event.target.decode("latin-1"),
            "http_version": event.http_version.decode(), "headers": headers, "user_agent": user_agent,
            "status": status, "tls": self.session.tls or None,
        }
        if started is not None:
            fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
        fields.update(body_fields(body, self.ctx.limits.max_logged_body))
        self.ctx.events.emit("http.request", self.session, **fields)

    def _malformed(self, reason: str) -> None:
        raw = bytes(self.received)
        self.ctx.events.emit("malformed", self.session, protocol="http/1.1", reason=reason,
                             raw_b64=base64.b64encode(raw).decode(), raw_len=len(raw))

    async def _protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        text = str(exc)
        raw = bytes(self.received)
        if "Missing mandatory Host" in text:
            self._malformed("missing Host header")
            await self._write_close(gohttp.MISSING_HOST)
        elif "multiple Host" in text:
            self._malformed("too many Host headers")
            reason = self.ctx.persona.extra.get("too_many_hosts_reason", "too many Host headers")
            await self._write_close(gohttp.go_bad_request(reason))
        elif self.requests == 0 and self._cmux() and not _looks_like_request_line(raw):
            self._malformed(f"not HTTP: {text}")  # cmux finds no matching protocol: silent close
        elif "transfer-encoding" in text.lower() or "Transfer-Encoding" in text:
            self._malformed(text)
            await self._write_close(gohttp.UNSUPPORTED_TE)
        elif exc.error_status_hint == 431:
            self._malformed(text)
            await self._write_close(gohttp.go_status_error(431, "Request Header Fields Too Large"))
        else:
            self._malformed(text)
            await self._write_close(gohttp.go_bad_request(_go_header_reason(raw)))

    async def _write_close(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError:
            pass


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _escape_target(line: bytes) -> bytes:
    """Go accepts raw non-ASCII bytes in the request target, h11 does not: %-escape them first."""
    if all(ch < 0x7F for ch in line):
        return line
    parts = line.split(b" ")
    if len(parts) < 3:
        return line
    target = b"".join(b"%%%02X" % ch if ch >= 0x7F else bytes([ch]) for ch in b" ".join(parts[1:-1]))
    return parts[0] + b" " + target + b" " + parts[-1]


def _header_items(headers: Any) -> list[tuple[bytes, bytes, bytes]]:
    """(name as sent, lower-cased name, value) for each header, in order."""
    full = getattr(headers, "_full_items", None)  # h11 keeps exactly this list
    if isinstance(full, list):
        return list(full)
    return [(k, k.lower(), v) for k, v in headers.raw_items()]


_VALID_HOST = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$%&'()*+,-.:;=[]_~")


def _go_refusal(event: h11.Request, items: list[tuple[bytes, bytes, bytes]]) -> bytes | None:
    """What Go's server answers itself, before etcd's handlers, for a request h11 accepted."""
    host = next((v for _, k, v in items if k == b"host"), None)
    if host is not None and any(ch not in _VALID_HOST for ch in host):
        return gohttp.go_bad_request("malformed Host header")
    expect = next((v for _, k, v in items if k == b"expect"), None)
    if expect is not None and expect.lower() != b"100-continue":
        return gohttp.expectation_failed()
    path = event.target.split(b"?", 1)[0]
    if b"%" in path and not _valid_escapes(path):
        return gohttp.go_bad_request()
    return None


def _valid_escapes(path: bytes) -> bool:
    i = path.find(b"%")
    while i >= 0:
        pair = path[i + 1:i + 3]
        if len(pair) != 2 or any(ch not in b"0123456789abcdefABCDEF" for ch in pair):
            return False
        i = path.find(b"%", i + 3)
    return True


class _Drop(Exception):
    """End the connection without a reply (what etcd's cmux does with non-HTTP/1.x input)."""


_TOKEN = set(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _go_header_reason(raw: bytes) -> str:
    """The reason Go's textproto/net/http give for a bad header block ("" for a plain 400)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    for line in head:
        name, colon, _ = line.partition(b":")
        if colon and (not name or any(ch not in _TOKEN for ch in name)):
            return "invalid header name"
    for line in head:
        _, colon, value = line.partition(b":")
        if colon and any((ch < 0x20 and ch != 0x09) or ch == 0x7F for ch in value):
            return "invalid header value"
    return ""


_METHODS = (b"GET ", b"POST ", b"PUT ", b"DELETE ", b"HEAD ", b"OPTIONS ", b"PATCH ", b"CONNECT ", b"TRACE ")


def _looks_like_request_line(data: bytes) -> bool:
    line = data.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    parts = line.split(b" ")
    return len(parts) == 3 and parts[2].startswith(b"HTTP/1.") and line.startswith(_METHODS)

"""HTTP/1.x connections on the client and peer ports: one connection class, two readers.

`Http1Connection` owns a connection's state (`Http1State`) and picks its reader by state, as h11's
`_connection.py` does: the fast reader (`fastconn.FastReader`, an asyncio.Protocol answering simple
requests inline) first, then, from the first bytes it cannot vouch for, `H11Reader`, which is handed
those bytes explicitly. Both run each request through `exchange.exchange` (forwarded-for, throttle,
honeytoken scan, handler, 500, event, keep-alive) and only write its answer.

Every request becomes one `http.request` event; unparsable input becomes `malformed` with the raw
bytes. Request line garbage closes silently (etcd's cmux drops what is not HTTP), header errors get
Go's `400 Bad Request`, a missing Host gets Go's exact text.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import h11

from etcdsec.honeypot.context import SensorContext
from etcdsec.honeypot.core.events_fields import body_fields
from etcdsec.honeypot.core.persona import go_release
from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.routes import ClientApp, PeerApp
from etcdsec.honeypot.serve.exchange import Answer, Http1State, exchange, log_request, malformed
from etcdsec.honeypot.serve.fast_reader import FastReader
from etcdsec.honeypot.serve.guard import Guard
from etcdsec.honeypot.wire import go_response, websocket
from etcdsec.honeypot.wire.go_chunked import GoChunked
from etcdsec.honeypot.wire.go_http_rules import (
    escape_target,
    go_header_reason,
    go_refusal,
    header_items,
)
from etcdsec.honeypot.wire.go_response import Response
from etcdsec.honeypot.wire.request import Request

__all__ = ["ClientApp", "H11Reader", "Http1Connection", "PeerApp"]

READ_SIZE = 65_536
MAX_WS_MESSAGES = 64  # requests honoured on one WebSocket stream
HANDSHAKE_TIMEOUT_S = 10.0  # a TLS handshake
ATTACH_TIMEOUT_S = 15.0  # the socket taken over by the event loop, handshake included


class Http1Connection:
    """One HTTP/1.x connection, plain text or TLS, from its first byte to its end.

    `attach` puts the fast reader on the socket; `serve` runs until the connection ends and says
    why. Over TLS with ALPN h2, `serve` returns "h2" instead and `h2_streams` holds the streams and
    the bytes already read, for the gRPC server."""

    def __init__(self, app: ClientApp | PeerApp, ctx: SensorContext, session: Session, guard: Guard | None,
                 trusted_xff: list[Any] | None = None) -> None:
        self.state = Http1State.new(app, ctx, session, guard, trusted_xff)
        self.fast = FastReader(self.state)
        self.transport: asyncio.Transport | None = None
        self.writer: asyncio.StreamWriter | None = None  # once the h11 reader (or gRPC) has it
        self.h2_streams: tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes] | None = None

    async def attach(self, sock: socket.socket, tls: ssl.SSLContext | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await asyncio.wait_for(
            loop.connect_accepted_socket(lambda: self.fast, sock, ssl=tls,
                                         ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S if tls else None),
            timeout=ATTACH_TIMEOUT_S)

    async def serve(self) -> str:
        """Serve requests until the connection ends; the reason it ended ("h2": see `h2_streams`)."""
        leftover = await asyncio.shield(self.fast.finished)  # a shed task must not cancel it: wait_closed awaits it
        if leftover is None:
            return self.fast.end_reason
        reader, writer = self._to_streams()
        if self.fast.alpn == "h2":
            self.h2_streams = (reader, writer, leftover)
            return "h2"
        await H11Reader(self.state, reader, writer, leftover).run()
        return "closed"

    def _to_streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The fast reader has stopped reading: the same transport goes on as streams."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self.state.ctx.limits.max_header_bytes * 4)
        protocol = asyncio.StreamReaderProtocol(reader)
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        self.writer = asyncio.StreamWriter(self.transport, protocol, reader, loop)
        self.transport.resume_reading()
        return reader, self.writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        else:
            self.fast.close()

    async def wait_closed(self) -> None:
        if self.writer is not None:
            await self.writer.wait_closed()
        else:
            await self.fast.wait_closed()


class H11Reader:
    """The careful reader of an HTTP/1.x connection: parse with h11, apply Go's rules, answer through
    `exchange`, repeat until closed. It starts from the bytes the fast reader could not vouch for."""

    def __init__(self, state: Http1State, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 leftover: bytes = b"") -> None:
        self.state = state
        self.app, self.ctx, self.session = state.app, state.ctx, state.session
        self.reader, self.writer = reader, writer
        limits = state.ctx.limits
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self.received = bytearray()  # raw bytes of the request being parsed, for malformed events
        self._lowered: list[tuple[bytes, bytes, bytes]] = []
        self._continued = False
        self._line: bytearray | None = bytearray()  # request line being collected (see _feed)
        self._after_stream = bytearray()  # pipelined while a held answer was being sent
        self._chunks: GoChunked | None = None  # a chunked body being read by Go's rules, not h11's
        self._late_head = False  # the last read ended at the request head deadline
        if leftover:  # what the fast reader read but could not vouch for
            self._feed(leftover)

    async def run(self) -> None:
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
        if self._chunks is not None:
            self._chunks.feed(data)
            return
        if self._line is not None:  # still collecting the request line
            self._line += data
            end = self._line.find(b"\n")
            if end < 0 and len(self._line) < self.ctx.limits.max_header_bytes and data:
                return
            line, rest = (bytes(self._line[:end + 1]), bytes(self._line[end + 1:])) if end >= 0 \
                else (bytes(self._line), b"")
            self._line = None
            data = escape_target(line) + rest
            if not data:
                self.conn.receive_data(b"")  # EOF while waiting for the line
                return
        self.conn.receive_data(data)

    async def _read(self, head_deadline: float | None = None) -> bool:
        """More bytes within the idle time, and before `head_deadline` (loop time) when a request
        head is being read; False when the client left or took too long."""
        if self.conn.they_are_waiting_for_100_continue and not self._continued:
            self._continued = True  # once per request, as Go's server does when the body is read
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ctx.limits.idle_timeout_s
        if head_deadline is not None and head_deadline < deadline:
            deadline = head_deadline
        try:
            async with asyncio.timeout_at(deadline):  # no extra task per read
                data = await self.reader.read(READ_SIZE)
        except TimeoutError:
            self._late_head = deadline == head_deadline
            return False
        except ConnectionError:
            return False
        self.session.bytes_in += len(data)
        self._feed(data)
        return bool(data)

    async def _one_request(self) -> bool:
        """Serve one request; False when the connection should end."""
        limits = self.ctx.limits
        request: h11.Request | None = None
        body = bytearray()
        body_error = ""  # Go's read of a chunked body failed with it
        loop = asyncio.get_running_loop()
        # the head's deadline runs from its first byte (a first request's: from now, as Go's does)
        head_deadline = loop.time() + limits.header_timeout_s if self.received or not self.state.requests else None
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                if request is None and head_deadline is None and self.received:
                    head_deadline = loop.time() + limits.header_timeout_s
                if not await self._read(head_deadline if request is None else None):
                    if request is not None or self.received.strip():
                        self._malformed("request head timeout" if request is None and self._late_head
                                        else "incomplete request")
                    return False
                continue
            if isinstance(event, h11.ConnectionClosed):
                return False
            if isinstance(event, h11.Request):
                request = event
                if len(event.headers) > limits.max_header_count:
                    self._malformed("too many headers")
                    await self._write_close(go_response.go_status_error(431, "Request Header Fields Too Large"))
                    return False
                # h11's Headers is a slow Sequence: take its list once per request
                self._lowered = header_items(event.headers)
                length = next((v for _, k, v in self._lowered if k == b"content-length"), None)
                if length is not None and int(length) > limits.max_request_bytes:
                    self._log_refused(event, b"", 413)
                    await self._write_close(go_response.go_status_error(413, "Request Entity Too Large"))
                    return False
                if self.conn.they_are_waiting_for_100_continue and not self._continued \
                        and self.received.endswith(b"\r\n\r\n") \
                        and not self.app.reads_body(event.method.decode("latin-1"), event.target.decode("latin-1"),
                                                    self._lowered):
                    # Go sends 100 Continue on the handler's first read of the body: a handler that
                    # never reads it answers at once, and Go closes after (the body's state is unknown).
                    # Only when none of the body came with the head: what did is read and logged.
                    self.session.requests_in += 1
                    await self._respond(event, b"", unread_body=True)
                    return False
                if any(k == b"transfer-encoding" for _, k, _ in self._lowered):  # h11 let only chunked by
                    chunked = await self._go_chunked_body()
                    if chunked is None:
                        return False
                    body += chunked[0]
                    body_error = chunked[1]
                    event = h11.EndOfMessage()
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > limits.max_request_bytes:
                    self._malformed("body over the size cap")
                    await self._write_close(go_response.go_status_error(413, "Request Entity Too Large"))
                    return False
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                self.session.requests_in += 1
                keep_alive = await self._respond(request, bytes(body), body_error)
                return keep_alive and self._next_cycle()

    async def _go_chunked_body(self) -> tuple[bytes, str] | None:
        """The chunked body read by Go's rules (`wire/go_chunked.py`) and the error Go's read ended
        with ("" when whole: the bytes after it start the next request); None when the connection ends."""
        chunks = self._chunks = GoChunked()
        leftover, _ = self.conn.trailing_data
        waiting = self.conn.they_are_waiting_for_100_continue
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.ctx.limits.max_header_bytes)
        chunks.feed(bytes(leftover))
        try:
            while not chunks.error:
                if len(chunks.body) > self.ctx.limits.max_request_bytes:
                    self._malformed("body over the size cap")
                    await self._write_close(go_response.go_status_error(413, "Request Entity Too Large"))
                    return None
                if chunks.done:
                    break
                if waiting and not self._continued:  # as _read does for h11's bodies
                    self._continued = True
                    self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                if not await self._read():
                    self._malformed("incomplete request")
                    return None
        finally:
            self._chunks = None
        if chunks.error:  # etcd's handler sees the read fail; the connection ends after the answer
            self._malformed(f"chunked body: {chunks.error}")
            return bytes(chunks.body), chunks.error
        self._after_stream[:0] = chunks.rest  # the next cycle's parser reads these first
        return bytes(chunks.body), ""

    async def _respond(self, event: h11.Request, body: bytes, body_error: str = "", unread_body: bool = False) -> bool:
        """Answer one request; whether the connection may carry another (never after `unread_body`:
        an answer sent while the client still owes the body it announced)."""
        if event.http_version not in (b"1.0", b"1.1"):
            self._malformed(f"HTTP version {event.http_version.decode('latin-1')}")
            if not self._cmux():  # no cmux in front: net/http itself refuses it, with 400 before Go 1.16
                old_go = go_release(self.ctx.persona.go_version) < (1, 16)  # (measured: go1.15.9 on 3.3.25)
                await self._write_close(go_response.go_status_error(400, "Bad Request", "unsupported protocol version")
                                        if old_go else go_response.go_status_error(
                                            505, "HTTP Version Not Supported", "unsupported protocol version"))
            raise _Drop  # in plain text, cmux hands only HTTP/1.x to net/http: silent close
        items = self._lowered
        refusal = go_refusal(event, items)
        if refusal is not None:
            self._log_refused(event, body, int(refusal[9:12]))
            await self._write_close(refusal)
            raise _Drop
        req = Request(event.method.decode("latin-1"), event.target.decode("latin-1"),
                      [(low, v) for _, low, v in items], body, http10=event.http_version == b"1.0",
                      body_error=body_error)
        answer = exchange(self.state, req, items)
        if not isinstance(answer, Answer):
            answer = await answer
        resp = answer.resp
        if resp.websocket is not None:
            self.session.requests_in = 0  # a WebSocket is worth its messages, not its upgrade (shedding)
            self.writer.write(websocket.handshake_response(req.header(b"sec-websocket-key") or b""))
            await self._websocket(req, resp.websocket)
            raise _Drop
        if resp.stream is not None:
            await self._stream(resp, answer.close)
        else:
            self.writer.write(go_response.render(resp, head=answer.head, http10=answer.http10,
                                                 close=answer.close or unread_body, cors=answer.cors,
                                                 keep=answer.keep and not unread_body))
        self.received.clear()
        await self.writer.drain()
        return answer.keep and not unread_body

    async def _websocket(self, req: Request, path: str) -> None:
        """Serve gateway stream requests sent as WebSocket messages; results go back one per frame.

        A watch is live, as etcd's: later events arrive as frames until the client leaves (a quiet
        watch is not idle). Other streams (lease keepalive) answer each message."""
        app = self.app
        assert isinstance(app, ClientApp) and app.gateway is not None
        live = app.gateway.LiveWatch(self.ctx, app.v3_state, self.session, path) \
            if app.v3_state is not None and app.gateway.is_watch(self.ctx, path) else None
        pusher = asyncio.create_task(self._push_watch(live)) if live is not None else None
        try:
            await self._websocket_frames(req, path, live)
        finally:
            if pusher is not None:
                pusher.cancel()
            if live is not None:
                live.close()

    async def _push_watch(self, live: Any) -> None:
        while True:
            await live.ready.wait()
            for line in live.lines():
                self.writer.write(websocket.encode(line))
            await self.writer.drain()

    async def _websocket_frames(self, req: Request, path: str, live: Any | None) -> None:
        app = self.app
        assert isinstance(app, ClientApp)
        parser = websocket.FrameParser(self.ctx.limits.max_request_bytes)
        data, _ = self.conn.trailing_data
        message = bytearray()
        history: list[bytes] = []  # the stream's requests so far: watch ids and state carry over
        limits = self.ctx.limits
        loop = asyncio.get_running_loop()
        # held while it watches (etcd holds a watch for as long as the client stays), at most
        # --watch-timeout; a socket with no watch (yet) is idle like any other
        ends = loop.time() + limits.wait_timeout_s if limits.wait_timeout_s > 0 else None
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
                    self.session.requests_in += 1
                    if len(history) < MAX_WS_MESSAGES:
                        history.append(bytes(message))
                        if live is not None:
                            self._websocket_event(path, history[-1])
                            live.feed(history[-1])
                        else:
                            await self._websocket_message(app, path, req.headers, history)
                    message.clear()
            await self.writer.drain()
            deadline = None if live is not None and live.watching() else loop.time() + limits.idle_timeout_s
            if ends is not None:
                deadline = ends if deadline is None else min(deadline, ends)
            try:
                async with asyncio.timeout_at(deadline):
                    data = await self.reader.read(READ_SIZE)
            except (TimeoutError, ConnectionError):
                return
            if not data:
                return
            self.session.bytes_in += len(data)

    async def _websocket_message(self, app: ClientApp, path: str, headers: list[tuple[bytes, bytes]],
                                 history: list[bytes]) -> None:
        """Answer the newest message. The gateway is stateless per body, so the stream's whole
        history is replayed and only the results beyond those already sent go out (bounded)."""
        message = history[-1]
        self._websocket_event(path, message)
        before = await self._gateway_lines(app, path, headers, history[:-1]) if len(history) > 1 else []
        after = await self._gateway_lines(app, path, headers, history)
        for line in after[len(before):]:
            self.writer.write(websocket.encode(line))

    def _websocket_event(self, path: str, message: bytes) -> None:
        self.ctx.honeytokens.check(self.session, message, where="websocket")
        self.ctx.events.emit("websocket.message", self.session, path=path,
                             **body_fields(message, self.ctx.limits.max_logged_body))

    async def _gateway_lines(self, app: ClientApp, path: str, headers: list[tuple[bytes, bytes]],
                             messages: list[bytes]) -> list[bytes]:
        assert app.gateway is not None
        result = app.gateway.handle(self.ctx, app.v3_state, self.session, "POST", path, headers,
                                    b"\n".join(messages))
        if asyncio.iscoroutine(result):
            result = await result
        return result[2].splitlines() if result is not None else []

    async def _stream(self, resp: Response, close: bool) -> None:
        """Send a held answer (watch, v2 wait) as it comes. Meanwhile the client is read: when it
        leaves, the answer ends, as Go cancels a request's context (a watch is otherwise held for as
        long as the client stays); what it pipelines meanwhile is kept for the next request."""
        self.writer.write(go_response.render_stream_head(resp, cors=self.app.cors, close=close))
        await self.writer.drain()
        stream: AsyncIterator[bytes] = resp.stream  # type: ignore[assignment]

        async def send() -> None:
            async for piece in stream:
                self.writer.write(go_response.chunk(piece))
                await self.writer.drain()
            self.writer.write(go_response.last_chunk(resp.trailers))

        sender = asyncio.create_task(send())
        listener = asyncio.create_task(self._until_client_leaves())
        try:
            await asyncio.wait({sender, listener}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            listener.cancel()  # a read cancelled before it returns leaves its bytes in the reader
            # and must be gone before the next request reads: StreamReader allows one reader
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await listener
            if not sender.done():
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await sender
        if sender.cancelled():
            raise _Drop  # the client left
        sender.result()

    async def _until_client_leaves(self) -> None:
        budget = self.ctx.limits.max_request_bytes
        while budget > 0:  # bounded: past it, stop reading (and stop watching for the end)
            data = await self.reader.read(READ_SIZE)
            if not data:
                return
            self._after_stream += data
            budget -= len(data)
        await asyncio.Event().wait()

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
        if self._after_stream:
            self._feed(bytes(self._after_stream))
            self._after_stream.clear()
        if closed:
            self._feed(b"")
        return True

    def _log_refused(self, event: h11.Request, body: bytes, status: int) -> None:
        """A request Go's server answers itself, before any handler (no exchange)."""
        log_request(self.state, event.method.decode("latin-1"), event.target.decode("latin-1"),
                    event.http_version.decode("latin-1"), self._lowered, status, body)

    def _malformed(self, reason: str) -> None:
        malformed(self.state, reason, bytes(self.received))

    async def _protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        text = str(exc)
        raw = bytes(self.received)
        if "Missing mandatory Host" in text:
            self._malformed("missing Host header")
            await self._write_close(go_response.MISSING_HOST)
        elif "multiple Host" in text:
            self._malformed("too many Host headers")
            reason = self.ctx.persona.extra.get("too_many_hosts_reason", "too many Host headers")
            await self._write_close(go_response.go_bad_request(reason))
        elif "Only Transfer-Encoding" in text or "multiple Transfer-Encoding" in text:  # h11's own two texts
            self._malformed(text)
            await self._write_close(go_response.UNSUPPORTED_TE)
        elif exc.error_status_hint == 431:
            self._malformed(text)
            await self._write_close(go_response.go_status_error(431, "Request Header Fields Too Large"))
        else:
            self._malformed(text)
            await self._write_close(go_response.go_bad_request(go_header_reason(raw)))

    async def _write_close(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError:
            pass


class _Drop(Exception):
    """End the connection without a reply (what etcd's cmux does with non-HTTP/1.x input)."""


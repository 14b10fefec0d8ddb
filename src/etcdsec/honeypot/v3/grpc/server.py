"""etcd's gRPC API over HTTP/2 with the `h2` state machine (sans-IO core, thin asyncio shell).

`GrpcConnection` turns received bytes into h2 events, gRPC messages into v3 calls, and responses
into frames that respect flow control; `serve_h2` only moves bytes between it and the socket.
Unary calls answer at once; Watch and LeaseKeepAlive are bidirectional streams. Every gRPC
request is logged (`grpc.request`) and its raw bytes go through the honeytoken check.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import gzip
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from google.protobuf.message import DecodeError, Message

from etcdsec.honeypot.context import SensorContext
from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.v3 import errors, service
from etcdsec.honeypot.v3.call import watch_permit
from etcdsec.honeypot.v3.errors import Code, V3Error
from etcdsec.honeypot.v3.grpc import gogo_errors
from etcdsec.honeypot.v3.grpc.grpcgo_h2 import FirstFrameNotSettings, GrpcGoH2, StreamIdReused
from etcdsec.honeypot.v3.grpc.health import HEALTH_PATHS, HEALTH_WATCH, health_reply
from etcdsec.honeypot.v3.grpc.hpack_cache import CachingDecoder, CachingEncoder
from etcdsec.honeypot.v3.grpc.lean_h2 import LeanH2, Opened, Unary
from etcdsec.honeypot.v3.grpc.messages import OK_TRAILERS, decompress, frame_message, loggable, trailers_for
from etcdsec.honeypot.v3.grpc.request_head import BASE_CONTENT_TYPE, request_head
from etcdsec.honeypot.v3.grpc.stream import GrpcStream
from etcdsec.honeypot.v3.grpc.unary_route import unary_route
from etcdsec.honeypot.v3.range_memo import RANGES
from etcdsec.honeypot.v3.state import V3State
from etcdsec.proto import etcd_v3_pb2 as pb

MAX_STREAMS_PER_CONNECTION = 256  # enforced; etcd announces 2^32-1 and we announce the same
# SETTINGS as etcd's grpc-go sends them: MAX_FRAME_SIZE=16384, MAX_CONCURRENT_STREAMS=4294967295.
GRPC_GO_SETTINGS = bytes.fromhex("00000c040000000000" "000500004000" "0003ffffffff")
MAX_RECV_MESSAGE = 2 * 1024 * 1024  # etcd: --max-request-bytes (1.5 MiB) + 512 KiB gRPC overhead
OK_HEADERS = ((b":status", b"200"), (b"content-type", BASE_CONTENT_TYPE.encode()))  # what _send_headers_once sends
OK_TRAILER_FIELDS = tuple(OK_TRAILERS)
RANGE = service.METHODS[service.RANGE]
# Per-connection memory budgets: partial requests held, and responses the peer has not read yet.
MAX_CONN_INBOX = 8 * 1024 * 1024
MAX_CONN_OUTBOX = 32 * 1024 * 1024
READ_CHUNK = 65536

# Over TLS + ALPN h2 etcd serves its HTTP handlers on non-gRPC streams: (session, method, path, headers,
# body) -> (status, headers as Go's h2 server sends them, body); the listener passes the client routes'.
H2HttpHandler = Callable[[Session, str, str, list[tuple[bytes, bytes]], bytes],
                         Awaitable[tuple[int, list[tuple[bytes, bytes]], bytes]]]


class GrpcConnection:
    def __init__(self, ctx: SensorContext, state: V3State, session: Session | None,
                 on_ready: Callable[[], None] | None = None, http: H2HttpHandler | None = None,
                 lean: bool = True) -> None:
        self.ctx = ctx
        self.state = state
        self.session = session
        self.on_ready = on_ready
        self.http = http  # None: every stream is gRPC (plain text, the peer port, tests)
        # Inbound headers are validated (a peer's malformed block is a protocol error, as in grpc-go);
        # ours are fixed and well-formed, so outbound checks would only cost time.
        # header_encoding=None: fields arrive as bytes. grpc-go takes any bytes in a header value
        # (measured: etcd 3.4 and 3.5 answer a Range whose metadata is not UTF-8); h2's own decoding
        # would raise on them.
        config = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                           validate_inbound_headers=True, validate_outbound_headers=False,
                                           normalize_outbound_headers=False)
        # plain text: etcd's cmux hands h2c to grpc-go's own transport; over TLS Go's http2 server
        # serves gRPC, and h2's rules are its rules (a reused stream id gets RST_STREAM, measured)
        self.h2 = h2.connection.H2Connection(config=config) if session is not None and session.tls \
            else GrpcGoH2(config=config)
        self.h2.encoder = CachingEncoder()  # the same few header blocks, coded once each way
        decoder = CachingDecoder(self.h2.decoder.max_header_list_size)
        decoder.max_allowed_table_size = self.h2.decoder.max_allowed_table_size
        self.h2.decoder = decoder
        # Enforced locally (h2 applies these once the peer acknowledges our SETTINGS); what goes on the
        # wire is GRPC_GO_SETTINGS, see start().
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS_PER_CONNECTION,
        })
        # Plain text (etcd's grpc-go transport): the lean reader serves gRPC's usual frames and hands
        # the connection to h2, brought to the same state, at the first frame it cannot vouch for.
        self.lean: LeanH2 | None = None
        if lean and not (session is not None and session.tls):
            self._fallback = self.h2
            self.h2 = self.lean = LeanH2(self.h2.encoder, self.h2.decoder, MAX_STREAMS_PER_CONNECTION)  # type: ignore[assignment]
            self.lean.unary_route = functools.partial(unary_route, ctx.persona)
        self.streams: dict[int, GrpcStream] = {}
        # At least buffered_in() / buffered_out(): every byte queued adds to them, and they are set to
        # the true sums (which walk every stream) only when over the cap, so a call costs no walk.
        self._in_bound = self._out_bound = 0
        self.closed = False
        self.calls = 0  # messages handled: the shell throttles on this
        self._preface = b""
        self.max_message = MAX_RECV_MESSAGE
        self._http_tasks: set[asyncio.Task[None]] = set()

    # --- driving the state machine ------------------------------------------------------------
    def start(self) -> None:
        self.h2.initiate_connection()
        # h2 announces all its settings; grpc-go announces exactly these two, in this order. The
        # values h2 holds are the protocol defaults, so the state machine stays right.
        self.h2.data_to_send()
        self._preface = GRPC_GO_SETTINGS

    def data_to_send(self) -> bytes:
        out = self._preface + self.h2.data_to_send()
        self._preface = b""
        return out

    def receive(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.h2.receive_data(data)
            if self.lean is not None and self.lean.rest is not None:
                events += self._hand_over(self.lean)
        except h2.exceptions.ProtocolError as exc:
            self.ctx.events.emit("malformed", self.session, protocol="h2", error=type(exc).__name__,
                                 raw_b64=base64.b64encode(data[:self.ctx.limits.max_logged_body]).decode(),
                                 raw_len=len(data))
            self.closed = True
            if isinstance(exc, StreamIdReused | FirstFrameNotSettings):
                self.h2.data_to_send()  # grpc-go closes without a word: drop the queued GOAWAY
            return
        for ev in events:
            kind = type(ev)
            if kind is Unary:
                self._on_unary(ev)
            elif kind is Opened:
                self._on_opened(ev)
            else:
                self._on_event(ev)
        self.pump()

    def _hand_over(self, lean: LeanH2) -> list[h2.events.Event]:
        """From here on h2 serves the connection, from the frame the lean reader stopped at; the events
        of the whole read are handled after it, as h2 alone would."""
        lean.adopt(self._fallback)
        self.h2, self.lean = self._fallback, None
        return self.h2.receive_data(lean.rest or b"")

    def _on_event(self, ev: h2.events.Event) -> None:
        if isinstance(ev, h2.events.RequestReceived):
            self._on_request(ev)
        elif isinstance(ev, h2.events.DataReceived):
            if ev.flow_controlled_length:
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            st = self.streams.get(ev.stream_id)
            if st is not None and st.http_headers is not None:
                if not st.done and len(st.inbox) + len(ev.data) <= self.ctx.limits.max_request_bytes:
                    st.inbox += ev.data
                    self._in_bound += len(ev.data)
                return
            if st is not None and not st.done:
                st.inbox += ev.data
                st.client_open = ev.stream_ended is None
                self._in_bound += len(ev.data)
                if len(st.inbox) > 5 and self._inbox_over():
                    self._log(st, None, Code.RESOURCE_EXHAUSTED)
                    st.inbox.clear()
                    self._finish(st, Code.RESOURCE_EXHAUSTED, "etcdserver: too many requests")
                    return
                self._drain_inbox(st)
        elif isinstance(ev, h2.events.StreamEnded):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.client_open = False
            if st is not None and st.http_headers is not None:
                if not st.done:
                    self._serve_http(st)
            elif st is not None and not st.done and not st.held:
                self._on_half_close(st)
        elif isinstance(ev, h2.events.StreamReset):
            self._forget(ev.stream_id)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.closed = True

    def _on_opened(self, ev: Opened) -> None:
        """_on_request for a block unary_route took: nothing is left to decide but the metadata's tokens."""
        route = ev.route
        head = route.head
        self.ctx.honeytokens.check(self.session, head.view, where="grpc-metadata")
        self.streams[ev.stream_id] = GrpcStream(ev.stream_id, path=head.path, method=route.method,
                                             user_agent=head.user_agent, encoding=head.encoding, token=head.token)

    def _on_unary(self, ev: Unary) -> None:
        """_on_event's work for DataReceived and StreamEnded when the data is exactly one uncompressed
        message within the caps; otherwise those two events, one by one."""
        sid, data = ev.stream_id, ev.data
        size = len(data)
        st = self.streams.get(sid)
        if st is None or st.done or size < 5 or data[0] or int.from_bytes(data[1:5]) != size - 5 \
                or size - 5 > self.max_message or self._in_bound + size > MAX_CONN_INBOX:
            self._on_event(h2.events.DataReceived(stream_id=sid, data=data, flow_controlled_length=size))
            self._on_event(h2.events.StreamEnded(stream_id=sid))
            return
        self.h2.acknowledge_received_data(size, sid)
        self._in_bound += size
        st.client_open = False
        self._on_message(st, data[5:])
        if not st.done and sid in self.streams:  # (a unary call always ends in _on_message)
            self._on_half_close(st)

    def _on_request(self, ev: h2.events.RequestReceived) -> None:
        raw: list[tuple[bytes, bytes]] = ev.headers or []  # type: ignore[assignment]
        head = request_head(raw)
        st = GrpcStream(ev.stream_id, path=head.path, user_agent=head.user_agent, encoding=head.encoding,
                     token=head.token)
        self.streams[ev.stream_id] = st
        st.client_open = ev.stream_ended is None
        ctype, subtype = head.content_type, head.subtype
        if subtype:
            st.content_type = f"{BASE_CONTENT_TYPE}+{subtype}"
        if subtype is None and self.session is not None and self.session.tls and self.http is not None:
            # Over TLS etcd's Go HTTP server owns HTTP/2 and only hands application/grpc to gRPC:
            # anything else (curl --http2 https://.../version) gets the HTTP routes.
            st.http_headers = list(raw)
            return  # searched for honeytokens with its body, as any HTTP request (routes.h2_request)
        self.ctx.honeytokens.check(self.session, head.view, where="grpc-metadata")
        if subtype is None:
            # etcd's grpc-go resets a non-gRPC stream (curl --http2-prior-knowledge /version gets
            # RST_STREAM PROTOCOL_ERROR, not an HTTP answer; grpc-go 1.27 in Debian's 3.3.25: INTERNAL_ERROR).
            reset = h2.errors.ErrorCodes[self.ctx.persona.extra.get("grpc_non_grpc_reset", "PROTOCOL_ERROR")]
            self.ctx.events.emit("grpc.request", self.session, grpc_method=st.path, status=None,
                                 http_method=head.method, user_agent=st.user_agent or None,
                                 content_type=ctype or None, reset=reset.name)
            st.done = True
            self.streams.pop(st.id, None)
            self._safe(lambda: self.h2.reset_stream(st.id, reset))
            return
        st.method = service.METHODS.get(st.path)
        if st.path in HEALTH_PATHS:
            return
        if st.method is None or not service.available(st.method, self.ctx.persona):
            err = errors.unknown_method(st.path, self.ctx.persona.extra.get("grpc_unknown_method_names_service", True))
            self._log(st, None, err.code, message=err.message)
            self._finish(st, err.code, err.message)
            return
        if st.encoding not in ("", "identity") and not (st.encoding == "gzip" and self._gzip):
            # etcd 3.4 registers no decompressor; 3.5's grpc-go has gzip
            self._log(st, None, Code.UNIMPLEMENTED)
            self._finish(st, Code.UNIMPLEMENTED,
                         f'grpc: Decompressor is not installed for grpc-encoding "{st.encoding}"')
            return
        if st.method.streaming and st.method.path.endswith("/Watch"):
            st.watch = service.open_watch(self.state, self.session, self.ctx.limits.max_watches_per_source,
                                          self.on_ready)
            if self.state.remote is None:  # with --shared-keyspace the owner's auth store decides
                ns = self.state.namespace(self.session)
                st.watch.permit = watch_permit(
                    lambda: service.Call(self.state, ns, self.session, self.ctx.persona, st.token))

    # --- messages -------------------------------------------------------------------------------
    def _drain_inbox(self, st: GrpcStream) -> None:
        while len(st.inbox) >= 5 and not st.done:
            flag = st.inbox[0]
            length = int.from_bytes(st.inbox[1:5])
            if length > self.max_message:
                self._log(st, None, Code.RESOURCE_EXHAUSTED)
                self._finish(st, Code.RESOURCE_EXHAUSTED,
                             f"grpc: received message larger than max ({length} vs. {self.max_message})")
                return
            if len(st.inbox) < 5 + length:
                return
            if len(st.inbox) == 5 + length:  # the usual case: exactly one message buffered
                payload = bytes(st.inbox[5:])
                st.inbox.clear()
            else:
                payload = bytes(st.inbox[5:5 + length])
                del st.inbox[: 5 + length]
            if flag:
                try:
                    payload = decompress(st.encoding, flag, payload, self.max_message)
                except V3Error as err:
                    self._log(st, None, err.code, raw=payload, message=err.message)
                    self._finish(st, err.code, err.message)
                    return
            self._on_message(st, payload)

    def _serve_http(self, st: GrpcStream) -> None:
        """Answer a plain HTTP/2 request through the sensor's HTTP routes (they are async)."""
        st.done = True  # no gRPC handling for it; the task below owns the stream from here
        task = asyncio.get_running_loop().create_task(self._http_task(st))
        self._http_tasks.add(task)
        task.add_done_callback(self._http_tasks.discard)

    async def _http_task(self, st: GrpcStream) -> None:
        assert st.http_headers is not None and self.session is not None and self.http is not None
        fields = dict(st.http_headers)
        method = fields.get(b":method", b"GET").decode("latin-1")
        path = fields.get(b":path", b"/").decode("latin-1")
        status, headers, body = await self.http(self.session, method, path, st.http_headers, bytes(st.inbox))
        if st.id not in self.streams or self.closed:  # the client reset the stream meanwhile
            return
        try:
            self.h2.send_headers(st.id, [(b":status", str(status).encode()), *headers], end_stream=not body)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._forget(st.id)
            return
        if body:
            st.outbox += body
            self._out_bound += len(body)
            st.end_after_outbox = True
            self._flush(st)
        else:
            self.streams.pop(st.id, None)
        if self.on_ready is not None:
            self.on_ready()

    def buffered_in(self) -> int:
        return sum(len(s.inbox) for s in self.streams.values())

    def buffered_out(self) -> int:
        return sum(len(s.outbox) for s in self.streams.values())

    def _inbox_over(self) -> bool:
        if self._in_bound <= MAX_CONN_INBOX:
            return False
        self._in_bound = self.buffered_in()
        return self._in_bound > MAX_CONN_INBOX

    def _outbox_over(self) -> bool:
        if self._out_bound <= MAX_CONN_OUTBOX:
            return False
        self._out_bound = self.buffered_out()
        return self._out_bound > MAX_CONN_OUTBOX

    def _on_message(self, st: GrpcStream, payload: bytes) -> None:
        self.calls += 1
        self.ctx.honeytokens.check(self.session, payload, where="grpc")
        if self._outbox_over():  # a peer that does not read gets no more work done
            self._log(st, None, Code.UNAVAILABLE, raw=payload)
            self._finish(st, Code.UNAVAILABLE, "etcdserver: too many requests")
            return
        if st.path in HEALTH_PATHS:
            message, code, text = health_reply(st.path, payload)
            self.ctx.events.emit("grpc.request", self.session, grpc_method=st.path, status=int(code),
                                 user_agent=st.user_agent or None)
            if message is not None:
                self._send(st, message)
            if text is not None:
                self._finish(st, code, text)
            return
        method = st.method
        assert method is not None
        if method is RANGE:
            kept = RANGES.lookup(self.state, self.session, payload, st.token)
            if kept is not None:
                self._answer(st, kept.logged, kept.answer)
                return
        request = method.request()
        problem = gogo_errors.unmarshal_error(request.DESCRIPTOR, payload)
        if problem is None:
            try:
                request.ParseFromString(payload)
            except (DecodeError, RecursionError, ValueError):
                problem = gogo_errors.EOF  # e.g. invalid UTF-8 in a string: Go would take it, we cannot
        if problem is not None:
            self._log(st, None, Code.INTERNAL, raw=payload, message=f"grpc: error unmarshalling request: {problem}")
            self._finish(st, Code.INTERNAL, f"grpc: error unmarshalling request: {problem}")
            return
        if method.streaming:
            self._on_stream_message(st, request)
            return
        if method.server_stream:
            try:
                responses = service.invoke_stream(self.state, self.session, method, request, st.token)
            except V3Error as err:
                self._log(st, request, err.code, message=err.message)
                self._finish(st, err.code, err.message)
                return
            self._log(st, request, Code.OK)
            for msg in responses:
                self._send(st, msg.SerializeToString())
            self._finish(st, Code.OK, "")
            return
        logged = None
        try:
            if method is RANGE:  # do_range reads the request, never changes it: logged before
                assert isinstance(request, pb.RangeRequest)
                logged = loggable(request, self.ctx.limits.max_logged_body)
                answer = RANGES.answer(self.state, self.session, request, payload, st.token, logged)
            else:
                answer = service.invoke(self.state, self.session, method, request, st.token).SerializeToString()
        except V3Error as err:
            self._log(st, request, err.code, message=err.message, logged=logged)
            self._finish(st, err.code, err.message)
            return
        except errors.NoReply:
            self._log(st, request, None, logged=logged)  # held: no status ever goes out
            st.held = True
            return
        self._answer(st, loggable(request, self.ctx.limits.max_logged_body) if logged is None else logged, answer)

    def _answer(self, st: GrpcStream, logged: dict[str, Any], answer: bytes) -> None:
        """A unary call's success: its event, then HEADERS, the message and OK trailers."""
        fields: dict[str, Any] = {"grpc_method": st.path, "request": logged, "status": 0}  # as _log orders them
        if st.user_agent:
            fields["user_agent"] = st.user_agent
        self.ctx.events.emit_fields("grpc.request", self.session, fields)
        lean = self.lean
        if lean is not None and st.content_type == BASE_CONTENT_TYPE and st.encoding in ("", "identity") \
                and not st.headers_sent and not st.done and not st.client_open:
            message = frame_message(answer)
            if lean.answer(st.id, OK_HEADERS, message, OK_TRAILER_FIELDS):  # the bytes _send and _finish would queue
                self._out_bound += len(message)
                st.headers_sent = st.done = True
                self.streams.pop(st.id, None)
                return
        self._send(st, answer)
        self._finish(st, Code.OK, "")

    def _on_stream_message(self, st: GrpcStream, request: Message) -> None:
        self._log(st, request, Code.OK)
        if st.watch is not None:
            assert isinstance(request, pb.WatchRequest)
            st.watch.handle(request)
            self._move_watch_responses(st)
        else:
            assert isinstance(request, pb.LeaseKeepAliveRequest)
            self._send(st, service.keepalive(self.state, self.session, request).SerializeToString())

    def _on_half_close(self, st: GrpcStream) -> None:
        if st.method is not None and st.method.streaming:
            if st.watch is None:  # LeaseKeepAlive ends when the client stops sending (as etcd)
                self._finish(st, Code.OK, "")
            return  # a watch stays open until reset, connection close or its time limit
        if st.path == HEALTH_WATCH and st.headers_sent:
            return  # the health watch stays open after the client's half-close
        if st.path in HEALTH_PATHS or st.method is not None:
            # A unary call whose body ended before one whole message: grpc-go's recvMsg error, which
            # older grpc-go never turns into a status (persona key, measured on 3.3.25's grpc-go 1.27).
            if self.ctx.persona.extra.get("grpc_unary_eof_unanswered", False):
                self._log(st, None, None, raw=bytes(st.inbox))
                return
            self._log(st, None, Code.UNKNOWN, raw=bytes(st.inbox))
            self._finish(st, Code.UNKNOWN, "unexpected EOF" if st.inbox else "EOF")

    def _move_watch_responses(self, st: GrpcStream) -> None:
        assert st.watch is not None
        while st.watch.pending and len(st.outbox) < (1 << 20):
            self._send(st, st.watch.pending.popleft().SerializeToString())

    # --- output -----------------------------------------------------------------------------------
    @property
    def _gzip(self) -> bool:
        return self.ctx.persona.major_minor >= (3, 5)

    def _send_headers_once(self, st: GrpcStream) -> None:
        if not st.headers_sent:
            st.headers_sent = True
            # bytes, so h2 converts nothing; the encoder then finds the block it made last time
            headers = [(b":status", b"200"), (b"content-type", st.content_type.encode())]
            if st.encoding == "gzip":
                headers.append((b"grpc-encoding", b"gzip"))  # grpc-go answers in the caller's encoding
            self.h2.send_headers(st.id, headers)

    def _send(self, st: GrpcStream, payload: bytes) -> None:
        if st.done:
            return
        try:
            self._send_headers_once(st)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            st.done = True  # the peer reset the stream or ended the connection (GOAWAY) first
            return
        if st.encoding == "gzip":
            message = b"\x01" + struct.pack(">I", len(packed := gzip.compress(payload, 6, mtime=0))) + packed
        else:
            message = frame_message(payload)
        st.outbox += message
        self._out_bound += len(message)
        self._flush(st)

    def _finish(self, st: GrpcStream, code: int, message: str) -> None:
        if st.done:
            return
        st.done = True
        if st.watch is not None:
            st.watch.close()
        trailers = trailers_for(code, message)
        if not st.headers_sent:
            # Trailers-only response, as grpc-go sends an error before any message.
            st.headers_sent = True
            self._safe(lambda: self.h2.send_headers(
                st.id, [(b":status", b"200"), (b"content-type", st.content_type.encode()), *trailers],
                end_stream=True))
            self.streams.pop(st.id, None)
            self._reset_if_open(st)
            return
        st.trailers = trailers
        self._flush(st)

    def _flush(self, st: GrpcStream) -> None:
        try:
            while st.outbox:
                window = min(self.h2.local_flow_control_window(st.id), self.h2.max_outbound_frame_size)
                if window <= 0:
                    return
                chunk = bytes(st.outbox[:window])
                del st.outbox[:window]
                self.h2.send_data(st.id, chunk)
            if st.trailers is not None:
                self.h2.send_headers(st.id, st.trailers, end_stream=True)
                st.trailers = None
                self.streams.pop(st.id, None)
                self._reset_if_open(st)
            elif st.end_after_outbox:
                self.h2.end_stream(st.id)
                self.streams.pop(st.id, None)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            self._forget(st.id)

    def _reset_if_open(self, st: GrpcStream) -> None:
        """After the trailers, a stream whose client side is still open is reset with NO_ERROR."""
        if st.client_open:
            self._safe(lambda: self.h2.reset_stream(st.id, h2.errors.ErrorCodes.NO_ERROR))

    def _safe(self, fn: Callable[[], None]) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            fn()

    def _forget(self, stream_id: int) -> None:
        st = self.streams.pop(stream_id, None)
        if st is not None:
            st.done = True
            if st.watch is not None:
                st.watch.close()

    def pump(self, now: float | None = None) -> None:
        """Move queued watch responses into frames and send what flow control allows."""
        limit = self.ctx.limits.wait_timeout_s  # 0: a watch lasts as long as its stream, as in etcd
        now = time.monotonic() if now is None else now
        for st in list(self.streams.values()):
            if st.watch is not None and not st.done:
                self._move_watch_responses(st)
                if limit > 0 and now - st.opened > limit:
                    self._finish(st, Code.OK, "")  # bounded: the client re-establishes its watch
                    continue
            if st.outbox or st.trailers is not None or st.end_after_outbox:
                self._flush(st)

    def close(self) -> None:
        for sid in list(self.streams):
            self._forget(sid)

    def watching(self) -> bool:
        """An open watch stream: a quiet connection that is waiting for events, not an idle one."""
        return any(st.watch is not None and st.watch.watchers and not st.done for st in self.streams.values())

    # --- events -----------------------------------------------------------------------------------
    def _log(self, st: GrpcStream, request: Message | None, code: int | None, raw: bytes | None = None,
             message: str | None = None, logged: dict[str, Any] | None = None) -> None:
        """One `grpc.request` event; undecodable payloads go in raw_b64 (bounded), as malformed input does.
        `code` None: a call held unanswered (`unanswered: true`, no status)."""
        limit = self.ctx.limits.max_logged_body
        if logged is None and request is not None:
            logged = loggable(request, limit)
        self.ctx.events.emit(
            "grpc.request", self.session, grpc_method=st.path, request=logged,
            raw_b64=base64.b64encode(raw[:limit]).decode() if raw else None,
            raw_len=len(raw) if raw else None,
            status=None if code is None else int(code), unanswered=True if code is None else None,
            grpc_message=message or None, user_agent=st.user_agent or None)



"""A lean sans-IO HTTP/2 server connection for the shape gRPC clients send, with h2 as the fallback.

grpc-go (etcdctl), grpcio and the other clients send a fixed shape: the preface, SETTINGS and ACKs,
WINDOW_UPDATE, HEADERS in one frame with a gRPC request block, DATA, PING, RST_STREAM, GOAWAY. This
class reads and writes exactly those frames, with h2's own window managers and our HPACK coders, and
offers the part of `h2.connection.H2Connection`'s API that `GrpcConnection` uses, with the same
events and the same bytes out (`tests/honeypot/v3/test_lean_h2.py` compares them).

Whatever it cannot vouch for (another frame type, CONTINUATION, padding, priority, a header block
not of gRPC's shape, a flow-control or stream-id edge) stops it at that frame: `rest` holds the
bytes from there on, and `adopt` builds an h2 connection in the same state to take over for good,
as the HTTP/1 fast path hands over to h11.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hpack
from h2.connection import ConnectionState
from h2.stream import StreamClosedBy, StreamState
from h2.windows import WindowManager

from etcdsec.honeypot.v3.grpc.lean_headers import CONTENT_LENGTH, vouch_request

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
CONTINUATION = 0x9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65535
MAX_FRAME = 16384  # what we announce (and h2 enforces): a bigger frame goes to h2
MAX_CLOSED = 2**16  # h2's MAX_CLOSED_STREAMS: how many closed stream ids it remembers
MAX_BLOCKS, MAX_BLOCK = 64, 1024  # request blocks judged and kept per connection: at most 64 KiB of them
_HEAD = struct.Struct(">I")
_FRAME = struct.Struct(">IBI")  # length << 8 | type, flags, stream id
_SETTING = struct.Struct(">HI")
_SETTING_CODES = {int(c) for c in h2.settings.SettingCodes}
# Values h2 refuses (ENABLE_PUSH, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, ENABLE_CONNECT_PROTOCOL): h2 judges.
_SETTING_RANGES = {0x2: (0, 1), 0x4: (0, MAX_WINDOW), 0x5: (MAX_FRAME, 16777215), 0x8: (0, 1)}


@dataclass(slots=True)
class LeanStream:
    id: int
    out_window: int
    in_window: WindowManager
    remote_open: bool = True
    local_open: bool = True
    headers_sent: bool = False
    authority: bytes | None = None
    expected_length: int | None = None  # the request's content-length, checked as h2 checks it
    received: int = 0  # body bytes so far
    route: Any = None  # opened as Opened: what unary_route said of its block
    headers: list[tuple[bytes, bytes]] | None = None  # then: its header fields


@dataclass(slots=True)
class Opened:
    """RequestReceived for a block `unary_route` took: the route stands for the headers."""
    stream_id: int
    route: Any


@dataclass(slots=True)
class Unary:
    """DataReceived and StreamEnded for an Opened stream whose whole body came in its first DATA frame
    (END_STREAM): the stream is left as those events leave it (data counted, not yet acknowledged)."""
    stream_id: int
    data: bytes
    headers: list[tuple[bytes, bytes]]  # for the server's way back to the events above
    route: Any


@dataclass
class _Remote:
    """The peer's settings as h2 would hold them, and every setting it sent, in order (for `adopt`)."""
    initial_window: int = DEFAULT_WINDOW
    max_frame: int = MAX_FRAME
    sent: list[tuple[int, int]] = field(default_factory=list)


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return _HEAD.pack(len(payload) << 8 | kind) + bytes((flags,)) + _HEAD.pack(stream_id) + payload


class LeanH2:
    """The server side of one plain-text HTTP/2 connection, for gRPC's shape only."""

    def __init__(self, encoder: Any, decoder: Any, max_streams: int) -> None:
        self.encoder, self.decoder = encoder, decoder
        self.max_streams = max_streams
        self.buf = b""
        self.out = bytearray()
        self.preface_seen = False
        self.settings_seen = False
        self.headers_seen = False
        self.terminated = False
        self.rest: bytes | None = None  # set when it hands over: the bytes h2 must read next
        self.remote = _Remote()
        self.max_outbound_frame_size = MAX_FRAME
        self.outbound_flow_control_window = DEFAULT_WINDOW
        self.inbound = WindowManager(DEFAULT_WINDOW)
        self.highest_inbound_stream_id = 0
        self.streams: dict[int, LeanStream] = {}
        self.closed: OrderedDict[int, StreamClosedBy] = OrderedDict()
        # Closed since the last new stream: h2 forgets closed streams only when it counts open ones (at a
        # new stream's HEADERS) and answers a frame on one it still holds otherwise (adopt keeps that).
        self.recent: dict[int, LeanStream] = {}
        # The connection's judge of a vouched request block: a route when its stream may open as Opened
        # (and end as Unary), else None. A block decoded without changing the HPACK table decodes the
        # same while the table stays so: its fields and verdict are kept (a client repeats a few).
        self.unary_route: Callable[[list[tuple[bytes, bytes]]], Any] | None = None
        self._blocks: dict[bytes, tuple[int, list[tuple[bytes, bytes]], Any, bytes | None, int | None]] = {}

    # --- input --------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[h2.events.Event]:
        """Events for every whole frame it vouches for; at the first it does not, `rest` is set."""
        buf = self.buf + data if self.buf else data
        events: list[h2.events.Event] = []
        pos = 0
        if not self.preface_seen:
            if len(buf) < len(PREFACE):
                if not PREFACE.startswith(buf):
                    return self._hand_over(buf, 0, events)
                self.buf = buf
                return events
            if not buf.startswith(PREFACE):
                return self._hand_over(buf, 0, events)
            self.preface_seen = True
            pos = len(PREFACE)
        end = len(buf)
        unpack, frame_of = _FRAME.unpack_from, self._frame
        while end - pos >= 9 and not self.terminated:
            head, flags, sid = unpack(buf, pos)
            length, kind = head >> 8, head & 0xFF
            if length > MAX_FRAME or sid > MAX_WINDOW or (not self.settings_seen and kind != SETTINGS):
                return self._hand_over(buf, pos, events)
            if end - pos - 9 < length:
                break
            if not frame_of(kind, flags, sid, buf[pos + 9:pos + 9 + length], events):
                return self._hand_over(buf, pos, events)
            pos += 9 + length
        self.buf = buf[pos:] if not self.terminated else b""
        return events

    def _hand_over(self, buf: bytes, pos: int, events: list[h2.events.Event]) -> list[h2.events.Event]:
        self.rest = buf[pos:]
        self.buf = b""
        return events

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes, events: list[h2.events.Event]) -> bool:
        """Apply one frame; False (and nothing changed) when h2 must judge it."""
        if kind == DATA:
            return self._data(flags, sid, payload, events)
        if kind == HEADERS:
            return self._headers(flags, sid, payload, events)
        if kind == WINDOW_UPDATE:
            return self._window_update(sid, payload)
        if kind == PING:
            if sid or len(payload) != 8 or flags & ~ACK:
                return False
            if not flags & ACK:
                self.out += frame(PING, ACK, 0, payload)
            return True
        if kind == SETTINGS:
            return self._settings(flags, sid, payload)
        if kind == RST_STREAM:
            st = self.streams.get(sid)
            if st is None or len(payload) != 4 or flags:
                return False
            code = h2.errors._error_code_from_int(_HEAD.unpack(payload)[0])
            events.append(h2.events.StreamReset(stream_id=sid, error_code=code, remote_reset=True))
            self._close(st, StreamClosedBy.RECV_RST_STREAM)
            return True
        if kind == GOAWAY and not sid and len(payload) >= 8 and not flags:
            last, code = struct.unpack_from(">II", payload)
            ev = h2.events.ConnectionTerminated()
            ev.error_code = h2.errors._error_code_from_int(code)
            ev.last_stream_id = last & MAX_WINDOW
            ev.additional_data = payload[8:] or None
            events.append(ev)
            self.out.clear()  # as h2: nothing more goes out after the peer's GOAWAY
            self.terminated = True
            return True
        return False  # PRIORITY, PUSH_PROMISE, CONTINUATION, unknown types, odd GOAWAY

    def _settings(self, flags: int, sid: int, payload: bytes) -> bool:
        if sid or flags & ~ACK or (flags & ACK and payload) or len(payload) % 6:
            return False
        if flags & ACK:
            return self.settings_seen  # our settings hold from the start (see GrpcConnection.start)
        pairs = [_SETTING.unpack_from(payload, i) for i in range(0, len(payload), 6)]
        window, max_frame = self.remote.initial_window, self.remote.max_frame
        for code, value in pairs:
            low, high = _SETTING_RANGES.get(code, (0, 2**32))
            if not low <= value <= high:
                return False
            if code == 0x4:
                window = value
            elif code == 0x5:
                max_frame = value
        delta = window - self.remote.initial_window
        if any(st.out_window + delta > MAX_WINDOW for st in self.streams.values()):
            return False  # h2's FLOW_CONTROL_ERROR
        self.remote.sent += pairs
        self.settings_seen = True
        for st in self.streams.values():
            st.out_window += delta
        self.remote.initial_window = window
        # h2 applies each setting the frame names (its last value), changed or not: a header table
        # size always reaches the encoder. And it acknowledges at once.
        named = dict(pairs)
        if 0x1 in named:
            self.encoder.header_table_size = named[0x1]
        if 0x5 in named:
            self.max_outbound_frame_size = self.remote.max_frame = max_frame
        self.out += frame(SETTINGS, ACK, 0, b"")
        return True

    def _window_update(self, sid: int, payload: bytes) -> bool:
        if len(payload) != 4:
            return False
        inc = _HEAD.unpack(payload)[0]
        if not 0 < inc <= MAX_WINDOW:
            return False
        if sid == 0:
            if self.outbound_flow_control_window + inc > MAX_WINDOW:
                return False
            self.outbound_flow_control_window += inc
            return True
        st = self.streams.get(sid)
        if st is None:
            return sid <= self.highest_inbound_stream_id and sid in self.closed  # h2 ignores it then
        if st.out_window + inc > MAX_WINDOW:
            return False
        st.out_window += inc
        return True

    def _headers(self, flags: int, sid: int, block: bytes, events: list[Any]) -> bool:
        if flags & ~(END_STREAM | END_HEADERS) != 0 or not flags & END_HEADERS or not sid & 1 \
                or sid <= self.highest_inbound_stream_id or len(self.streams) + 1 > self.max_streams:
            return False
        decoder = self.decoder
        known = self._blocks.get(block)
        if known is not None and known[0] == decoder.changes:
            _, headers, route, authority, length = known
        else:
            before = decoder.changes
            headers = self._vouched(block)
            if headers is None:
                return False
            route = authority = length = None
            for name, value in headers:
                if name == b":authority":
                    authority = value
                elif name == CONTENT_LENGTH:
                    length = int(value)
            if self.unary_route is not None and decoder.changes == before and len(block) <= MAX_BLOCK:
                route = self.unary_route(headers)
                if len(self._blocks) >= MAX_BLOCKS:
                    self._blocks.clear()
                self._blocks[bytes(block)] = (decoder.changes, headers, route, authority, length)
        self.highest_inbound_stream_id = sid
        self.headers_seen = True
        self.recent.clear()
        st = self.streams[sid] = LeanStream(sid, self.remote.initial_window, WindowManager(DEFAULT_WINDOW),
                                            authority=authority, expected_length=length)
        if route is not None and not flags & END_STREAM:
            st.route, st.headers = route, headers
            events.append(Opened(sid, route))
            return True
        ev = h2.events.RequestReceived(stream_id=sid, headers=headers)
        events.append(ev)
        if flags & END_STREAM:
            self._end_remote(st, ev, events)
        return True

    def _vouched(self, block: bytes) -> list[tuple[bytes, bytes]] | None:
        """The block's fields if they are of gRPC's shape; None, with the HPACK table as it was, if not."""
        decoder = self.decoder
        before = decoder.changes
        table = decoder.header_table
        saved = (list(table.dynamic_entries), table._current_size, table._maxsize, table.resized,
                 decoder.max_allowed_table_size)
        try:
            headers = decoder.decode(block, raw=True)
        except Exception:  # hpack's errors: h2 turns them into COMPRESSION_ERROR
            headers = None
        if headers is None or not vouch_request(headers):
            if decoder.changes != before:  # undo what decoding did to the table: h2 decodes it again
                table.dynamic_entries.clear()
                table.dynamic_entries.extend(saved[0])
                table._current_size, table._maxsize, table.resized = saved[1:4]
                decoder.max_allowed_table_size = saved[4]
                decoder.changes += 1
            return None
        return headers

    def _data(self, flags: int, sid: int, payload: bytes, events: list[h2.events.Event]) -> bool:
        st = self.streams.get(sid)
        size = len(payload)
        if st is None or not st.remote_open or flags & ~END_STREAM or size > self.inbound.current_window_size \
                or size > st.in_window.current_window_size:
            return False
        received = st.received + size
        expected = st.expected_length
        if expected is not None and (received > expected or (flags & END_STREAM and received != expected)):
            return False  # h2's InvalidBodyLengthError, with h2's answer
        st.received = received
        self.inbound.window_consumed(size)
        st.in_window.window_consumed(size)
        if st.route is not None and flags & END_STREAM and received == size:  # an Opened stream's whole body at once
            assert st.headers is not None
            events.append(Unary(sid, payload, st.headers, st.route))
            st.remote_open = False
            if not st.local_open:
                self._close(st, StreamClosedBy.RECV_END_STREAM)
            return True
        ev = h2.events.DataReceived(stream_id=sid, data=payload, flow_controlled_length=size)
        events.append(ev)
        if flags & END_STREAM:
            self._end_remote(st, ev, events)
        return True

    def _end_remote(self, st: LeanStream, ev: Any, events: list[h2.events.Event]) -> None:
        ended = h2.events.StreamEnded(stream_id=st.id)
        ev.stream_ended = ended
        events.append(ended)
        st.remote_open = False
        if not st.local_open:
            self._close(st, StreamClosedBy.RECV_END_STREAM)

    def _close(self, st: LeanStream, by: StreamClosedBy) -> None:
        del self.streams[st.id]
        self.closed[st.id] = by
        self.recent[st.id] = st
        if len(self.closed) > MAX_CLOSED:
            self.closed.popitem(last=False)

    # --- output: the part of H2Connection's API GrpcConnection calls ----------------------------
    def initiate_connection(self) -> None:
        """Nothing to do: GrpcConnection sends grpc-go's SETTINGS itself; `adopt` tells h2."""

    def _stream(self, stream_id: int) -> LeanStream:
        if self.terminated:
            raise h2.exceptions.ProtocolError("connection closed")
        st = self.streams.get(stream_id)
        if st is None or not st.local_open:
            raise h2.exceptions.StreamClosedError(stream_id)
        return st

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool = False) -> None:
        st = self._stream(stream_id)
        if st.headers_sent and not end_stream:
            raise h2.exceptions.ProtocolError("trailers must end the stream")
        st.headers_sent = True
        block = self.encoder.encode(headers)
        flags = END_STREAM if end_stream else 0
        size = self.max_outbound_frame_size
        if len(block) <= size:
            self.out += frame(HEADERS, flags | END_HEADERS, stream_id, block)
        else:
            chunks = [block[i:i + size] for i in range(0, len(block), size)]
            self.out += frame(HEADERS, flags, stream_id, chunks[0])
            for i, chunk in enumerate(chunks[1:], 2):
                self.out += frame(CONTINUATION, END_HEADERS if i == len(chunks) else 0, stream_id, chunk)
        if end_stream:
            self._end_local(st)

    def answer(self, stream_id: int, headers: tuple[tuple[bytes, bytes], ...], data: bytes,
               trailers: tuple[tuple[bytes, bytes], ...]) -> bool:
        """A whole unary answer at once: HEADERS, one DATA frame, trailers ending the stream, the
        bytes send_headers, send_data and send_headers(end_stream) make. False, with nothing done,
        when the data does not fit one frame and the windows (the caller then queues it as usual).
        `headers` and `trailers` are constants of plain byte pairs (CachingEncoder.encode_known)."""
        st = self.streams.get(stream_id)
        size = len(data)
        if st is None or self.terminated or not st.local_open or st.headers_sent \
                or size > self.max_outbound_frame_size or size > self.outbound_flow_control_window \
                or size > st.out_window:
            return False
        encode = self.encoder.encode_known
        head = encode(headers)
        tail = encode(trailers)  # each a few dozen bytes: one frame (any peer's limit is >= 16384)
        st.headers_sent = True
        self.outbound_flow_control_window -= size
        st.out_window -= size
        out = self.out
        out += _FRAME.pack(len(head) << 8 | HEADERS, END_HEADERS, stream_id)
        out += head
        out += _FRAME.pack(size << 8 | DATA, 0, stream_id)
        out += data
        out += _FRAME.pack(len(tail) << 8 | HEADERS, END_STREAM | END_HEADERS, stream_id)
        out += tail
        self._end_local(st)
        return True

    def send_data(self, stream_id: int, data: bytes) -> None:
        st = self._stream(stream_id)
        size = len(data)
        if size > self.max_outbound_frame_size:
            raise h2.exceptions.FrameTooLargeError("data frame larger than the peer allows")
        if size > self.outbound_flow_control_window or size > st.out_window:
            raise h2.exceptions.FlowControlError("no window for this data")
        self.outbound_flow_control_window -= size
        st.out_window -= size
        self.out += frame(DATA, 0, stream_id, data)

    def end_stream(self, stream_id: int) -> None:
        st = self._stream(stream_id)
        self.out += frame(DATA, END_STREAM, stream_id, b"")
        self._end_local(st)

    def _end_local(self, st: LeanStream) -> None:
        st.local_open = False
        if not st.remote_open:
            self._close(st, StreamClosedBy.SEND_END_STREAM)

    def reset_stream(self, stream_id: int, error_code: int = 0) -> None:
        st = self.streams.get(stream_id)
        if st is None or self.terminated:
            raise h2.exceptions.StreamClosedError(stream_id)
        self.out += frame(RST_STREAM, 0, stream_id, _HEAD.pack(int(error_code)))
        self._close(st, StreamClosedBy.SEND_RST_STREAM)

    def local_flow_control_window(self, stream_id: int) -> int:
        return min(self.outbound_flow_control_window, self._stream(stream_id).out_window)

    def acknowledge_received_data(self, acknowledged_size: int, stream_id: int) -> None:
        inc = self.inbound.process_bytes(acknowledged_size)
        if inc:
            self.out += frame(WINDOW_UPDATE, 0, 0, _HEAD.pack(inc))
        st = self.streams.get(stream_id)
        if st is not None:
            inc = st.in_window.process_bytes(acknowledged_size)
            if inc:
                self.out += frame(WINDOW_UPDATE, 0, stream_id, _HEAD.pack(inc))

    def data_to_send(self) -> bytes:
        out = bytes(self.out)
        self.out.clear()
        return out

    # --- hand-over ------------------------------------------------------------------------------
    def adopt(self, conn: h2.connection.H2Connection) -> None:
        """Bring a fresh server `conn` (configured, nothing sent yet) to this connection's state."""
        conn.initiate_connection()
        conn.encoder = hpack.Encoder()  # a stand-in: ours already has the peer's table size (and may owe an update)
        settings = b"".join(_SETTING.pack(code, value) for code, value in self.remote.sent
                            if code in _SETTING_CODES)
        if self.preface_seen:  # what the peer sent so far: the preface, its settings (applied as h2 does)
            conn.receive_data(PREFACE + (frame(SETTINGS, 0, 0, settings) if self.settings_seen else b""))
        conn.data_to_send()  # our SETTINGS and the ACK went out long ago
        conn.encoder, conn.decoder = self.encoder, self.decoder  # the HPACK tables, as the peer knows them
        conn.outbound_flow_control_window = self.outbound_flow_control_window
        conn._inbound_flow_control_window_manager = self.inbound
        conn.highest_inbound_stream_id = self.highest_inbound_stream_id
        if self.headers_seen:
            conn.state_machine.state = ConnectionState.SERVER_OPEN
        if self.terminated:
            conn.state_machine.state = ConnectionState.CLOSED
        for sid, by in self.closed.items():
            if sid not in self.recent:
                conn._closed_streams[sid] = by
        for st in [*self.streams.values(), *self.recent.values()]:
            s = h2.stream.H2Stream(sid := st.id, conn.config, DEFAULT_WINDOW, st.out_window)
            s._inbound_window_manager = st.in_window
            s.max_outbound_frame_size = self.max_outbound_frame_size
            s.request_method, s._authority = b"POST", st.authority
            s._expected_content_length, s._actual_content_length = st.expected_length, st.received
            machine = s.state_machine
            machine.client, machine.headers_received = False, True
            machine.headers_sent = st.headers_sent or None
            machine.state = StreamState.OPEN if st.remote_open and st.local_open else \
                StreamState.HALF_CLOSED_REMOTE if st.local_open else \
                StreamState.HALF_CLOSED_LOCAL if st.remote_open else StreamState.CLOSED
            if sid in self.recent:
                machine.state, machine.stream_closed_by = StreamState.CLOSED, self.closed.get(sid)
            conn.streams[sid] = s
        pending = self.data_to_send()
        if pending:
            conn._data_to_send = bytearray(pending) + conn._data_to_send

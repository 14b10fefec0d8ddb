"""A forwarding worker's side of --workers N (one keyspace): v3 calls and watches answered by the keyspace owner.

The transports stay synchronous: `call` sends one frame on the link and waits (bounded) for its
reply, applying watch pushes that arrive meanwhile; frames carry request ids, so late replies of a
call that timed out are recognised and dropped. Between calls the event loop reads the link for
watch pushes. Without a link (the owner restarting) calls fail as etcd without a leader does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from etcdsec.honeypot.v3 import errors
from etcdsec.honeypot.v3 import keyspace_codec as codec
from etcdsec.proto import etcd_v3_pb2 as pb

CALL_TIMEOUT_S = 5.0  # the owner answers in microseconds; this only bounds a stuck or dead owner
MAX_HELD = 4096  # v2 waits a worker holds through the owner at once (each is a client's open connection)
MAX_HELD_CHUNKS = 16
READ_CHUNK = 1 << 18


def _error(code: int, message: object) -> errors.V3Error:
    known = code in errors.Code._value2member_map_
    return errors.V3Error(errors.Code(code) if known else errors.Code.UNKNOWN, str(message))


class RemoteWatch:
    """A WatchStream whose watchers live in the owner: the same face the transports use."""

    def __init__(self, remote: RemoteKeyspace, sid: int, max_pending: int,
                 on_ready: Callable[[], None] | None) -> None:
        self.remote, self.sid = remote, sid
        self.max_pending, self.on_ready = max_pending, on_ready
        self.pending: deque[pb.WatchResponse] = deque()
        self.watchers: set[int] = set()  # open watch ids, as the owner's answers say
        self.dropped = 0
        self.permit: Any = None  # permission checks run in the owner, where the auth store is

    def handle(self, req: pb.WatchRequest) -> None:
        self.remote.request(codec.WATCH_REQ, self.sid, req.SerializeToString())

    def deliver(self, payload: bytes) -> None:
        resp = pb.WatchResponse.FromString(payload)
        if resp.canceled:
            self.watchers.discard(resp.watch_id)
        elif resp.created:
            self.watchers.add(resp.watch_id)
        if len(self.pending) >= self.max_pending:
            self.dropped += 1  # a client that never reads cannot grow our memory
            return
        self.pending.append(resp)
        if self.on_ready is not None:
            self.remote.soon(self.on_ready)

    def close(self) -> None:
        if self.remote.streams.pop(self.sid, None) is not None:
            self.remote.send(codec.encode(codec.WATCH_CLOSE, self.sid))


class HeldBody:
    """The body of a v2 wait the owner holds open: its chunks as they come, then its end."""

    def __init__(self, remote: RemoteKeyspace, rid: int) -> None:
        self.remote, self.rid = remote, rid
        self.chunks: deque[bytes] = deque()
        self.ended = False
        self.ready: asyncio.Future[None] | None = None

    def deliver(self, chunk: bytes) -> None:
        if len(self.chunks) < MAX_HELD_CHUNKS:  # a v2 wait answers one event: more is not ours to keep
            self.chunks.append(chunk)
        self._wake()

    def end(self, notify_owner: bool = False) -> None:
        """The body is over: the owner said so, the link went, or (`notify_owner`) the client left."""
        if self.remote.held.pop(self.rid, None) is not None and notify_owner and self.remote.sock is not None:
            with contextlib.suppress(errors.V3Error):
                self.remote.send(codec.encode(codec.V2_END, self.rid))
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(None)

    async def body(self) -> AsyncIterator[bytes]:
        try:
            while True:
                while self.chunks:
                    yield self.chunks.popleft()
                if self.ended:
                    return
                self.ready = asyncio.get_running_loop().create_future()
                await self.ready
        finally:
            self.end(notify_owner=True)  # the client left (or the body ended): the owner lets go


class RemoteKeyspace:
    def __init__(self, timeout: float = CALL_TIMEOUT_S) -> None:
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.decoder = codec.FrameDecoder()
        self.next_id = int.from_bytes(os.urandom(4))  # a restarted worker's ids differ from its last life's
        self.waiting: set[int] = set()
        self.futures: dict[int, asyncio.Future[Any]] = {}  # calls in flight from `call_async`
        self.outgoing = bytearray()  # their frames, written once per loop turn
        self.replies: dict[int, tuple[int, Any]] = {}
        self.streams: dict[int, RemoteWatch] = {}
        self.held: dict[int, HeldBody] = {}  # v2 waits held open by the owner, by request id
        self.on_push: Callable[[bool, int, bytes], None] | None = None  # the replica's (snapshot?, seq, data)
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- the link ----------------------------------------------------------------------------------
    def attach(self, sock: socket.socket, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Use `sock` from now on (a new owner's link replaces the last one)."""
        self.detach()
        sock.setblocking(False)
        self.sock, self.decoder = sock, codec.FrameDecoder()
        self.loop = loop or self.loop
        if self.loop is not None:
            self.loop.add_reader(sock.fileno(), self._on_readable)

    def detach(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            if self.loop is not None:
                with contextlib.suppress(Exception):
                    self.loop.remove_reader(sock.fileno())
            sock.close()
        self.outgoing.clear()
        # watches lived in the owner that went away: their streams stay open but quiet
        self.streams.clear()
        for held in list(self.held.values()):  # a held v2 wait ends, as when etcd closes it
            held.end()
        futures, self.futures = self.futures, {}
        for future in futures.values():
            if not future.done():
                future.set_exception(errors.request_timed_out())

    def soon(self, fn: Callable[[], None]) -> None:
        if self.loop is not None:
            self.loop.call_soon(fn)
        else:
            fn()

    def _on_readable(self) -> None:
        try:
            self._read()
        except (OSError, codec.CodecError):
            self.detach()

    def drain(self) -> None:
        """Take what the link holds now, without waiting (a replica catching up before a read)."""
        if self.sock is not None:
            self._on_readable()

    def _read(self) -> None:
        """Take what the link holds (bounded per turn) and dispatch it."""
        assert self.sock is not None
        for _ in range(64):
            try:
                data = self.sock.recv(READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                raise ConnectionResetError("keyspace owner closed the link")
            for frame in self.decoder.feed(data):
                self._dispatch(frame)
            if len(data) < READ_CHUNK:
                return  # drained: no recv just to hear EAGAIN

    def _dispatch(self, frame: tuple[Any, ...]) -> None:
        kind, ident = frame[0], frame[1]
        if kind == codec.REPLY:
            if ident in self.waiting:
                self.replies[ident] = (frame[2], frame[3])
            future = self.futures.pop(ident, None)
            if future is not None and not future.done():
                code, payload = frame[2], frame[3]
                if code:
                    future.set_exception(_error(code, payload))
                else:
                    future.set_result(payload)
        elif kind == codec.WATCH_PUSH:
            stream = self.streams.get(ident)
            if stream is not None:
                stream.deliver(frame[2])
        elif kind in (codec.REPL, codec.REPL_SNAP):
            if self.on_push is not None:
                self.on_push(kind == codec.REPL_SNAP, ident, frame[2])
        elif kind in (codec.V2_CHUNK, codec.V2_END):
            held = self.held.get(ident)
            if held is not None:
                if kind == codec.V2_CHUNK:
                    held.deliver(frame[2])
                else:
                    held.end()
        else:
            raise codec.CodecError(f"frame kind {kind} is not for a worker")

    def send(self, data: bytes, deadline: float | None = None) -> None:
        """Write a whole frame; replies and pushes are read meanwhile, so the owner never stalls on us."""
        if self.sock is None:
            raise errors.request_timed_out()
        if self.outgoing:  # frames queued this turn go first: the link keeps the order calls were made in
            data, self.outgoing = bytes(self.outgoing) + data, bytearray()
        deadline = deadline or time.monotonic() + self.timeout
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[self.sock.send(view):]
                    continue
                except (BlockingIOError, InterruptedError):
                    pass
                self._wait(deadline, write=True)
        except (OSError, codec.CodecError):
            self.detach()
            raise errors.request_timed_out() from None

    def _wait(self, deadline: float, write: bool = False) -> None:
        assert self.sock is not None
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        readable, _, _ = select.select([self.sock], [self.sock] if write else [], [], left)
        if readable:
            self._read()

    # --- calls -------------------------------------------------------------------------------------
    def request(self, kind: int, *fields: Any) -> Any:
        """Send one frame that the owner answers and wait for the answer (V3Error on failure)."""
        rid = self.next_id = (self.next_id + 1) & 0xFFFF_FFFF
        deadline = time.monotonic() + self.timeout
        self.waiting.add(rid)
        try:
            self.send(codec.encode(kind, rid, *fields), deadline)
            try:
                while rid not in self.replies:
                    if self.sock is None:
                        raise errors.request_timed_out()
                    self._wait(deadline)
            except (OSError, codec.CodecError):
                self.detach()
                raise errors.request_timed_out() from None
            code, payload = self.replies.pop(rid)
        finally:
            self.waiting.discard(rid)
            self.replies.pop(rid, None)
        if code:
            raise _error(code, payload)
        return payload

    def call(self, path: str, src_ip: str, token: str | None, payload: bytes) -> Any:
        """One v3 method run by the owner: its response bytes (a list of them for a server stream)."""
        return self.request(codec.CALL, path, src_ip, token if token is not None else "\0", payload)

    async def call_async(self, path: str, src_ip: str, token: str | None, payload: bytes) -> Any:
        """`call` without holding the worker: many in flight, each answered when its reply comes."""
        rid = self._new_id()
        return await self._awaited(rid, codec.encode(codec.CALL, rid, path, src_ip,
                                                     token if token is not None else "\0", payload))

    async def hold(self, src_ip: str, payload: bytes) -> tuple[HeldBody, Any]:
        """A v2 request whose body the owner may hold open (`wait=true`): the body's stream and the
        head's reply. The stream is registered before the frame goes, so no chunk can come first."""
        rid = self._new_id()
        held = self.held[rid] = HeldBody(self, rid)
        if len(self.held) > MAX_HELD:  # the oldest gives way, as the v2 store's watchers do
            self.held[next(iter(self.held))].end(notify_owner=True)
        try:
            return held, await self._awaited(rid, codec.encode(codec.V2_HOLD, rid, src_ip, payload))
        except BaseException:
            held.end(notify_owner=True)
            raise

    def _new_id(self) -> int:
        self.next_id = (self.next_id + 1) & 0xFFFF_FFFF
        return self.next_id

    async def _awaited(self, rid: int, frame: bytes) -> Any:
        loop = self.loop
        if loop is None or self.sock is None:
            raise errors.request_timed_out()
        future = self.futures[rid] = loop.create_future()
        # frames of one loop turn go out in one write; a timer, not wait_for's Task, bounds the wait
        if not self.outgoing:
            loop.call_soon(self._flush_outgoing)
        self.outgoing += frame
        timer = loop.call_later(self.timeout, self._expire, rid)
        try:
            return await future
        finally:
            timer.cancel()
            self.futures.pop(rid, None)

    def _expire(self, rid: int) -> None:
        future = self.futures.pop(rid, None)
        if future is not None and not future.done():
            future.set_exception(errors.request_timed_out())

    def _flush_outgoing(self) -> None:
        data, self.outgoing = bytes(self.outgoing), bytearray()
        if data:
            try:
                self.send(data)
            except errors.V3Error:
                pass  # the link is gone: detach() has failed every call in flight

    def open_watch(self, src_ip: str, max_pending: int = 256,
                   on_ready: Callable[[], None] | None = None) -> RemoteWatch:
        sid = self.next_id = (self.next_id + 1) & 0xFFFF_FFFF
        stream = RemoteWatch(self, sid, max_pending, on_ready)
        self.request(codec.WATCH_OPEN, sid, src_ip)
        self.streams[sid] = stream
        return stream

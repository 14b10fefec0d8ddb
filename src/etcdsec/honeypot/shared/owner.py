"""The keyspace owner's side of --workers N (one keyspace): run other workers' v3 calls and watches here.

Worker 0 holds the one V3State (and its journal); each other worker has a link (a unix socketpair
the supervisor made and handed over). Frames are answered in the order they arrive, so a worker's
calls apply in its order; watch responses a commit causes are sent before the reply of the write
that made it, so a writer that then reads its watch finds them there. The owner never blocks on a
link: what a worker does not read yet waits in that link's bounded outbox (watch pushes past the
bound are dropped and counted, replies never).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.persist.records import KeyspaceRecords, Record
from etcdsec.honeypot.v3 import errors, service
from etcdsec.honeypot.v3 import keyspace_codec as codec
from etcdsec.honeypot.v3.gateway import json_gateway
from etcdsec.honeypot.v3.replica import Published
from etcdsec.honeypot.v3.state import V3State
from etcdsec.honeypot.v3.watch import WatchStream
from etcdsec.proto import etcd_v3_pb2 as pb

READ_CHUNK = 1 << 18
FRAMES_PER_TURN = 256  # one busy link cannot keep the loop from the owner's own clients
MAX_OUTBOX = 32 << 20  # watch pushes beyond this wait nowhere: dropped and counted
MAX_HELD = 4096  # v2 waits held for one worker at once (as remote.MAX_HELD)
SNAPSHOT_EVERY_S = 1.0  # snapshots asked for by replicas, at most this often (all links together)
KEEPALIVE = "/etcdserverpb.Lease/LeaseKeepAlive"

log = logging.getLogger(__name__)
HoldHandler = Callable[[Session, bytes], tuple[bytes, AsyncIterator[bytes] | None]]


_SESSIONS: dict[str, Session] = {}  # a forwarded call needs only the address; Session.new costs a uuid4


def _session(src_ip: str) -> Session:
    session = _SESSIONS.get(src_ip)
    if session is None:
        if len(_SESSIONS) >= 4096:
            _SESSIONS.clear()
        session = _SESSIONS[src_ip] = Session.new(src_ip, 0, "", 0)
    return session


class Link:
    def __init__(self, owner: KeyspaceOwner, index: int, sock: socket.socket) -> None:
        self.owner, self.index, self.sock = owner, index, sock
        self.decoder = codec.FrameDecoder()
        self.outbox = bytearray()
        self.streams: dict[int, WatchStream] = {}
        self.pending: list[tuple[Any, ...]] = []
        self.closed = False
        self.batch: bytearray | None = None
        self.held: dict[int, asyncio.Task[None]] = {}  # v2 waits this worker's clients hold, by request id
        self.paused = False  # its replica wants no changes until it asks for a snapshot

    # --- output ------------------------------------------------------------------------------------
    def send(self, data: bytes, droppable: bool = False, soon: bool = False) -> None:
        """`soon`: it may wait for the end of this loop turn (a replica's change: the shared count says
        it is coming, so a read that comes first goes to the owner), written with what else the turn sends."""
        if self.closed:
            return
        if droppable and len(self.outbox) > MAX_OUTBOX:
            self.owner.dropped += 1
            return
        if self.batch is not None:  # answering a read's frames: one write at the end of the turn
            self.batch += data
            return
        if soon:
            self.batch = bytearray(data)
            self.owner.loop.call_soon(self._flush_batch)
            return
        if not self.outbox:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close()
                return
            if sent == len(data):
                return
            data = data[sent:]
            self.owner.loop.add_writer(self.sock.fileno(), self._on_writable)
        self.outbox += data

    def _on_writable(self) -> None:
        try:
            sent = self.sock.send(self.outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        del self.outbox[:sent]
        if not self.outbox:
            self.owner.loop.remove_writer(self.sock.fileno())

    # --- input -------------------------------------------------------------------------------------
    def on_readable(self) -> None:
        if self.batch is None:  # else changes pushed this turn are waiting: they go first, in order
            self.batch = bytearray()
        try:
            self._serve_turn()
        finally:
            self._flush_batch()

    def _flush_batch(self) -> None:
        batch, self.batch = self.batch, None
        if batch:
            self.send(bytes(batch))

    def _serve_turn(self) -> None:
        try:
            drained = False
            for _ in range(FRAMES_PER_TURN):
                if self.pending:
                    self.handle(self.pending.pop(0))
                    continue
                if drained:
                    return
                try:
                    data = self.sock.recv(READ_CHUNK)
                except (BlockingIOError, InterruptedError):
                    return
                if not data:  # the worker is gone: its watches go with it
                    self.close()
                    return
                self.pending = self.decoder.feed(data)
                drained = len(data) < READ_CHUNK  # then no recv just to hear EAGAIN
            if self.pending and not self.closed:  # the turn's share is used: the rest on the next turn
                self.owner.loop.call_soon(self.on_readable)
        except (OSError, codec.CodecError) as exc:
            log.warning("keyspace link of worker %d closed: %s", self.index, exc)
            self.close()

    def handle(self, frame: tuple[Any, ...]) -> None:
        kind, ident = frame[0], frame[1]
        if kind == codec.CALL:
            self.send(self.owner.answer(ident, frame[2], frame[3], frame[4], frame[5]))
        elif kind == codec.WATCH_OPEN:
            self._open(ident, frame[2], frame[3])
        elif kind == codec.WATCH_REQ:
            stream = self.streams.get(frame[2])
            if stream is not None:
                try:
                    stream.handle(pb.WatchRequest.FromString(frame[3]))
                except Exception:
                    self.send(codec.encode(codec.REPLY, ident, int(errors.Code.INVALID_ARGUMENT), "bad request"))
                    return
            self.send(codec.encode(codec.REPLY, ident, 0, b""))
        elif kind == codec.WATCH_CLOSE:
            stream = self.streams.pop(ident, None)
            if stream is not None:
                stream.close()
        elif kind == codec.REPL_ASK:  # a replica that dropped changes: a fresh snapshot (the owner paces them)
            self.paused = False
            self.owner.asked(self)
        elif kind == codec.REPL_PAUSE:  # nobody reads from that replica: its changes cost for nothing
            self.paused = True
        elif kind == codec.V2_HOLD:
            self._hold(ident, frame[2], frame[3])
        elif kind == codec.V2_END:  # the worker's client left: its watcher goes
            task = self.held.pop(ident, None)
            if task is not None:
                task.cancel()
        else:
            raise codec.CodecError(f"frame kind {kind} is not for the owner")

    def _open(self, rid: int, sid: int, src_ip: str) -> None:
        state = self.owner.state
        if state is None:  # a persona without v3: no worker of ours asks this
            raise codec.CodecError("a watch on a sensor without v3")
        limits = state.ctx.limits
        ns = state.namespace(_session(src_ip))
        old = self.streams.pop(sid, None)
        if old is not None:
            old.close()

        def ready() -> None:
            stream = self.streams.get(sid)
            while stream is not None and stream.pending:
                self.send(codec.encode(codec.WATCH_PUSH, sid, stream.pending.popleft().SerializeToString()),
                          droppable=True)

        self.streams[sid] = ns.hub.open(max_watchers=limits.max_watches_per_source, on_ready=ready)
        self.send(codec.encode(codec.REPLY, rid, 0, b""))

    def _hold(self, rid: int, src_ip: str, payload: bytes) -> None:
        """A v2 wait: the head now; its body, when the owner's store fires, as V2_CHUNKs then V2_END."""
        hold = self.owner.held
        if hold is None:
            self.send(codec.encode(codec.REPLY, rid, int(errors.Code.UNAVAILABLE), "etcdserver: no v2 store"))
            return
        try:
            head, body = hold(_session(src_ip), payload)
        except errors.V3Error as err:
            self.send(codec.encode(codec.REPLY, rid, int(err.code) or int(errors.Code.UNKNOWN), err.message))
            return
        except Exception:
            log.exception("keyspace owner: a v2 wait failed")
            self.send(codec.encode(codec.REPLY, rid, int(errors.Code.UNKNOWN), "etcdserver: unknown error"))
            return
        self.send(codec.encode(codec.REPLY, rid, 0, head))
        if body is None:
            return
        if len(self.held) >= MAX_HELD:  # the worker bounds them too; never trust it to
            self.held.pop(next(iter(self.held))).cancel()
        self.held[rid] = self.owner.loop.create_task(self._relay(rid, body))

    async def _relay(self, rid: int, body: AsyncIterator[bytes]) -> None:
        try:
            async for chunk in body:
                self.send(codec.encode(codec.V2_CHUNK, rid, chunk))
            self.send(codec.encode(codec.V2_END, rid))
        finally:
            if self.held.get(rid) is asyncio.current_task():
                del self.held[rid]
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()  # the v2 store's watcher is cancelled there

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in self.streams.values():
            stream.close()
        self.streams.clear()
        for task in self.held.values():
            task.cancel()
        self.held.clear()
        loop = self.owner.loop
        with contextlib.suppress(Exception):
            loop.remove_reader(self.sock.fileno())
        with contextlib.suppress(Exception):
            loop.remove_writer(self.sock.fileno())
        self.sock.close()
        if self.owner.links.get(self.index) is self:
            del self.owner.links[self.index]


class KeyspaceOwner:
    def __init__(self, state: V3State | None, loop: asyncio.AbstractEventLoop,
                 records: KeyspaceRecords | None = None, published: Published | None = None) -> None:
        """`records` and `published`: the keyspace's change records and the page shared with the
        workers; with both, every forwarding worker gets a replica it serves reads from."""
        self.state, self.loop = state, loop
        self.links: dict[int, Link] = {}
        self.records = records if state is not None and not state.ctx.namespace_writes else None
        self.published = published
        self.seq = 0
        self.auth = False
        self.snapshot_at = -1e9  # loop time of the last snapshot a replica asked for
        if self.records is not None and published is not None:
            # a new life: replicas of the last one (whose unflushed writes may be gone) wait for our snapshot
            self.seq = published.read()[0] + 1
            published.write(self.seq, False)
            assert state is not None
            state.on_auth = self._auth_switched
            self.records.sinks.append(self._push)
            self.records.hook()
        self.dropped = 0  # watch responses a worker did not read in time
        self.calls = 0
        # calls answered outside the v3 service (the v2 API): path -> (session, payload) -> reply bytes
        self.extra: dict[str, Callable[[Session, bytes], bytes]] = {}
        self.held: HoldHandler | None = None  # a v2 wait: (session, payload) -> its head, its body's stream

    def adopt(self, index: int, sock: socket.socket) -> None:
        """Serve worker `index` on `sock` (a restarted worker's new link replaces its old one)."""
        old = self.links.pop(index, None)
        if old is not None:
            old.close()
        sock.setblocking(False)
        link = self.links[index] = Link(self, index, sock)
        self.loop.add_reader(sock.fileno(), link.on_readable)
        self.send_snapshot(link)  # the replica starts from the whole keyspace

    def asked(self, link: Link) -> None:
        """A snapshot for a replica that asked: at most one a second for all links together (each
        costs the owner's loop a pass over the keyspace); a replica not served asks again."""
        now = self.loop.time()
        if now - self.snapshot_at >= SNAPSHOT_EVERY_S:
            self.snapshot_at = now
            self.send_snapshot(link)

    def send_snapshot(self, link: Link) -> None:
        if self.records is not None and self.published is not None:
            body = orjson.dumps(self.records.snapshot_body(with_v2=False))
            link.send(codec.encode(codec.REPL_SNAP, self.seq, body))

    # --- replicas ----------------------------------------------------------------------------------
    def _push(self, record: Record) -> None:
        """One committed change to every replica, counted in the shared page before any reply goes."""
        if record["t"] in ("v2", "v2x") or self.published is None:
            return  # v2 requests are all answered here: no replica needs the v2 store
        self.seq += 1
        self.published.write(self.seq, self.auth)
        frame = b""
        for link in self.links.values():
            if not link.paused:
                frame = frame or codec.encode(codec.REPL, self.seq, orjson.dumps(record))
                # droppable: a replica that misses one stops serving reads, never answers stale
                link.send(frame, droppable=True, soon=True)

    def _auth_switched(self, enabled: bool) -> None:
        self.auth = enabled
        if self.published is not None:
            self.published.write(self.seq, enabled)

    def close(self) -> None:
        for link in list(self.links.values()):
            link.close()

    def answer(self, rid: int, path: str, src_ip: str, token: str, payload: bytes) -> bytes:
        """Run one forwarded call here; its REPLY frame (the error's code and text when it failed)."""
        self.calls += 1
        session = _session(src_ip)
        tok = None if token == "\0" else token
        try:
            extra = self.extra.get(path)
            if extra is not None:
                body: Any = extra(session, payload)
            elif self.state is None:  # a persona without v3 shares its v2 store only
                raise errors.unknown_method(path)
            elif path in (json_gateway.SIMPLE_RANGE, json_gateway.SIMPLE_PUT):  # the gateway's JSON fast path
                body = json_gateway.simple_json(self.state, session, path, payload, tok)
            elif path == KEEPALIVE:
                result: Any = service.keepalive(self.state, session, pb.LeaseKeepAliveRequest.FromString(payload))
                body = result.SerializeToString()
            else:
                method = service.METHODS.get(path)
                if method is None or method.handler is None:
                    raise errors.unknown_method(path)
                request = method.request.FromString(payload)
                if method.server_stream:
                    body = [m.SerializeToString()
                            for m in service.invoke_stream(self.state, session, method, request, tok)]
                else:
                    body = service.invoke(self.state, session, method, request, tok).SerializeToString()
        except errors.V3Error as err:
            return codec.encode(codec.REPLY, rid, int(err.code) or int(errors.Code.UNKNOWN), err.message)
        except Exception:  # a request that breaks a handler fails alone, as a panic-free etcd would
            log.exception("keyspace owner: %s failed", path)
            return codec.encode(codec.REPLY, rid, int(errors.Code.UNKNOWN), "etcdserver: unknown error")
        return codec.encode(codec.REPLY, rid, 0, body)

"""A worker's place in the one keyspace of --workers N: owner of the v3 keyspace (worker 0) or forwarder to it.

Links are unix socketpairs the supervisor makes: a forwarding worker gets its end at fork time
(the sensor's `WorkerSlot.link`); the owner gets the other end, and a forwarding worker a new end when the
owner was restarted, as a file descriptor passed on the control socket, each with the message
`L` + the worker's index (2 bytes). With one worker (or --keyspace-per-worker) this does nothing.
A persona without v3 (2.3.8) shares its v2 store the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

import orjson

from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.persist.records import KeyspaceRecords
from etcdsec.honeypot.shared.owner import HoldHandler, KeyspaceOwner
from etcdsec.honeypot.v2.keystore import V2Store
from etcdsec.honeypot.v3 import keyspace_codec as codec
from etcdsec.honeypot.v3.remote import RemoteKeyspace
from etcdsec.honeypot.v3.replica import Published, Replica

LINK = b"L"
LINK_MESSAGE = 3  # b"L" + index, 2 bytes big-endian


def link_message(index: int) -> bytes:
    return LINK + index.to_bytes(2, "big")


class KeyspaceLink:
    def __init__(self, shared: bool, forwarding: bool, first: socket.socket | None, state: Any | None,
                 published: Published | None = None) -> None:
        """`shared`: one keyspace for all workers; `forwarding`: this worker is not the owner; `first`: a
        forwarding worker's link made before its fork; `published`: the page the owner counts its
        pushes in, for replicas (the sensor's WorkerSlot says all four)."""
        self.state = state  # the V3State; None for a persona without v3 (only v2 is shared then)
        self.shared = shared
        self.forwarding = self.shared and forwarding
        self.is_owner = self.shared and not self.forwarding
        self.first = first if self.shared else None
        self.owner: KeyspaceOwner | None = None
        self.early: list[tuple[int, socket.socket]] = []  # links that came before the loop ran
        self.extra: dict[str, Callable[[Session, bytes], bytes]] = {}  # handed to the owner (the v2 API)
        self.held: HoldHandler | None = None  # the owner's v2 waits
        self.remote: RemoteKeyspace | None = RemoteKeyspace() if self.forwarding else None
        self.published = published
        self.records: KeyspaceRecords | None = None  # the owner's: the journal's, else made at start
        if state is not None:
            state.remote = self.remote
            if self.remote is not None and published is not None and not state.ctx.namespace_writes:
                state.replica = self._replica(state, self.remote, published)

    @staticmethod
    def _replica(state: Any, remote: RemoteKeyspace, published: Published) -> Replica:
        """This worker's V3State becomes a copy of the owner's, kept by its pushes (v3/replica.py)."""
        records = KeyspaceRecords(state, V2Store())  # v3 only: v2 requests all go to the owner

        def apply(data: bytes, snapshot: bool) -> None:
            body = orjson.loads(data)
            if snapshot:
                records.load_snapshot(body)
            else:
                records.apply(body)

        def tell(kind: int) -> Callable[[], None]:
            def send() -> None:
                if remote.sock is not None:
                    with contextlib.suppress(Exception):  # a link that fails is detached by send itself
                        remote.send(codec.encode(kind, 0))
            return send

        replica = Replica(published, apply, remote.drain, lambda: remote.sock is not None, tell(codec.REPL_ASK),
                          pause=tell(codec.REPL_PAUSE))
        remote.on_push = replica.on_push
        return replica

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.is_owner:
            if self.records is None and self.state is not None:
                self.records = KeyspaceRecords(self.state, V2Store())  # nothing journalled: records for replicas
            self.owner = KeyspaceOwner(self.state, loop, self.records, self.published)
            self.owner.extra.update(self.extra)
            self.owner.held = self.held
        elif self.remote is not None:
            self.remote.loop = loop
            if self.first is not None:
                self.remote.attach(self.first, loop)
        for index, sock in self.early:
            self._adopt(index, sock)
        self.early.clear()

    def take(self, data: bytes, fds: list[int]) -> bytes:
        """Adopt the links among the control messages in `data`; the rest of `data` (metrics asks)."""
        if not fds and LINK not in data:
            return data
        rest = bytearray()
        i = 0
        while i < len(data):
            if data[i:i + 1] == LINK and len(data) - i >= LINK_MESSAGE:
                index = int.from_bytes(data[i + 1:i + 3], "big")
                if fds:
                    self._adopt(index, socket.socket(fileno=fds.pop(0)))
                i += LINK_MESSAGE
            else:
                rest += data[i:i + 1]
                i += 1
        for fd in fds:  # nothing of ours: never leak a descriptor
            with contextlib.suppress(OSError):
                socket.socket(fileno=fd).close()
        return bytes(rest)

    def _adopt(self, index: int, sock: socket.socket) -> None:
        if not self.shared:
            sock.close()
        elif self.is_owner:
            if self.owner is None:
                self.early.append((index, sock))
            else:
                self.owner.adopt(index, sock)
        elif self.remote is not None:
            if self.remote.loop is None:
                self.early.append((index, sock))
            else:
                self.remote.attach(sock)

    def close(self) -> None:
        if self.owner is not None:
            self.owner.close()
        if self.remote is not None:
            self.remote.detach()

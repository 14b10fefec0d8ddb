"""A forwarding worker's copy of the owner's v3 keyspace, so that reads need no round trip.

The keyspace owner pushes its keyspace to every forwarding worker when their link opens (REPL_SNAP)
and then each change as it commits (REPL, the journal's own records), before the reply of the write
that made it. It also keeps a count of the changes it pushed, and whether auth is on, in a page of
memory the supervisor shares with every worker (`Published`). A forwarding worker answers a Range
from its copy only when the copy has applied every change the owner had counted when the read came
in (it reads what the link holds first): so a read sees every write whose reply was sent before it,
through any worker (linearizable, as etcd's default reads; read-your-writes included). Otherwise, and
for everything else (writes, leases, watches, reads below the copy's oldest revision, auth on),
the call goes to the owner as before. The copy never expires leases or replays the heartbeat
itself: those arrive as the owner's records.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable

PAGE = struct.Struct("<qq")  # changes the owner has pushed, auth on (1) or off (0)


class Published:
    """The owner's count of pushed changes and its auth switch, in memory shared by every worker."""

    def __init__(self, page: mmap.mmap | None = None) -> None:
        self.page = page if page is not None else mmap.mmap(-1, PAGE.size)

    @classmethod
    def shared(cls) -> Published:
        """Made by the supervisor before it forks: every worker (and a restarted one) maps the same page."""
        return cls(mmap.mmap(-1, PAGE.size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS))

    def read(self) -> tuple[int, bool]:
        seq, auth = PAGE.unpack_from(self.page, 0)
        return seq, bool(auth)

    def write(self, seq: int, auth: bool) -> None:
        PAGE.pack_into(self.page, 0, seq, 1 if auth else 0)


class Replica:
    """The forwarding worker's side: applies the owner's pushes; says when a read may be served here."""

    def __init__(self, published: Published, apply: Callable[[bytes, bool], None],
                 drain: Callable[[], None], linked: Callable[[], bool]) -> None:
        """`apply(data, snapshot)` puts one pushed record (or a whole snapshot) into the local copy;
        `drain()` reads what the link already holds (without waiting); `linked()`: the owner is there
        (without it reads fail as every call does, as on an etcd member without a leader)."""
        self.published, self.apply, self.drain, self.linked = published, apply, drain, linked
        self.seq = -1  # the last change applied; -1: no snapshot yet (or a push that failed to apply)
        self.served = 0  # reads answered here
        self.broken = 0  # pushes that could not be applied (the copy waits for the next snapshot)

    def on_push(self, snapshot: bool, seq: int, data: bytes) -> None:
        if not snapshot and (self.seq < 0 or seq != self.seq + 1):
            return  # out of step (never on one ordered link): wait for the next snapshot
        try:
            self.apply(data, snapshot)
        except Exception:  # a push we cannot apply: stop serving from the copy rather than guess
            self.seq = -1
            self.broken += 1
            return
        self.seq = seq

    def current(self) -> bool:
        """Whether the copy holds every change the owner had pushed when this read came in."""
        seq, auth = self.published.read()
        if auth or self.seq < 0 or not self.linked():
            return False  # auth on: the owner's roles decide; no copy yet; no owner
        if self.seq < seq:
            self.drain()  # the pushes are on the link already unless the owner's outbox holds them
        if self.seq < seq:
            return False
        self.served += 1
        return True

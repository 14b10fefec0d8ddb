"""A forwarding worker's copy of the owner's v3 keyspace, so that reads need no round trip.

The keyspace owner pushes its keyspace to every forwarding worker when their link opens (REPL_SNAP,
and again when a replica asks: REPL_ASK) and then each change as it commits (REPL, the journal's own
records), before the reply of the write that made it. The worker applies them when a read needs
them. It also keeps a count of the changes it pushed, and whether auth is on, in a page of
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
import time
from collections.abc import Callable

PAGE = struct.Struct("<qq")  # changes the owner has pushed, auth on (1) or off (0)
MAX_PENDING = 5_000  # changes kept unapplied at most (then dropped: the next read asks for a snapshot)
MAX_PENDING_BYTES = 64 << 20


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
    """The forwarding worker's side: keeps the owner's pushes; says when a read may be served here.

    Pushes are kept as they came and applied only when a read needs them, so a worker that only
    forwards writes spends nothing on its copy. Past `MAX_PENDING` unapplied changes they are dropped,
    the owner is told to stop sending them (`pause`) and the copy is stale: the next read goes to the
    owner and asks it for a fresh snapshot and changes again (`ask`, at most once a second), which
    are applied when a read needs them.
    """

    def __init__(self, published: Published, apply: Callable[[bytes, bool], None],
                 drain: Callable[[], None], linked: Callable[[], bool], ask: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic, pause: Callable[[], None] | None = None) -> None:
        """`apply(data, snapshot)` puts one pushed record (or a whole snapshot) into the local copy;
        `drain()` reads what the link already holds (without waiting); `linked()`: the owner is there
        (without it reads fail as every call does, as on an etcd member without a leader); `ask()`
        asks the owner for a snapshot (and changes again); `pause()` tells it to send no changes until then."""
        self.published, self.apply, self.drain, self.linked, self.ask = published, apply, drain, linked, ask
        self.pause = pause
        self.clock = clock
        self.seq = -1  # the last change applied
        self.received = -1  # the last change received (applied or waiting); -1: stale, a snapshot is needed
        self.snapshot: bytes | None = None  # received, not applied yet
        self.pending: list[bytes] = []  # changes after it (or after `seq`), not applied yet
        self.pending_bytes = 0
        self.asked_at: float | None = None
        self.served = 0  # reads answered here
        self.broken = 0  # pushes that could not be applied (the copy waits for the next snapshot)
        self.dropped = 0  # times the unapplied changes outgrew MAX_PENDING

    def on_push(self, snapshot: bool, seq: int, data: bytes) -> None:
        if snapshot:
            self.snapshot, self.pending, self.pending_bytes, self.received, self.asked_at = data, [], 0, seq, None
            return
        if self.received < 0 or seq != self.received + 1:
            self.received = -1  # out of step (a change the owner dropped): stale until the next snapshot
            return
        if len(self.pending) >= MAX_PENDING or self.pending_bytes > MAX_PENDING_BYTES:
            # nobody read for a long while: keep nothing, ask for a snapshot when someone does
            self.snapshot, self.pending, self.pending_bytes, self.received = None, [], 0, -1
            self.dropped += 1
            if self.pause is not None:
                self.pause()  # the owner stops encoding changes for us until a read asks again
            return
        self.pending.append(data)
        self.pending_bytes += len(data)
        self.received = seq

    def current(self) -> bool:
        """Whether the copy holds every change the owner had pushed when this read came in."""
        seq, auth = self.published.read()
        if auth or not self.linked():
            return False  # auth on: the owner's roles decide; no owner
        if self.received < seq:
            self.drain()  # the pushes are on the link already unless the owner's outbox holds them
        if self.received < 0:
            now = self.clock()
            if self.asked_at is None or now - self.asked_at >= 1.0:
                self.asked_at = now
                self.ask()
            return False
        if self.received < seq:
            return False
        if self.seq != self.received and not self._catch_up():
            return False
        self.served += 1
        return True

    def _catch_up(self) -> bool:
        try:
            if self.snapshot is not None:
                snapshot, self.snapshot = self.snapshot, None
                self.apply(snapshot, True)
            pending, self.pending, self.pending_bytes = self.pending, [], 0
            for data in pending:
                self.apply(data, False)
        except Exception:  # a push we cannot apply: stop serving from the copy rather than guess
            self.seq = self.received = -1
            self.broken += 1
            return False
        self.seq = self.received
        return True

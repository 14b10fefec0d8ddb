"""Watch streams with bounded queues (sans-IO).

A `WatchStream` is one Watch RPC (or one gateway /v3/watch request): requests go in through
`handle`, responses collect in `pending` and the I/O layer drains them after `on_ready` fires.
The hub fans committed changes out to every stream of its namespace.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from etcdsec.honeypot.v3.mvcc import Change, KeyRev, MVCCStore, in_range, range_end_of
from etcdsec.proto import etcd_v3_pb2 as pb

HeaderFactory = Callable[[int], pb.ResponseHeader]

NOPUT, NODELETE = 0, 1
MAX_REPLAY_EVENTS = 1000  # events of one start_revision replay response


def kv_message(kv: KeyRev) -> pb.KeyValue:
    if kv.deleted:
        return pb.KeyValue(key=kv.key, mod_revision=kv.mod_revision)
    return pb.KeyValue(key=kv.key, create_revision=kv.create_revision, mod_revision=kv.mod_revision,
                       version=kv.version, value=kv.value, lease=kv.lease)


@dataclass
class Watcher:
    id: int
    start: bytes
    end: bytes | None
    prev_kv: bool
    filters: frozenset[int]

    def event(self, change: Change) -> pb.Event | None:
        if not in_range(change.kv.key, self.start, self.end):
            return None
        kind = pb.Event.DELETE if change.kv.deleted else pb.Event.PUT
        if (kind == pb.Event.PUT and NOPUT in self.filters) or (
                kind == pb.Event.DELETE and NODELETE in self.filters):
            return None
        ev = pb.Event(type=kind, kv=kv_message(change.kv))
        if self.prev_kv and change.prev is not None:
            ev.prev_kv.CopyFrom(kv_message(change.prev))
        return ev


@dataclass(eq=False)  # identity semantics: streams live in a set
class WatchStream:
    hub: WatchHub
    max_watchers: int
    max_pending: int
    on_ready: Callable[[], None] | None = None
    watchers: dict[int, Watcher] = field(default_factory=dict)
    pending: deque[pb.WatchResponse] = field(default_factory=deque)
    next_id: int = 0
    dropped: int = 0
    # (key, range_end, requested watch_id) -> None when allowed, else (cancel_reason, watch_id)
    permit: Callable[[bytes, bytes, int], tuple[str, int] | None] | None = None

    def _push(self, resp: pb.WatchResponse) -> None:
        if len(self.pending) >= self.max_pending:
            self.dropped += 1  # a client that never reads cannot grow our memory
            return
        self.pending.append(resp)
        if self.on_ready is not None:
            self.on_ready()

    def handle(self, req: pb.WatchRequest) -> None:
        kind = req.WhichOneof("request_union")
        if kind == "create_request":
            self.create(req.create_request)
        elif kind == "cancel_request":
            self.cancel(req.cancel_request.watch_id)
        elif kind == "progress_request":
            rev = self.hub.store.revision
            self._push(pb.WatchResponse(header=self.hub.header(rev), watch_id=-1))

    def create(self, c: pb.WatchCreateRequest) -> None:
        store = self.hub.store
        if c.watch_id and not self.hub.client_watch_ids:
            c.watch_id = 0
        key = c.key or b"\x00"  # etcd: an empty watch key means the smallest key
        end = range_end_of(key, c.range_end)
        wid = c.watch_id if c.watch_id > 0 else self.next_id
        while wid in self.watchers and c.watch_id <= 0:
            wid += 1
        head = self.hub.header(store.revision)
        refusal = self.permit(key, c.range_end, c.watch_id) if self.permit is not None else None
        if refusal is not None:
            reason, refused_id = refusal
            self._push(pb.WatchResponse(header=head, watch_id=refused_id, created=True, canceled=True,
                                        cancel_reason=reason))
            return
        if wid in self.watchers or len(self.watchers) >= self.max_watchers or not self.hub.can_add():
            reason = ("mvcc: duplicate watch ID provided on the WatchStream" if wid in self.watchers
                      else "etcdserver: too many requests")
            self._push(pb.WatchResponse(header=head, watch_id=-1, created=True, canceled=True,
                                        cancel_reason=reason))
            return
        if c.watch_id <= 0:
            self.next_id = wid + 1
        w = Watcher(wid, key, end, c.prev_kv, frozenset(int(f) for f in c.filters))
        self._push(pb.WatchResponse(header=head, watch_id=wid, created=True))
        if 0 < c.start_revision < store.compact_revision:
            self._push(pb.WatchResponse(header=self.hub.header(0), watch_id=wid, canceled=True,
                                        compact_revision=store.compact_revision))
            return
        self.watchers[wid] = w
        self.hub.count += 1
        if 0 < c.start_revision <= store.revision:
            events = [e for ch in store.changes_since(key, end, c.start_revision)
                      if (e := w.event(ch)) is not None]
            for i in range(0, len(events), MAX_REPLAY_EVENTS):
                self._push(pb.WatchResponse(header=head, watch_id=wid,
                                            events=events[i:i + MAX_REPLAY_EVENTS]))

    def cancel(self, watch_id: int) -> None:
        if self.watchers.pop(watch_id, None) is not None:
            self.hub.count -= 1
            self._push(pb.WatchResponse(header=self.hub.header(self.hub.store.revision), watch_id=watch_id,
                                        canceled=True))

    def deliver(self, rev: int, changes: list[Change]) -> None:
        for w in self.watchers.values():
            events = [e for ch in changes if (e := w.event(ch)) is not None]
            if events:
                self._push(pb.WatchResponse(header=self.hub.header(rev), watch_id=w.id, events=events))

    def close(self) -> None:
        self.hub.count -= len(self.watchers)
        self.watchers.clear()
        self.hub.streams.discard(self)


class WatchHub:
    """All watch streams of one namespace; bounded in total watchers."""

    def __init__(self, store: MVCCStore, header: HeaderFactory, max_watches: int,
                 client_watch_ids: bool = True) -> None:
        self.store = store
        self.header = header
        self.max_watches = max_watches
        # WatchCreateRequest.watch_id came with 3.4 (etcd PR 9065): before, field 7 is unknown and
        # ignored, so every watch gets the stream's next id (measured on 3.3.25).
        self.client_watch_ids = client_watch_ids
        self.count = 0
        self.streams: set[WatchStream] = set()
        store.subscribe(self._on_commit)

    def can_add(self) -> bool:
        return self.count < self.max_watches

    def open(self, max_watchers: int, max_pending: int = 256,
             on_ready: Callable[[], None] | None = None) -> WatchStream:
        stream = WatchStream(self, max_watchers, max_pending, on_ready)
        self.streams.add(stream)
        return stream

    def _on_commit(self, rev: int, changes: list[Change]) -> None:
        for stream in list(self.streams):
            stream.deliver(rev, changes)

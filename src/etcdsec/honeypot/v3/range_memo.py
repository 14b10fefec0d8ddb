"""Range answers kept for identical request bytes while nothing they depend on has changed.

A client polling a key sends the same RangeRequest bytes again and again, and between two writes
etcd answers them with the same bytes. An entry holds the serialized answer, the request as events
log it, and what the answer was made from: the namespace (part of the key; its store is made with
it and never replaced), the store's revision and compaction revision. It is served only while they
are the same, for a call without a token while auth is off (the only calls whose permission check
cannot fail), and in a forwarding worker only when its replica may answer (`service.reads_here`,
which first applies what the owner pushed). Every write, lease expiry, heartbeat renewal and
replica record moves the revision; a compaction moves the compaction revision; the response
header's other fields are the sensor's identity, fixed for its namespaces. Errors are never kept.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.v3 import service
from etcdsec.honeypot.v3.state import Namespace, V3State
from etcdsec.proto import etcd_v3_pb2 as pb

MAX_ENTRIES = 256
MAX_REQUEST = 512  # bytes of a request kept as a key
MAX_ANSWER = 16 * 1024  # bytes of an answer kept: at most ~4.3 MiB in all
RANGE = service.METHODS[service.RANGE]


@dataclass(slots=True)
class Entry:
    answer: bytes  # the serialized RangeResponse
    logged: dict[str, Any]  # the request as events log it (shared by every event: never changed)
    revision: int
    compacted: int


class RangeMemo:
    def __init__(self) -> None:
        # by request bytes and namespace: a weak reference, so that a namespace the state dropped (one per
        # source with namespace_writes) is not kept alive here; a new one never equals a dead one
        self._entries: dict[tuple[bytes, weakref.ref[Namespace]], Entry] = {}
        self._asked: dict[bytes, int] = {}  # kept request bytes -> their revision field

    def lookup(self, state: V3State, session: Session | None, payload: bytes, token: str | None) -> Entry | None:
        """The kept entry for these request bytes if it is still etcd's answer now, else None."""
        if token is not None:
            return None
        if state.remote is not None:
            asked = self._asked.get(payload)
            if asked is None or not service.reads_here(state, asked, None):
                return None
        ns = state.namespace(session)  # expires due leases and replays the heartbeat first, as a call does
        entry = self._entries.get((payload, weakref.ref(ns)))
        if entry is None:
            return None
        store = ns.store
        if store.revision != entry.revision or store.compact_revision != entry.compacted or ns.auth.enabled:
            return None
        return entry

    def answer(self, state: V3State, session: Session | None, request: pb.RangeRequest, payload: bytes,
               token: str | None, logged: dict[str, Any]) -> bytes:
        """service.invoke's answer, serialized, kept when it may be served again. V3Error propagates."""
        call = service.local_call(state, session, RANGE, request, token)
        if call is None:
            return service.forward(state, session, RANGE, request, token).SerializeToString()
        ns = call.ns
        store = ns.store
        revision, compacted, auth = store.revision, store.compact_revision, ns.auth.enabled
        answer = service.do_range(call, request).SerializeToString()
        if token is None and not auth and len(payload) <= MAX_REQUEST and len(answer) <= MAX_ANSWER \
                and store.revision == revision:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
                self._asked.clear()
            self._entries[payload, weakref.ref(ns)] = Entry(answer, logged, revision, compacted)
            self._asked[payload] = request.revision
        return answer


RANGES = RangeMemo()  # one per process: entries name their namespace, so sensors never share one

"""An MVCC-lite key-value store with etcd's revision semantics (sans-IO, one namespace).

Every write transaction bumps the store revision once; each key keeps its version history so
reads at an older revision, watches from a start revision and compaction behave as in etcd.
Memory is bounded by the caller's caps (keys, bytes) checked before a write is applied.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from etcdsec.honeypot.v3 import errors


@dataclass(slots=True)
class KeyRev:
    """One version of one key; `version == 0` marks a deletion (tombstone)."""

    key: bytes
    create_revision: int
    mod_revision: int
    version: int
    value: bytes
    lease: int

    @property
    def deleted(self) -> bool:
        return self.version == 0


@dataclass(slots=True)
class Change:
    """One event of a committed write: the new version (tombstone for deletes) and the previous one."""

    kv: KeyRev
    prev: KeyRev | None


def in_range(key: bytes, start: bytes, end: bytes | None) -> bool:
    """etcd's range rule: end None = the single key, b"" = every key >= start, else [start, end)."""
    if end is None:
        return key == start
    return key >= start and (end == b"" or key < end)


def range_end_of(start: bytes, range_end: bytes) -> bytes | None:
    """Normalise a request's range_end: empty -> single key, b"\\0" -> open-ended (b"")."""
    if not range_end:
        return None
    if range_end == b"\x00":
        return b""
    return range_end


class MVCCStore:
    def __init__(self, revision: int = 1, max_keys: int = 100_000, max_bytes: int = 64 << 20,
                 max_history: int = 64) -> None:
        self.revision = revision
        self.compact_revision = 0
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self.max_history = max_history  # versions kept per key; older ones are auto-compacted
        self.bytes_used = 0  # live keys + values
        self.live_keys = 0
        self._history: dict[bytes, list[KeyRev]] = {}
        self._sorted: list[bytes] = []
        self._listeners: list[Callable[[int, list[Change]], None]] = []
        self.on_compact: Callable[[int], None] | None = None  # the keyspace journal
        self.quota_full = False  # the state on disk is over its cap: puts fail as etcd's NOSPACE alarm

    # --- observers ------------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[int, list[Change]], None]) -> None:
        self._listeners.append(listener)

    # --- reads ------------------------------------------------------------------------------------
    def check_revision(self, rev: int) -> None:
        if rev > self.revision:
            raise errors.future_rev()
        if 0 < rev < self.compact_revision:
            raise errors.compacted()

    def get(self, key: bytes) -> KeyRev | None:
        hist = self._history.get(key)
        if not hist or hist[-1].version == 0:  # deleted, without the property call
            return None
        return hist[-1]

    def _keys_in(self, start: bytes, end: bytes | None) -> Iterator[bytes]:
        if end is None:
            if start in self._history:
                yield start
            return
        i = bisect.bisect_left(self._sorted, start)
        keys = self._sorted
        while i < len(keys):
            k = keys[i]
            if end != b"" and k >= end:
                return
            yield k
            i += 1

    def range(self, start: bytes, end: bytes | None, rev: int = 0) -> list[KeyRev]:
        """Live key versions in the range as of `rev` (0 = now), in key order."""
        if rev:  # rev 0 (now) is always valid
            self.check_revision(rev)
        at = rev if rev > 0 else 1 << 62  # now, including writes of the open transaction
        if end is None:  # one key: the common read, without the generator
            hist = self._history.get(start)
            kv = self._version_at(hist, at) if hist else None
            return [kv] if kv is not None else []
        out: list[KeyRev] = []
        for k in self._keys_in(start, end):
            kv = self._version_at(self._history[k], at)
            if kv is not None:
                out.append(kv)
        return out

    @staticmethod
    def _version_at(hist: list[KeyRev], rev: int) -> KeyRev | None:
        if hist[-1].mod_revision <= rev:
            kv = hist[-1]
        else:
            i = bisect.bisect_right([h.mod_revision for h in hist], rev)
            if i == 0:
                return None
            kv = hist[i - 1]
        return None if kv.version == 0 else kv

    def changes_since(self, start: bytes, end: bytes | None, rev: int) -> list[Change]:
        """Every change to keys in range with mod_revision >= rev, in revision order (watch replay)."""
        out: list[tuple[int, bytes, Change]] = []
        for k in self._keys_in(start, end):
            hist = self._history[k]
            for i, kv in enumerate(hist):
                if kv.mod_revision >= rev:
                    prev = hist[i - 1] if i > 0 and not hist[i - 1].deleted else None
                    out.append((kv.mod_revision, k, Change(kv, prev)))
        out.sort(key=lambda t: (t[0], t[1]))
        return [c for _, _, c in out]

    # --- writes -----------------------------------------------------------------------------------
    def txn(self) -> WriteTxn:
        return WriteTxn(self)

    def compact(self, rev: int) -> None:
        if rev <= self.compact_revision:
            raise errors.compacted()
        if rev > self.revision:
            raise errors.future_rev()
        self.compact_revision = rev
        for k in list(self._history):
            self._trim(k, rev)
        if self.on_compact is not None:
            self.on_compact(rev)

    # --- persistence (honeypot/persist/keyspace.py) --------------------------------------------------------
    def versions(self) -> Iterator[KeyRev]:
        """Every stored version, each key's in revision order."""
        for hist in self._history.values():
            yield from hist

    def load(self, revision: int, compact_revision: int, versions: Iterable[KeyRev]) -> None:
        """Replace the contents with persisted versions (each key's in revision order)."""
        self._history.clear()
        self._sorted.clear()
        self.bytes_used = self.live_keys = 0
        self.replay(revision, versions)
        self.compact_revision = min(compact_revision, self.revision)

    def replay(self, revision: int, versions: Iterable[KeyRev]) -> None:
        """Apply a persisted commit again, without notifying anyone (nobody watches yet)."""
        for kv in versions:
            self._append(kv)
        self.revision = max(self.revision, revision)

    def _trim(self, key: bytes, rev: int) -> None:
        """Drop versions superseded at `rev`; the key disappears if only a tombstone is left."""
        hist = self._history[key]
        keep_from = 0
        for i, kv in enumerate(hist):
            if kv.mod_revision <= rev:
                keep_from = i
        hist = hist[keep_from:]
        if hist and hist[0].deleted and hist[0].mod_revision <= rev:
            hist = hist[1:]
        if hist:
            self._history[key] = hist
        else:
            del self._history[key]
            i = bisect.bisect_left(self._sorted, key)
            if i < len(self._sorted) and self._sorted[i] == key:
                del self._sorted[i]

    def _append(self, kv: KeyRev) -> KeyRev | None:
        hist = self._history.get(kv.key)
        if hist is None:
            hist = self._history[kv.key] = []
            bisect.insort(self._sorted, kv.key)
        prev = hist[-1] if hist and hist[-1].version else None
        hist.append(kv)
        if len(hist) > self.max_history:
            del hist[: len(hist) - self.max_history]
        if prev is not None:
            self.bytes_used -= len(prev.key) + len(prev.value)
            self.live_keys -= 1
        if kv.version:
            self.bytes_used += len(kv.key) + len(kv.value)
            self.live_keys += 1
        return prev


class WriteTxn:
    """Writes that commit under one new revision, like one etcd write transaction."""

    def __init__(self, store: MVCCStore) -> None:
        self.store = store
        self.rev = store.revision + 1
        self.changes: list[Change] = []
        self._undo: list[tuple[bytes, list[KeyRev] | None, int, int]] = []

    def __enter__(self) -> WriteTxn:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()

    def _remember(self, key: bytes) -> None:
        s = self.store
        hist = s._history.get(key)
        self._undo.append((key, list(hist) if hist is not None else None, s.bytes_used, s.live_keys))

    def abort(self) -> None:
        """Undo everything this transaction wrote (a failed txn applies nothing)."""
        s = self.store
        for key, hist, used, live in reversed(self._undo):
            if hist is None:
                s._history.pop(key, None)
                i = bisect.bisect_left(s._sorted, key)
                if i < len(s._sorted) and s._sorted[i] == key:
                    del s._sorted[i]
            else:
                s._history[key] = hist
            s.bytes_used, s.live_keys = used, live
        self._undo.clear()
        self.changes.clear()

    def put(self, key: bytes, value: bytes, lease: int) -> KeyRev | None:
        s = self.store
        current = s.get(key)
        new_bytes = len(key) + len(value) - (len(current.key) + len(current.value) if current else 0)
        if (current is None and s.live_keys >= s.max_keys) or s.bytes_used + new_bytes > s.max_bytes \
                or s.quota_full:
            raise errors.no_space()
        self._remember(key)
        if current is None:
            kv = KeyRev(key, self.rev, self.rev, 1, value, lease)
        else:
            kv = KeyRev(key, current.create_revision, self.rev, current.version + 1, value, lease)
        prev = s._append(kv)
        self.changes.append(Change(kv, prev))
        return prev

    def delete_range(self, start: bytes, end: bytes | None) -> list[KeyRev]:
        s = self.store
        deleted: list[KeyRev] = []
        for kv in s.range(start, end):
            tomb = KeyRev(kv.key, 0, self.rev, 0, b"", 0)
            self._remember(kv.key)
            s._append(tomb)
            self.changes.append(Change(tomb, kv))
            deleted.append(kv)
        return deleted

    def commit(self) -> int:
        """Publish the new revision (only when something changed) and notify watchers."""
        s = self.store
        self._undo.clear()
        if self.changes:
            s.revision = self.rev
            for listener in list(s._listeners):
                listener(self.rev, self.changes)
        return s.revision

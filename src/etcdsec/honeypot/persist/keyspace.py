"""The honeypot's keyspace kept across restarts: what attackers write, delete and lease stays.

Hooks the keyspace's own write paths (v3 commits, compactions, lease grant/renew/revoke, v2 sets
and removals, namespaces made and dropped), so every writer (clients, the control-plane
heartbeat, background churn) is journalled the same way. Records collect in memory and are
written and fsynced to the log every flush interval (`--state-flush`, 1 s): `kill -9` loses at
most that interval. When the log outgrows the snapshot (or the state nears its cap) a new
snapshot replaces both. Past the cap (`--state-max-bytes`), puts fail as etcd's do under its
NOSPACE alarm ("etcdserver: mvcc: database space exceeded") until a snapshot fits again.

Lease expiries are kept as wall-clock deadlines: the time the sensor was down counts against them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from etcdsec.honeypot.persist.journal import Journal, JournalError, encode, write_background_snapshot
from etcdsec.honeypot.v2.keystore import MAX_TTL as V2_MAX_TTL
from etcdsec.honeypot.v2.keystore import V2Error, V2Store
from etcdsec.honeypot.v3.errors import V3Error
from etcdsec.honeypot.v3.mvcc import KeyRev

if TYPE_CHECKING:
    from etcdsec.honeypot.v2.keystore import Node
    from etcdsec.honeypot.v3.leases import Lease
    from etcdsec.honeypot.v3.mvcc import Change
    from etcdsec.honeypot.v3.state import Namespace, V3State

log = logging.getLogger(__name__)

MIN_LOG_BEFORE_SNAPSHOT = 4 << 20  # a small keyspace is not rewritten for every few writes
BAD_INPUT = (ValueError, TypeError, KeyError, IndexError, AttributeError, V2Error, V3Error)


# --- decoding persisted values: every field checked, a hostile file is only ever "damaged" -------
def _int(x: Any, top: int = 1 << 62) -> int:
    """Revisions, versions, indexes and TTLs (below 2^62: room to grow within int64); lease ids
    (top 2^63) are etcd's non-negative int64."""
    if type(x) is not int or not 0 <= x < top:
        raise ValueError(f"expected an integer from 0 to {top - 1}, got {x!r:.40}")
    return x


def _num(x: Any) -> float:
    if type(x) not in (int, float):
        raise ValueError(f"expected a number, got {type(x).__name__}")
    return float(x)


def _deadline(x: Any, now: float) -> float:
    """A wall-clock expiry, kept within what the stores can print (v2's 100-year TTL cap)."""
    return min(max(_num(x), 0.0), now + V2_MAX_TTL)


def _raw(x: Any) -> bytes:
    if type(x) is not str:
        raise ValueError(f"expected a string, got {type(x).__name__}")
    return x.encode("latin-1")  # bytes are kept as latin-1 text: one char per byte, lossless


def _str(x: Any) -> str:
    if type(x) is not str:
        raise ValueError(f"expected a string, got {type(x).__name__}")
    return x


def _kv_row(kv: KeyRev) -> list[Any]:
    return [kv.key.decode("latin-1"), kv.create_revision, kv.mod_revision, kv.version,
            kv.value.decode("latin-1"), kv.lease]


def _kv(row: Any) -> KeyRev:
    key, create, mod, version, value, lease = row
    return KeyRev(_raw(key), _int(create), _int(mod), _int(version), _raw(value), _int(lease, 1 << 63))


class KeyspaceJournal:
    def __init__(self, prefix: Path, v3: V3State | None, v2: V2Store, *, flush_interval: float = 1.0,
                 max_bytes: int = 256 << 20) -> None:
        self.journal = Journal(prefix, 2 * max_bytes + (1 << 20))
        self.v3, self.v2 = v3, v2
        self.flush_interval = flush_interval
        self.max_bytes = max_bytes
        self.quota_full = False
        self.replayed = 0  # log records applied at start
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._saved_wall: dict[str, float] = {}  # namespace -> wall time of its last persisted write
        self._stop = asyncio.Event()
        self._child: int | None = None  # pid of the process writing the next snapshot
        self._since_fork: list[bytes] = []  # records logged since that fork
        self._task: asyncio.Task[None] | None = None

    @property
    def wall(self) -> float:
        return self.v3.wall_clock() if self.v3 is not None else time.time()

    @property
    def mono(self) -> float:
        return self.v3.clock() if self.v3 is not None else time.monotonic()

    # --- start: restore, hook, first snapshot -----------------------------------------------------
    def open(self) -> None:
        """Load what the files hold into the keyspace, then journal it. JournalError: a damaged snapshot."""
        loaded = self.journal.load()
        note = loaded.note
        if loaded.snapshot is not None:
            try:
                self._load_snapshot(loaded.snapshot)
            except BAD_INPUT as exc:
                raise JournalError(f"keyspace snapshot {self.journal.snap_path} is damaged: {exc}") from None
            for record in loaded.log:
                try:
                    self._apply(record)
                except BAD_INPUT as exc:
                    note = f"log record {self.replayed + 1} is damaged ({exc})"
                    break
                self.replayed += 1
            self._catch_up()
        if note:
            aside = self.journal.keep_damaged_log()
            log.warning("honeypot keyspace: %s; %d log records kept, the rest left out (moved to %s)",
                        note, self.replayed, aside)
        self._hook()
        self.journal.write_snapshot(self._snapshot_body())
        self._check_quota()

    def _load_snapshot(self, body: Any) -> None:
        wall = _num(body["wall"])
        if self.v3 is not None:
            for name, dump in body["v3"]:
                self._load_namespace(_str(name), dump, wall)
        v2 = body["v2"]
        self.v2.clear(_int(v2["index"]))
        for key, value, created, modified, expires in v2["nodes"]:
            self.v2.place(_str(key), None if value is None else _str(value), _int(created), _int(modified),
                          None if expires is None else _deadline(expires, self.wall), _int(v2["index"]))

    def _load_namespace(self, name: str, dump: Any, wall: float) -> None:
        assert self.v3 is not None
        versions = [_kv(row) for row in dump["keys"]]
        leases = [(_int(i, 1 << 63), _int(ttl), _deadline(x, self.wall)) for i, ttl, x in dump["leases"]]
        ns = self.v3.adopt(name)
        ns.store.load(_int(dump["rev"]), _int(dump["compact"]), versions)
        ns.lessor.leases.clear()
        ns.lessor.deadlines.clear()
        for lease_id, ttl, expiry in leases:
            ns.lessor.restore(lease_id, ttl, self._mono_of(expiry))
        ns.raft_index = _int(dump["raft"])
        self._saved_wall[name] = wall

    def _mono_of(self, wall_deadline: float) -> float:
        return self.mono + (wall_deadline - self.wall)

    def _apply(self, r: Any) -> None:
        kind = r["t"]
        if kind == "v2":
            self.v2.place(_str(r["k"]), None if r["v"] is None else _str(r["v"]), _int(r["c"]), _int(r["m"]),
                          None if r["x"] is None else _deadline(r["x"], self.wall), _int(r["i"]))
        elif kind == "v2x":
            self.v2.unplace(_str(r["k"]), _int(r["i"]))
        elif self.v3 is None:
            return  # v3 records of a persona that now has no v3: nothing to put them in
        elif kind == "ns":
            self._load_namespace(_str(r["n"]), r["d"], _num(r["w"]))
        elif kind == "nsx":
            self.v3.forget(_str(r["n"]))
        else:
            name = _str(r["n"])
            ns = self.v3.adopt(name)
            if kind == "kv":
                versions = [_kv(row) for row in r["c"]]
                ns.store.replay(_int(r["r"]), versions)
                ns.raft_index = max(ns.raft_index, _int(r["f"]))
                self._saved_wall[name] = _num(r["w"])
            elif kind == "cp":
                rev = _int(r["r"])
                if ns.store.compact_revision < rev <= ns.store.revision:
                    ns.store.compact(rev)
            elif kind == "l":
                ns.lessor.restore(_int(r["i"], 1 << 63), _int(r["ttl"]), self._mono_of(_deadline(r["x"], self.wall)))
            elif kind == "lx":
                ns.lessor.leases.pop(_int(r["i"], 1 << 63), None)
            else:
                raise ValueError(f"unknown record type {kind!r}")

    def _catch_up(self) -> None:
        """The live cluster kept climbing while the sensor was down; leases find their keys again."""
        if self.v3 is None:
            return
        now = self.wall
        for name, ns in self.v3.namespaces():
            saved = self._saved_wall.get(name)
            if ns.heartbeat is not None and saved is not None:
                gap = ns.heartbeat.revisions_since(min(max(saved, now - 10 * 365 * 86400), now), now)
                ns.store.revision += gap
                ns.raft_index += gap
            for kv in ns.store.range(b"", b""):
                if kv.lease and kv.lease in ns.lessor.leases:
                    ns.lessor.attach(kv.lease, kv.key)

    # --- journalling the write paths --------------------------------------------------------------
    def _hook(self) -> None:
        if self.v3 is not None:
            for name, ns in self.v3.namespaces():
                self._hook_namespace(name, ns)
            self.v3.on_namespace = self._on_namespace
        self.v2.on_write = self._on_v2

    def _hook_namespace(self, name: str, ns: Namespace) -> None:
        def committed(rev: int, changes: list[Change]) -> None:
            self._add({"t": "kv", "n": name, "r": rev, "f": ns.raft_index, "w": self.wall,
                       "c": [_kv_row(c.kv) for c in changes]})

        def leased(what: str, lease: Lease) -> None:
            if what == "revoke":
                self._add({"t": "lx", "n": name, "i": lease.id})
            else:
                self._add({"t": "l", "n": name, "i": lease.id, "ttl": lease.ttl,
                           "x": self.wall + (lease.expiry - self.mono)})

        ns.store.subscribe(committed)
        ns.store.on_compact = lambda rev: self._add({"t": "cp", "n": name, "r": rev})
        ns.lessor.listener = leased
        ns.store.quota_full = ns.lessor.quota_full = self.quota_full

    def _on_namespace(self, name: str, ns: Namespace | None) -> None:
        if ns is None:
            self._add({"t": "nsx", "n": name})
            return
        self._add({"t": "ns", "n": name, "w": self.wall, "d": self._dump_namespace(ns)})
        self._hook_namespace(name, ns)

    def _on_v2(self, key: str, node: Node | None) -> None:
        if node is None:
            self._add({"t": "v2x", "k": key, "i": self.v2.index})
        else:
            self._add({"t": "v2", "k": key, "v": node.value, "c": node.created, "m": node.modified,
                       "x": node.expires, "i": self.v2.index})

    def _add(self, record: dict[str, Any]) -> None:
        data = encode(record)
        self._pending.append(data)
        self._pending_bytes += len(data)
        if not self.quota_full and self.size() > self.max_bytes:
            self._set_quota(True)  # until the next snapshot shows the state fits again

    # --- snapshots and flushes --------------------------------------------------------------------
    def size(self) -> int:
        """Bytes the state takes on disk, with what is still to be written."""
        return self.journal.snap_bytes + self.journal.log_bytes + self._pending_bytes

    def _dump_namespace(self, ns: Namespace) -> dict[str, Any]:
        now_wall, now_mono = self.wall, self.mono
        # The live versions only: history before a snapshot counts as compacted after a restart (as
        # after etcd's own auto-compaction), and a snapshot is at most the live keyspace, not 64x it.
        return {"rev": ns.store.revision, "compact": ns.store.revision, "raft": ns.raft_index,
                "keys": [_kv_row(kv) for kv in ns.store.range(b"", b"")],
                "leases": [[le.id, le.ttl, now_wall + (le.expiry - now_mono)] for le in ns.lessor.leases.values()]}

    def _snapshot_body(self) -> bytes:
        body = {"wall": self.wall,
                "v3": [[name, self._dump_namespace(ns)] for name, ns in self.v3.namespaces()] if self.v3 else [],
                "v2": {"index": self.v2.index,
                       "nodes": [[n.key, n.value, n.created, n.modified, n.expires] for n in self.v2.nodes()]}}
        return orjson.dumps(body)

    def _take(self) -> bytes:
        chunk = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        return chunk

    def _put_back(self, chunk: bytes) -> None:
        self._pending.insert(0, chunk)
        self._pending_bytes += len(chunk)

    def _wants_snapshot(self) -> bool:
        log_bytes = self.journal.log_bytes + self._pending_bytes
        return log_bytes > max(self.journal.snap_bytes, MIN_LOG_BEFORE_SNAPSHOT) or self.size() > self.max_bytes

    async def flush(self) -> None:
        """Write (and fsync) what collected since the last flush; start or finish a snapshot when due."""
        due = self._child is None and self._wants_snapshot()  # counting what is still unwritten
        chunk = self._take()
        if due:
            self._fork_snapshot()
        elif self._child is not None:
            self._since_fork.append(chunk)  # the next snapshot lacks these: its log starts with them
        if chunk:
            try:
                await asyncio.to_thread(self.journal.append, chunk)
            except OSError as exc:
                self._put_back(chunk)
                self._set_quota(True)  # a full or failing disk: refuse writes rather than lose them
                log.warning("honeypot keyspace: cannot write log %s: %s", self.journal.log_path, exc)
        if self._child is not None:
            await self._reap_snapshot(block=False)

    def _fork_snapshot(self) -> None:
        """Serialise the keyspace in a forked child (copy-on-write, as Redis's BGSAVE does), so the
        event loop does not stop for it; the child writes `<snap>.next` and exits."""
        data_path, generation = self.journal.background_path, self.journal.generation + 1
        try:
            pid = os.fork()
        except OSError as exc:
            log.warning("honeypot keyspace: cannot fork for a snapshot: %s", exc)
            return
        if pid == 0:  # the child: touches nothing but the frozen keyspace and one file
            code = 1
            try:
                with contextlib.suppress(ValueError):  # only where the loop runs in the main thread
                    signal.set_wakeup_fd(-1)  # a signal to the child must not wake the sensor's loop
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                        signal.signal(sig, signal.SIG_DFL)
                write_background_snapshot(data_path, self.journal.snapshot_bytes(generation, self._snapshot_body()))
                code = 0
            finally:
                os._exit(code)
        self._child, self._since_fork = pid, []

    async def _reap_snapshot(self, block: bool) -> None:
        assert self._child is not None
        try:
            pid, status = os.waitpid(self._child, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pid, status = self._child, -1
        if pid == 0:
            return  # still writing
        self._child = None
        since = b"".join(self._since_fork)
        self._since_fork = []
        if status != 0:
            log.warning("honeypot keyspace: the snapshot child failed (status %s); trying again later", status)
            return
        try:
            await asyncio.to_thread(self.journal.adopt_background, since)
        except OSError as exc:
            log.warning("honeypot keyspace: cannot put snapshot %s in place: %s", self.journal.snap_path, exc)
        self._check_quota()

    def _check_quota(self) -> None:
        self._set_quota(self.size() > self.max_bytes)

    def _set_quota(self, full: bool) -> None:
        self.quota_full = full
        self.v2.quota_full = full
        if self.v3 is not None:
            for _, ns in self.v3.namespaces():
                ns.store.quota_full = ns.lessor.quota_full = full

    # --- running ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.flush_interval)
            await self.flush()

    async def close(self) -> None:
        """Stop flushing; a last snapshot so the next start has no log to replay."""
        self._stop.set()
        if self._task is not None:
            await self._task
        if self._child is not None:  # its snapshot is older than the one written now
            with contextlib.suppress(OSError):
                os.kill(self._child, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._child, 0)
            self._child = None
        try:
            self.journal.write_snapshot(self._snapshot_body())
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.journal.append(self._take())
            log.warning("honeypot keyspace: cannot write snapshot %s: %s", self.journal.snap_path, exc)
        self.journal.close()

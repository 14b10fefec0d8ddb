"""The keyspace's changes as records: the one format the journal writes and a replica applies.

Hooks the keyspace's own write paths (v3 commits, compactions, lease grant/renew/revoke, v2 sets
and removals, namespaces made and dropped), so every writer (clients, the control-plane
heartbeat, background churn) produces the same records; each goes to every sink (the journal's
log, the keyspace owner's pushes to its replicas). `apply` and `load_snapshot` read them back,
every field checked: a hostile file is only ever "damaged".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from etcdsec.honeypot.v2.keystore import MAX_TTL as V2_MAX_TTL
from etcdsec.honeypot.v2.keystore import V2Error, V2Store
from etcdsec.honeypot.v3.errors import V3Error
from etcdsec.honeypot.v3.mvcc import KeyRev

if TYPE_CHECKING:
    from etcdsec.honeypot.v2.keystore import Node
    from etcdsec.honeypot.v3.leases import Lease
    from etcdsec.honeypot.v3.mvcc import Change
    from etcdsec.honeypot.v3.state import Namespace, V3State

BAD_INPUT = (ValueError, TypeError, KeyError, IndexError, AttributeError, V2Error, V3Error)
Record = dict[str, Any]


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


class KeyspaceRecords:
    def __init__(self, v3: V3State | None, v2: V2Store) -> None:
        self.v3, self.v2 = v3, v2
        self.sinks: list[Callable[[Record], None]] = []
        self.hooked = False
        self.quota_full = False  # the journal's cap: new namespaces start with it
        self.saved_wall: dict[str, float] = {}  # namespace -> wall time of its last recorded write

    @property
    def wall(self) -> float:
        return self.v3.wall_clock() if self.v3 is not None else time.time()

    @property
    def mono(self) -> float:
        return self.v3.clock() if self.v3 is not None else time.monotonic()

    def _emit(self, record: Record) -> None:
        for sink in self.sinks:
            sink(record)

    # --- the write paths, as records ---------------------------------------------------------------
    def hook(self) -> None:
        """Hook the keyspace's write paths (once): from now on each change goes to every sink."""
        if self.hooked:
            return
        self.hooked = True
        if self.v3 is not None:
            for name, ns in self.v3.namespaces():
                self._hook_namespace(name, ns)
            self.v3.on_namespace = self._on_namespace
        self.v2.on_write = self._on_v2

    def _hook_namespace(self, name: str, ns: Namespace) -> None:
        def committed(rev: int, changes: list[Change]) -> None:
            self._emit({"t": "kv", "n": name, "r": rev, "f": ns.raft_index, "w": self.wall,
                       "c": [_kv_row(c.kv) for c in changes]})

        def leased(what: str, lease: Lease) -> None:
            if what == "revoke":
                self._emit({"t": "lx", "n": name, "i": lease.id})
            else:
                self._emit({"t": "l", "n": name, "i": lease.id, "ttl": lease.ttl,
                           "x": self.wall + (lease.expiry - self.mono)})

        ns.store.subscribe(committed)
        ns.store.on_compact = lambda rev: self._emit({"t": "cp", "n": name, "r": rev})
        ns.lessor.listener = leased
        ns.store.quota_full = ns.lessor.quota_full = self.quota_full

    def _on_namespace(self, name: str, ns: Namespace | None) -> None:
        if ns is None:
            self._emit({"t": "nsx", "n": name})
            return
        self._emit({"t": "ns", "n": name, "w": self.wall, "d": self.dump_namespace(ns)})
        self._hook_namespace(name, ns)

    def _on_v2(self, key: str, node: Node | None) -> None:
        if node is None:
            self._emit({"t": "v2x", "k": key, "i": self.v2.index})
        else:
            self._emit({"t": "v2", "k": key, "v": node.value, "c": node.created, "m": node.modified,
                       "x": node.expires, "i": self.v2.index})

    def dump_namespace(self, ns: Namespace) -> dict[str, Any]:
        now_wall, now_mono = self.wall, self.mono
        # The live versions only: history before a snapshot counts as compacted after a restart (as
        # after etcd's own auto-compaction), and a snapshot is at most the live keyspace, not 64x it.
        return {"rev": ns.store.revision, "compact": ns.store.revision, "raft": ns.raft_index,
                "keys": [_kv_row(kv) for kv in ns.store.range(b"", b"")],
                "leases": [[le.id, le.ttl, now_wall + (le.expiry - now_mono)] for le in ns.lessor.leases.values()]}

    def snapshot_body(self, with_v2: bool = True) -> dict[str, Any]:
        """The whole keyspace as one record (a replica's holds v3 only: v2 stays with the owner)."""
        body: dict[str, Any] = {
            "wall": self.wall,
            "v3": [[name, self.dump_namespace(ns)] for name, ns in self.v3.namespaces()] if self.v3 else []}
        if with_v2:
            body["v2"] = {"index": self.v2.index,
                          "nodes": [[n.key, n.value, n.created, n.modified, n.expires] for n in self.v2.nodes()]}
        return body

    # --- reading records back ---------------------------------------------------------------------
    def load_snapshot(self, body: Any) -> None:
        wall = _num(body["wall"])
        if self.v3 is not None:
            for name, dump in body["v3"]:
                self.load_namespace(_str(name), dump, wall)
        v2 = body.get("v2")
        if v2 is None:  # a replica's snapshot: v3 only
            return
        self.v2.clear(_int(v2["index"]))
        for key, value, created, modified, expires in v2["nodes"]:
            self.v2.place(_str(key), None if value is None else _str(value), _int(created), _int(modified),
                          None if expires is None else _deadline(expires, self.wall), _int(v2["index"]))

    def load_namespace(self, name: str, dump: Any, wall: float) -> None:
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
        self.saved_wall[name] = wall

    def _mono_of(self, wall_deadline: float) -> float:
        return self.mono + (wall_deadline - self.wall)

    def apply(self, r: Any) -> None:
        kind = r["t"]
        if kind == "v2":
            self.v2.place(_str(r["k"]), None if r["v"] is None else _str(r["v"]), _int(r["c"]), _int(r["m"]),
                          None if r["x"] is None else _deadline(r["x"], self.wall), _int(r["i"]))
        elif kind == "v2x":
            self.v2.unplace(_str(r["k"]), _int(r["i"]))
        elif self.v3 is None:
            return  # v3 records of a persona that now has no v3: nothing to put them in
        elif kind == "ns":
            self.load_namespace(_str(r["n"]), r["d"], _num(r["w"]))
        elif kind == "nsx":
            self.v3.forget(_str(r["n"]))
        else:
            name = _str(r["n"])
            ns = self.v3.adopt(name)
            if kind == "kv":
                versions = [_kv(row) for row in r["c"]]
                ns.store.replay(_int(r["r"]), versions)
                ns.raft_index = max(ns.raft_index, _int(r["f"]))
                self.saved_wall[name] = _num(r["w"])
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

    def catch_up(self) -> None:
        """The live cluster kept climbing while the sensor was down; leases find their keys again."""
        if self.v3 is None:
            return
        now = self.wall
        for name, ns in self.v3.namespaces():
            saved = self.saved_wall.get(name)
            if ns.heartbeat is not None and saved is not None:
                gap = ns.heartbeat.revisions_since(min(max(saved, now - 10 * 365 * 86400), now), now)
                ns.store.revision += gap
                ns.raft_index += gap
                ns.settle()  # the Nodes' reports and the CronJob's history moved on too
            for kv in ns.store.range(b"", b""):
                if kv.lease and kv.lease in ns.lessor.leases:
                    ns.lessor.attach(kv.lease, kv.key)

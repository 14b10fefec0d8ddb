"""The v2 key store (sans-IO): a tree of nodes with indexes, TTLs, in-order keys and one-shot watchers.

Semantics follow etcd's `store` package (error codes, actions, prevNode) closely enough that
python-etcd and etcdctl v2 work unchanged. Every mutation is bounded by `Limits`.
"""

from __future__ import annotations

import copy
import heapq
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ERRORS: dict[int, tuple[str, int]] = {
    100: ("Key not found", 404),
    101: ("Compare failed", 412),
    102: ("Not a file", 403),
    104: ("Not a directory", 400),
    105: ("Key already exists", 412),
    107: ("Root is read only", 400),
    108: ("Directory not empty", 403),
    200: ("Value is Required in POST form", 400),
    201: ("PrevValue is Required in POST form", 400),
    202: ("The given TTL in POST form is not a number", 400),
    203: ("The given index in POST form is not a number", 400),
    209: ("Invalid field", 400),
    210: ("Invalid POST form", 400),
    211: ("Value provided on refresh", 400),
    212: ("A TTL must be provided on refresh", 400),
    300: ("Raft Internal Error", 500),
    401: ("The event in requested index is outdated and cleared", 400),
}


# stats counters of each set action: (success, failure)
_SET_COUNTERS = {"set": ("setsSuccess", "setsFail"), "update": ("updateSuccess", "updateFail"),
                 "create": ("createSuccess", "createFail"),
                 "compareAndSwap": ("compareAndSwapSuccess", "compareAndSwapFail")}
MAX_TTL = 100 * 365 * 86400  # longer TTLs are kept as 100 years (Go's time would overflow past ~290)


class V2Error(Exception):
    def __init__(self, code: int, cause: str, index: int) -> None:
        super().__init__(code, cause)
        self.code, self.cause, self.index = code, cause, index

    @property
    def status(self) -> int:
        return ERRORS[self.code][1]

    def to_dict(self) -> dict[str, Any]:
        return {"errorCode": self.code, "message": ERRORS[self.code][0], "cause": self.cause,
                "index": self.index}


@dataclass
class Node:
    key: str
    value: str | None  # None for directories
    created: int
    modified: int
    expires: float | None = None  # unix time
    children: dict[str, Node] | None = None

    @property
    def is_dir(self) -> bool:
        return self.children is not None

    def extern(self, now: float, recursive: bool = False, depth: int = 0, sort: bool = True,
               root: bool = False) -> dict[str, Any]:
        """NodeExtern in Go's field order; omitempty fields left out."""
        out: dict[str, Any] = {}
        if not root:
            out["key"] = self.key
        if self.is_dir:
            out["dir"] = True
        else:
            out["value"] = self.value
        if self.expires is not None:
            out["expiration"] = _rfc3339(self.expires)
            out["ttl"] = max(1, round(self.expires - now))
        if self.children is not None and (depth == 0 or recursive):
            kids = [c for name, c in self.children.items() if not name.startswith("_")]
            if sort:
                kids.sort(key=lambda n: n.key)
            nodes = [c.extern(now, recursive, depth + 1, sort) for c in kids]
            if nodes:
                out["nodes"] = nodes
        if not root:
            out["modifiedIndex"] = self.modified
            out["createdIndex"] = self.created
        return out

    def size(self) -> int:
        if self.children is None:
            return len(self.key) + len(self.value or "")
        return len(self.key) + sum(c.size() for c in self.children.values())


def _rfc3339(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}000Z"


@dataclass
class Event:
    action: str
    node: dict[str, Any]
    prev: dict[str, Any] | None
    index: int
    key: str

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "node": self.node}
        if self.prev is not None:
            out["prevNode"] = self.prev
        return out


@dataclass
class Watcher:
    key: str
    recursive: bool
    since: int
    notify: Callable[[Event], None]


@dataclass
class V2Stats:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ["getsSuccess", "getsFail", "setsSuccess", "setsFail", "deleteSuccess", "deleteFail",
         "updateSuccess", "updateFail", "createSuccess", "createFail", "compareAndSwapSuccess",
         "compareAndSwapFail", "compareAndDeleteSuccess", "compareAndDeleteFail", "expireCount"], 0))


def clean_key(key: str) -> str:
    parts = [p for p in key.split("/") if p and p != "."]
    return "/" + "/".join(parts)


class V2Store:
    def __init__(self, start_index: int = 0, max_keys: int = 100_000, max_bytes: int = 64 << 20,
                 max_watchers: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self.index = start_index
        self.root = Node("/", None, 0, 0, children={})
        self.stats = V2Stats()
        self.history: deque[Event] = deque(maxlen=1000)
        self.watchers: list[Watcher] = []
        self.max_keys, self.max_bytes, self.max_watchers = max_keys, max_bytes, max_watchers
        self.keys = 0
        self.bytes = 0
        self.clock = clock
        self._expiring: list[tuple[float, int, Node]] = []  # heap: earliest expiry first
        self._seq = 0
        self.on_write: Callable[[str, Node | None], None] | None = None  # the keyspace journal (None: removed)
        self.quota_full = False  # the state on disk is over its cap: writes fail as etcd's NOSPACE alarm

    def namespace_copy(self) -> V2Store:
        """A copy for one source's namespace (--namespace-writes): the data, without this store's
        journal hook (its lock cannot be copied, and the copy's writes are not the base store's)
        or its watchers."""
        hook, watchers = self.on_write, self.watchers
        self.on_write, self.watchers = None, []
        try:
            return copy.deepcopy(self)
        finally:
            self.on_write, self.watchers = hook, watchers

    # --- lookups -------------------------------------------------------------------------
    def _walk(self, key: str) -> Node | None:
        node = self.root
        for part in key.strip("/").split("/") if key != "/" else []:
            if node.children is None or part not in node.children:
                return None
            node = node.children[part]
        return node

    def is_dir(self, key: str) -> bool:
        node = self._walk(clean_key(key))
        return node is not None and node.is_dir

    def get(self, key: str, recursive: bool = False, sort: bool = True) -> dict[str, Any]:
        self.expire()
        key = clean_key(key)
        node = self._walk(key)
        if node is None:
            self.stats.counts["getsFail"] += 1
            raise V2Error(100, key, self.index)
        self.stats.counts["getsSuccess"] += 1
        extern = node.extern(self.clock(), recursive, sort=sort, root=node is self.root)
        return {"action": "get", "node": extern}

    # --- mutations -----------------------------------------------------------------------
    def _compare(self, node: Node, prev_value: str | None, prev_index: int | None) -> None:
        """etcd's compareFailCause: each failed condition as "[want != have]", code 101."""
        bad = []
        if prev_value is not None and node.value != prev_value:
            bad.append(f"{prev_value} != {node.value}")
        if prev_index is not None and node.modified != prev_index:
            bad.append(f"{prev_index} != {node.modified}")
        if bad:
            raise V2Error(101, "[" + "] [".join(bad) + "]", self.index)

    def set(self, key: str, value: str | None, *, dir: bool = False, ttl: int | None = None,
            prev_exist: bool | None = None, prev_value: str | None = None, prev_index: int | None = None,
            refresh: bool = False) -> tuple[dict[str, Any], bool]:
        """PUT. Returns (event dict, created_new)."""
        self.expire()
        key = clean_key(key)
        action = "set"
        if prev_value is not None or prev_index is not None:
            action = "compareAndSwap"
        elif prev_exist is True:
            action = "update"
        elif prev_exist is False:
            action = "create"
        try:
            result = self._set(key, value, dir, ttl, action, prev_value, prev_index, refresh)
        except V2Error:
            self.stats.counts[_SET_COUNTERS[action][1]] += 1
            raise
        self.stats.counts[_SET_COUNTERS[action][0]] += 1
        return result

    def _set(self, key: str, value: str | None, dir: bool, ttl: int | None, action: str,
             prev_value: str | None, prev_index: int | None, refresh: bool) -> tuple[dict[str, Any], bool]:
        if key == "/":
            raise V2Error(107, "/", self.index)
        # one walk to the parent serves both the lookup and, when it is a directory already, the write
        parent_key, _, name = key.rpartition("/")
        known_parent = self._walk(parent_key or "/")
        if known_parent is None or known_parent.children is None:
            existing, known_parent = None, None
        else:
            existing = known_parent.children.get(name)
        if action == "create" and existing is not None:
            raise V2Error(105, key, self.index)
        if action in ("update", "compareAndSwap") and existing is None:
            raise V2Error(100, key, self.index)
        if existing is not None and existing.is_dir and not dir:
            raise V2Error(102, key, self.index)
        if action == "compareAndSwap":
            assert existing is not None
            if existing.is_dir:
                raise V2Error(102, key, self.index)
            self._compare(existing, prev_value, prev_index)
        if refresh and existing is not None and not existing.is_dir:
            value = existing.value
        value = value or "" if not dir else None
        now = self.clock()
        prev = existing.extern(now) if existing is not None else None
        if existing is not None and existing.is_dir and dir and action == "set":
            raise V2Error(102, key, self.index)  # etcd: re-setting an existing dir is "Not a file"
        growth = len(key) + len(value or "") - (existing.size() if existing else 0)
        full = existing is None and (self.keys >= self.max_keys or self.bytes + growth > self.max_bytes)
        if full or self.quota_full:
            raise V2Error(300, "etcdserver: mvcc: database space exceeded", self.index)
        parent = known_parent or self._parent_for(key)  # missing parents are created only now
        self.index += 1
        node = Node(key, value, existing.created if existing and action != "set" else self.index, self.index,
                    now + min(ttl, MAX_TTL) if ttl else None, {} if dir else None)
        if existing is not None and existing.is_dir and dir:
            node.children = existing.children
        if existing is None:
            self.keys += 1
        if node.expires is not None:
            self._seq += 1
            heapq.heappush(self._expiring, (node.expires, self._seq, node))
        self.bytes += growth
        parent.children[name] = node  # type: ignore[index]
        created_new = existing is None
        if self.on_write is not None:
            self.on_write(key, node)
        event = Event(action, node.extern(now), prev, self.index, key)
        self._publish(event)
        return event.to_dict(), created_new

    def _parent_for(self, key: str) -> Node:
        node = self.root
        parts = key.strip("/").split("/")[:-1]
        path = ""
        for part in parts:
            path += "/" + part
            assert node.children is not None
            child = node.children.get(part)
            if child is None:  # etcd gives missing parents the index of the write that creates them
                child = Node(path, None, self.index + 1, self.index + 1, children={})
                node.children[part] = child
                self.keys += 1
            elif not child.is_dir:
                raise V2Error(104, path, self.index)
            node = child
        return node

    def create_in_order(self, dir_key: str, value: str, ttl: int | None = None) -> dict[str, Any]:
        """POST: a new key named by the next index inside the directory."""
        self.expire()
        dir_key = clean_key(dir_key)
        existing = self._walk(dir_key)
        if existing is not None and not existing.is_dir:
            self.stats.counts["createFail"] += 1
            raise V2Error(104, dir_key, self.index)
        key = f"{dir_key.rstrip('/')}/{self.index + 1:020d}"
        event, _ = self.set(key, value, ttl=ttl, prev_exist=False)
        return event

    def delete(self, key: str, *, dir: bool = False, recursive: bool = False, prev_value: str | None = None,
               prev_index: int | None = None) -> dict[str, Any]:
        self.expire()
        key = clean_key(key)
        cad = prev_value is not None or prev_index is not None
        fail = "compareAndDeleteFail" if cad else "deleteFail"
        if key == "/":
            self.stats.counts[fail] += 1
            raise V2Error(107, "/", self.index)
        node = self._walk(key)
        try:
            if node is None:
                raise V2Error(100, key, self.index)
            if node.is_dir:
                if cad:
                    raise V2Error(102, key, self.index)
                if not dir and not recursive:
                    raise V2Error(102, key, self.index)
                if node.children and not recursive:
                    raise V2Error(108, key, self.index)
            if cad:
                self._compare(node, prev_value, prev_index)
        except V2Error:
            self.stats.counts[fail] += 1
            raise
        self.stats.counts[fail.replace("Fail", "Success")] += 1
        return self._remove(node, "compareAndDelete" if cad else "delete").to_dict()

    def _remove(self, node: Node, action: str) -> Event:
        now = self.clock()
        prev = node.extern(now)
        parent = self._walk(node.key.rsplit("/", 1)[0] or "/")
        assert parent is not None and parent.children is not None
        del parent.children[node.key.rsplit("/", 1)[1]]
        self.keys -= _count(node)
        self.bytes -= node.size()
        self.index += 1
        if self.on_write is not None:
            self.on_write(node.key, None)
        gone: dict[str, Any] = {"key": node.key}
        if node.is_dir:
            gone["dir"] = True
        gone.update(modifiedIndex=self.index, createdIndex=node.created)
        prev_out = {k: v for k, v in prev.items() if k != "nodes"}
        event = Event(action, gone, prev_out, self.index, node.key)
        self._publish(event)
        return event

    def expire(self) -> None:
        """Remove nodes whose TTL ran out; O(1) when nothing is due (a heap of expiry times)."""
        now = self.clock()
        while self._expiring and self._expiring[0][0] <= now:
            expires, _, node = heapq.heappop(self._expiring)
            if self._walk(node.key) is node and node.expires == expires:  # still the live node
                self.stats.counts["expireCount"] += 1
                self._remove(node, "expire")

    # --- persistence (honeypot/persist/keyspace.py) --------------------------------------------------
    def nodes(self) -> Iterator[Node]:
        """Every node below the root, each directory before what it holds."""
        return _iter(self.root)

    def place(self, key: str, value: str | None, created: int, modified: int, expires: float | None,
              index: int) -> None:
        """Put a persisted node back (value None: a directory); missing parents come with it."""
        key = clean_key(key)
        if key == "/":
            raise ValueError("the root is not a node")
        name = key.rpartition("/")[2]
        last = self.index
        self.index = modified - 1  # _parent_for gives missing parents the index of this write
        parent = self._parent_for(key)
        assert parent.children is not None
        existing = parent.children.get(name)
        node = Node(key, value, created, modified, expires, {} if value is None else None)
        if existing is not None:
            if existing.is_dir and value is None:
                node.children = existing.children
            self.keys -= _count(existing) - _count(node)
            self.bytes -= existing.size()
        else:
            self.keys += 1
        self.bytes += node.size()
        parent.children[name] = node
        if expires is not None:
            self._seq += 1
            heapq.heappush(self._expiring, (expires, self._seq, node))
        self.index = max(last, index, modified)

    def unplace(self, key: str, index: int) -> None:
        """Remove a persisted node again (its delete or expiry was journalled)."""
        node = self._walk(clean_key(key))
        if node is not None and node is not self.root:
            parent = self._walk(node.key.rsplit("/", 1)[0] or "/")
            assert parent is not None and parent.children is not None
            del parent.children[node.key.rsplit("/", 1)[1]]
            self.keys -= _count(node)
            self.bytes -= node.size()
        self.index = max(self.index, index)

    def clear(self, index: int) -> None:
        self.root = Node("/", None, 0, 0, children={})
        self.keys = self.bytes = 0
        self._expiring.clear()
        self.history.clear()
        self.index = index

    # --- watching ------------------------------------------------------------------------
    def watch(self, key: str, recursive: bool, since: int | None,
              notify: Callable[[Event], None]) -> Event | Watcher:
        """An already-happened event (waitIndex in history), or a registered one-shot watcher."""
        self.expire()
        key = clean_key(key)
        if since is not None and since <= self.index:
            full = len(self.history) == self.history.maxlen
            if full and since < self.history[0].index:
                cleared = f"the requested history has been cleared [{self.history[0].index}/{since}]"
                raise V2Error(401, cleared, self.index)
            for event in self.history:
                if event.index >= since and _matches(key, recursive, event.key):
                    return event
        if len(self.watchers) >= self.max_watchers:
            self.watchers.pop(0)  # oldest watcher gives way: bounded memory under a flood
        watcher = Watcher(key, recursive, since or self.index + 1, notify)
        self.watchers.append(watcher)
        return watcher

    def cancel(self, watcher: Watcher) -> None:
        if watcher in self.watchers:
            self.watchers.remove(watcher)

    def _publish(self, event: Event) -> None:
        self.history.append(event)
        if not self.watchers:
            return
        fired = [w for w in self.watchers
                 if event.index >= w.since and _matches(w.key, w.recursive, event.key)]
        for w in fired:
            self.watchers.remove(w)
            w.notify(event)


def _matches(watch_key: str, recursive: bool, event_key: str) -> bool:
    if event_key == watch_key:
        return True
    prefix = watch_key.rstrip("/") + "/"
    return (recursive and event_key.startswith(prefix)) or watch_key.startswith(event_key.rstrip("/") + "/")


def _iter(node: Node) -> Iterator[Node]:
    for child in (node.children or {}).values():
        yield child
        yield from _iter(child)


def _count(node: Node) -> int:
    return 1 + sum(_count(c) for c in (node.children or {}).values())

"""The honeypot's v3 world: key-value store, leases, watches, auth info, per deployment.

Writes go to one shared namespace, or (ctx.namespace_writes) to a namespace per source IP that
starts as a copy of the seeded dataset, so one attacker never sees another's writes. Namespaces
are bounded in number (least recently used is dropped) and each is bounded in keys and bytes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from etcdsec.honeypot.context import SensorContext
from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.v3.errors import V3Error
from etcdsec.honeypot.v3.gateway.plain import GatewayMemo
from etcdsec.honeypot.v3.heartbeat import COMPACT_EVERY_S, Heartbeat
from etcdsec.honeypot.v3.heartbeat import applies as heartbeat_applies
from etcdsec.honeypot.v3.leases import IdGenerator, Lessor
from etcdsec.honeypot.v3.mvcc import MVCCStore
from etcdsec.honeypot.v3.remote import RemoteKeyspace
from etcdsec.honeypot.v3.replica import Replica
from etcdsec.honeypot.v3.watch import WatchHub
from etcdsec.proto import etcd_v3_pb2 as pb

MAX_NAMESPACES = 256
DB_PAGE = 4096


@dataclass
class AuthInfo:
    """Auth as an open etcd has it: disabled, no users or roles until someone adds them."""

    enabled: bool = False
    revision: int = 1
    users: dict[str, list[str]] = field(default_factory=dict)  # name -> roles
    roles: dict[str, list[pb.Permission]] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)  # name -> sha256 hex (no-password users absent)
    tokens: OrderedDict[str, tuple[str, int]] = field(default_factory=OrderedDict)  # token -> (user, revision)


class Namespace:
    """One isolated view: store + leases + watches + auth info + raft counters."""

    def __init__(self, state: V3State) -> None:
        ctx, ident = state.ctx, state.ctx.identity
        self.state = state
        wall = state.wall_clock()
        self.heartbeat = Heartbeat(ident, wall, ctx.dataset) if heartbeat_applies(ctx.dataset) else None
        # A live cluster's revision keeps climbing, across our restarts too.
        climbed = self.heartbeat.revisions_since(ident.start_time.timestamp(), wall) if self.heartbeat else 0
        self.store = MVCCStore(revision=max(1, ident.revision_base + climbed), max_keys=ctx.limits.max_keys,
                               max_bytes=ctx.limits.max_store_bytes)
        self.store.compact_revision = self.store.revision  # history before the seed is "compacted"
        start_ms = int(ident.start_time.timestamp() * 1000)
        self.lessor = Lessor(IdGenerator(ident.member_id, start_ms))
        self.hub = WatchHub(self.store, state.header, ctx.limits.max_watches,
                            client_watch_ids=ctx.persona.major_minor >= (3, 4))
        self.auth = AuthInfo()
        self.members = state.members()  # MemberAdd/Remove change this namespace's view only
        # raft's index runs ahead of the revision and climbs with it (every write is a raft entry)
        self.raft_index = (ident.raft_index_base or self.store.revision + 7) + climbed
        self.store.subscribe(self._count_raft)
        seed = self.heartbeat.seeded(ctx.dataset, wall) if self.heartbeat else list(ctx.dataset)
        for key, value in seed:  # one revision per key, as if written one by one
            txn = self.store.txn()
            try:
                txn.put(key, value, 0)
            except V3Error:  # a seed bigger than the caps is cut, never fatal
                break
            txn.commit()
        self._compact_candidate = self.store.revision

    def _count_raft(self, rev: int, changes: object) -> None:
        self.raft_index += 1

    def beat(self, now: float) -> None:
        """Apply the control plane's lease renewals due by `now`, and its periodic compaction."""
        hb = self.heartbeat
        if hb is None:
            return
        skipped, writes = hb.due(now)
        self.store.revision += skipped  # renewals too old to replay still took their revisions
        self.raft_index += skipped
        self._write(writes)
        if now >= hb.next_compact:
            if self._compact_candidate > self.store.compact_revision:
                self.store.compact(self._compact_candidate)
            self._compact_candidate = self.store.revision
            hb.next_compact = now + COMPACT_EVERY_S

    def settle(self) -> None:
        """A keyspace restored from disk has the Nodes and the CronJob's Jobs and pods as the sensor
        left them: the cluster went on meanwhile, so they become what the heartbeat holds now."""
        hb = self.heartbeat
        if hb is None:
            return
        held = hb.held()
        writes: list[tuple[bytes, bytes | None]] = []
        for key, value in sorted(held.items()):
            now = self.store.range(key, None)
            if not now or now[0].value != value:
                writes.append((key, value))
        for prefix in hb.owned():
            end = prefix[:-1] + bytes([prefix[-1] + 1])
            writes.extend((kv.key, None) for kv in self.store.range(prefix, end) if kv.key not in held)
        self._write(writes)

    def _write(self, writes: list[tuple[bytes, bytes | None]]) -> None:
        for key, value in writes:
            txn = self.store.txn()
            try:
                if value is None:  # a Job (and its pod) the CronJob's history dropped
                    txn.delete_range(key, None)
                else:
                    txn.put(key, value, 0)
            except V3Error:
                return
            txn.commit()

    def expire(self, now: float) -> None:
        """Revoke leases whose TTL ran out, deleting their keys (one revision per lease, as etcd)."""
        for lease_id in self.lessor.expired(now):
            self.revoke(lease_id)

    def revoke(self, lease_id: int) -> None:
        lease = self.lessor.revoke(lease_id)
        with self.store.txn() as txn:
            for key in sorted(lease.keys):
                txn.delete_range(key, None)
            txn.commit()
        self.raft_index += 0 if lease.keys else 1

    def db_size(self) -> tuple[int, int]:
        """(dbSize, dbSizeInUse): bbolt-like page-rounded sizes that grow with the data."""
        in_use = DB_PAGE * (4 + (self.store.bytes_used * 3 // 2 + 1024 * self.store.live_keys) // DB_PAGE)
        return in_use + DB_PAGE * (1 + self.state.db_slack_pages), in_use


class V3State:
    def __init__(self, ctx: SensorContext, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.clock = clock  # monotonic: lease TTLs
        self.wall_clock = wall_clock  # wall time: the control plane's heartbeat
        ident = ctx.identity
        self._cluster_id = ident.cluster_id
        self._member_id = ident.member_id
        self._raft_term = ident.raft_term
        # jsonpb.to_dict(header(rev)) without protobuf: fields in number order, zeros omitted
        self._head_ids = {k: str(v) for k, v in (("cluster_id", ident.cluster_id), ("member_id", ident.member_id))
                          if v}
        self._head_rev = -1
        self._term_text = str(ident.raft_term)
        self._head: dict[str, str] = {}
        self.db_slack_pages = 4 + ident.member_id % 61  # stable per deployment, looks organic
        self._namespaces: OrderedDict[str, Namespace] = OrderedDict()
        self._shared: Namespace | None = None if ctx.namespace_writes else Namespace(self)
        self.gateway_memo = GatewayMemo()  # this sensor's own: routes and bodies the gateway has read
        # the keyspace journal: told of each namespace made (after its seed) or dropped (None)
        self.on_namespace: Callable[[str, Namespace | None], None] | None = None
        # with workers, in a worker other than the owner: v3 calls and watches are run there
        self.remote: RemoteKeyspace | None = None
        # ... and reads are served here from a copy the owner keeps current (v3/replica.py)
        self.replica: Replica | None = None
        self.on_auth: Callable[[bool], None] | None = None  # the keyspace owner publishes the switch

    def auth_switched(self, enabled: bool) -> None:
        if self.on_auth is not None:
            self.on_auth(enabled)

    # --- ids -------------------------------------------------------------------------------------
    def header(self, revision: int = 0) -> pb.ResponseHeader:
        return pb.ResponseHeader(cluster_id=self._cluster_id, member_id=self._member_id,
                                 revision=revision, raft_term=self._raft_term)

    def header_dict(self, revision: int) -> dict[str, str]:
        """jsonpb.to_dict(self.header(revision)) for the gateway, kept for the last revision asked
        (reads between writes share it). Shared: callers must not change it."""
        if revision != self._head_rev:
            head = self._head_ids.copy()
            if revision:
                head["revision"] = str(revision)
            if self._raft_term:
                head["raft_term"] = self._term_text
            self._head_rev, self._head = revision, head
        return self._head

    def members(self) -> list[pb.Member]:
        ident = self.ctx.identity
        return [pb.Member(ID=ident.member_id, name=ident.member_name, peerURLs=list(ident.peer_urls),
                          clientURLs=list(ident.client_urls))]

    # --- namespaces -------------------------------------------------------------------------------
    def namespaces(self) -> list[tuple[str, Namespace]]:
        """Every namespace with its name ("" for the shared one), oldest first."""
        return [("", self._shared)] if self._shared is not None else list(self._namespaces.items())

    def adopt(self, name: str) -> Namespace:
        """The namespace called `name`, made fresh if missing (a persisted one is loaded into it)."""
        if self._shared is not None:
            return self._shared
        found = self._namespaces.get(name)
        if found is None:
            self._drop_oldest()
            found = self._namespaces[name] = Namespace(self)
        return found

    def forget(self, name: str) -> None:
        self._namespaces.pop(name, None)

    def _drop_oldest(self) -> None:
        if len(self._namespaces) >= MAX_NAMESPACES:
            name, evicted = self._namespaces.popitem(last=False)
            for stream in list(evicted.hub.streams):
                stream.close()
            if self.on_namespace is not None:
                self.on_namespace(name, None)

    def live_namespaces(self) -> list[Namespace]:
        """Every namespace that exists now (the control plane's background writes reach each)."""
        return [namespace for _name, namespace in self.namespaces()]

    def namespace(self, session: Session | None) -> Namespace:
        """The namespace a request from `session` reads and writes, with expired leases revoked."""
        if self._shared is not None:
            ns = self._shared
        else:
            source = session.src_ip if session is not None else ""
            found = self._namespaces.get(source)
            if found is None:
                self._drop_oldest()
                found = self._namespaces[source] = Namespace(self)
                if self.on_namespace is not None:
                    self.on_namespace(source, found)
            else:
                self._namespaces.move_to_end(source)
            ns = found
        if self.replica is not None:
            return ns  # a replica: expiries and the heartbeat's writes come from the owner, as records
        # Most requests have no lease due and no renewal or compaction to replay: skip the calls then.
        now = self.clock()
        deadlines = ns.lessor.deadlines
        if deadlines and deadlines[0][0] <= now:
            ns.expire(now)
        hb = ns.heartbeat
        if hb is not None:
            wall = self.wall_clock()
            if wall >= hb.quiet_until or wall >= hb.next_compact:
                ns.beat(wall)
        return ns

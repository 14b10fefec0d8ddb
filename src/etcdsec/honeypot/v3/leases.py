"""Leases with etcd's rules: minimum TTL, id generation, keep-alive, expiry revoking keys (sans-IO).

Time is passed in (`now`, monotonic seconds) so tests and the sensor drive expiry explicitly.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from etcdsec.honeypot.v3 import errors

MIN_TTL = 2  # etcd: ceil(3/2 * election timeout) with the default 1 s election timeout
MAX_TTL = 9_000_000_000
MAX_LEASES = 10_000


class IdGenerator:
    """etcd's idutil generator: 16 low bits of the member id, 40 bits of start ms, an 8-bit counter."""

    def __init__(self, member_id: int, start_unix_ms: int) -> None:
        self.prefix = (member_id & 0xFFFF) << 48
        self.suffix = (start_unix_ms & ((1 << 40) - 1)) << 8

    def next(self) -> int:
        self.suffix += 1
        return self.prefix | (self.suffix & ((1 << 48) - 1))


@dataclass
class Lease:
    id: int
    ttl: int  # granted TTL, seconds
    expiry: float  # monotonic
    keys: set[bytes] = field(default_factory=set)

    def remaining(self, now: float) -> int:
        return max(0, int(self.expiry - now))


class Lessor:
    def __init__(self, ids: IdGenerator, max_leases: int = MAX_LEASES) -> None:
        self.ids = ids
        self.max_leases = max_leases
        self.leases: dict[int, Lease] = {}
        self.deadlines: list[tuple[float, int]] = []  # (expiry, id), possibly stale: checked on pop
        self.listener: Callable[[str, Lease], None] | None = None  # the keyspace journal: grant/renew/revoke
        self.quota_full = False  # as etcd's capped applier: no grants under the NOSPACE alarm

    def grant(self, lease_id: int, ttl: int, now: float) -> Lease:
        if ttl > MAX_TTL:
            raise errors.lease_ttl_too_large()
        while lease_id == 0:
            lease_id = self.ids.next() & ((1 << 63) - 1)
        if lease_id in self.leases:
            raise errors.lease_exists()
        if len(self.leases) >= self.max_leases or self.quota_full:
            raise errors.no_space()
        ttl = max(ttl, MIN_TTL)
        lease = Lease(lease_id, ttl, now + ttl)
        self.leases[lease_id] = lease
        heapq.heappush(self.deadlines, (lease.expiry, lease_id))
        if self.listener is not None:
            self.listener("grant", lease)
        return lease

    def restore(self, lease_id: int, ttl: int, expiry: float) -> None:
        """A persisted lease back, with the expiry it had (monotonic, already translated)."""
        lease = self.leases[lease_id] = Lease(lease_id, ttl, expiry, self.leases.get(lease_id, Lease(0, 0, 0)).keys)
        heapq.heappush(self.deadlines, (lease.expiry, lease_id))

    def get(self, lease_id: int) -> Lease | None:
        return self.leases.get(lease_id)

    def renew(self, lease_id: int, now: float) -> int:
        """The granted TTL after a keep-alive; 0 when the lease does not exist (as etcd replies)."""
        lease = self.leases.get(lease_id)
        if lease is None or lease.expiry <= now:
            return 0
        lease.expiry = now + lease.ttl
        heapq.heappush(self.deadlines, (lease.expiry, lease_id))
        if len(self.deadlines) > 4 * len(self.leases) + 64:  # keep-alive storms leave stale entries
            self.deadlines = [(le.expiry, le.id) for le in self.leases.values()]
            heapq.heapify(self.deadlines)
        if self.listener is not None:
            self.listener("renew", lease)
        return lease.ttl

    def revoke(self, lease_id: int) -> Lease:
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            raise errors.lease_not_found()
        if self.listener is not None:
            self.listener("revoke", lease)
        return lease

    def expired(self, now: float) -> list[int]:
        """Ids of leases past their expiry; O(log n) per lease, so every request can afford to ask."""
        out: list[int] = []
        while self.deadlines and self.deadlines[0][0] <= now:
            expiry, lid = heapq.heappop(self.deadlines)
            lease = self.leases.get(lid)
            if lease is not None and lease.expiry == expiry and lid not in out:
                out.append(lid)
        return out

    def attach(self, lease_id: int, key: bytes) -> None:
        if lease_id:
            self.leases[lease_id].keys.add(key)

    def detach(self, lease_id: int, key: bytes) -> None:
        lease = self.leases.get(lease_id)
        if lease is not None:
            lease.keys.discard(key)

    def next_expiry(self) -> float:
        return min((lease.expiry for lease in self.leases.values()), default=math.inf)

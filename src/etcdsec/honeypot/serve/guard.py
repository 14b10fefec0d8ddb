"""Caps that keep one source from exhausting the sensor: connection counts and a per-source rate."""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable

from etcdsec.honeypot.core.limits import Limits
from etcdsec.tokenbucket import TokenBucket

MAX_TRACKED_SOURCES = 65_536  # token buckets kept (least recently seen dropped): bounded memory
MAX_THROTTLE_S = 5.0  # the longest a throttled request or call waits: slowed down, never hung


class Guard:
    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.total = 0
        self.per_source: dict[str, int] = {}
        self.buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.throttled = 0
        self.refused = 0

    # --- connections ----------------------------------------------------------------------
    def full(self) -> bool:
        return self.total >= self.limits.max_connections

    def source_full(self, src_ip: str) -> bool:
        return self.per_source.get(src_ip, 0) >= self.limits.max_connections_per_source

    def admit(self, src_ip: str, per_source: bool = True, over_cap: bool = False) -> bool:
        """Count a new connection; False (and counted as refused) when a cap is reached.
        over_cap: a slot is being freed for it (a connection was shed), count it past the total cap."""
        if self.total >= self.limits.max_connections and not over_cap:
            self.refused += 1
            return False
        if per_source and not self.admit_source(src_ip):
            return False
        self.total += 1
        return True

    def admit_source(self, src_ip: str) -> bool:
        """The per-source part alone (used once PROXY protocol names the real client)."""
        if self.source_full(src_ip):
            self.refused += 1
            return False
        self.per_source[src_ip] = self.per_source.get(src_ip, 0) + 1
        return True

    def release(self, src_ip: str, per_source: bool = True) -> None:
        """Undo one admit() with the same arguments."""
        self.total -= 1
        if per_source:
            self.release_source(src_ip)

    def release_source(self, src_ip: str) -> None:
        """Undo one admit_source()."""
        left = self.per_source.get(src_ip, 1) - 1
        if left > 0:
            self.per_source[src_ip] = left
        else:
            self.per_source.pop(src_ip, None)

    # --- request rate ---------------------------------------------------------------------
    def delay_for(self, src_ip: str, requests: int = 1) -> float:
        """Seconds this source must wait before its next `requests` are served (0 = now)."""
        rate = self.limits.rate_per_source
        if rate <= 0:
            return 0.0
        now = self.clock()
        bucket = self.buckets.get(src_ip)
        if bucket is None:
            bucket = TokenBucket(rate, float(self.limits.burst_per_source), now)
            self.buckets[src_ip] = bucket
            if len(self.buckets) > MAX_TRACKED_SOURCES:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end(src_ip)
        delay = bucket.reserve(now, requests)
        if delay:
            self.throttled += bucket.in_debt(requests)
        return delay


def trusted(ip: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in networks)

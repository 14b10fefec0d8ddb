"""A token bucket for `--rate` (new connections per second). Sans-IO: the caller passes the clock."""

from __future__ import annotations


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        # A small burst keeps the average exact without letting a paused loop fire thousands at once.
        self.capacity = burst if burst is not None else max(1.0, rate / 20)
        self.tokens = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 if granted now, else how many seconds to wait before asking again."""
        self._refill(now)
        if self.tokens >= 1.0 - 1e-9:  # float slack: waiting the exact time we said must succeed
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate

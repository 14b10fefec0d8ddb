"""The one token bucket (scan pacing, the honeypot's per-source request rate, the connection monitor's
share of time for process lookups). Sans-IO: the caller passes the clock; nothing here reads the
time or sleeps.

Two ways to spend, one refill rule:
- `take`: a token now (0.0) or how long to wait before asking again; nothing is spent on a refusal
  (`scan --rate`: the sweep waits, then asks again).
- `reserve`: the request is always counted and the bucket may go into debt; the answer is how long
  to hold that request back (the honeypot slows a flooding source down instead of refusing it).
  Tokens need not be whole: `monitor/connections/timebudget.py` spends the seconds a call took.
"""

from __future__ import annotations


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        # Default: a twentieth of a second's worth (at least one), which keeps the average exact
        # without letting a paused caller fire thousands at once.
        self.capacity = burst if burst is not None else max(1.0, rate / 20)
        if self.capacity < 0:
            raise ValueError("burst must not be negative")
        self.tokens = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        # A clock that steps back (a test clock, a VM resumed) refills nothing and is not followed:
        # the bucket never loses tokens to time running backwards.
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

    def available(self, now: float) -> float:
        """The tokens in the bucket now (negative: the debt `reserve` ran up)."""
        self._refill(now)
        return self.tokens

    def reserve(self, now: float, count: float = 1) -> float:
        """Spend `count` tokens even if that puts the bucket in debt: seconds until they are paid
        for (0.0: within the burst, serve now)."""
        self._refill(now)
        self.tokens -= count
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def in_debt(self, count: int) -> int:
        """Of the last `count` tokens reserved, how many went into debt (were not in the bucket)."""
        if self.tokens >= 0:
            return 0
        return min(count, -int(self.tokens // 1))  # ceil(debt), at most count

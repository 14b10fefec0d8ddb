"""A share of the time for a costly call: the process lookup behind a triage card.

A burst of new sources (or a restart facing a full socket table) must not stall the watch on
process lookups. Calls go through while they have used less than `share` of the time; the others
return None at once (past the budget, cards simply carry no process). The seconds each call took are
spent from the one token bucket (`etcdsec.tokenbucket`) refilled at `share` seconds per second and
holding at most `share` seconds: a call that overran puts it in debt, which the next calls wait out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, ParamSpec, TypeVar

from etcdsec.tokenbucket import TokenBucket

P = ParamSpec("P")
R = TypeVar("R")


class TimeBudget(Generic[P, R]):
    def __init__(self, fn: Callable[P, R], share: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.fn, self.clock = fn, clock
        self.bucket = TokenBucket(rate=share, burst=share, now=clock())

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R | None:
        now = self.clock()
        if self.bucket.available(now) <= 0:
            return None
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.bucket.reserve(now, self.clock() - now)  # the seconds it took, spent after the fact

"""The process lookup's share of time (monitor/connections/timebudget.py) on a clock the calls move:
each call costs the seconds it advances the clock by."""

from __future__ import annotations

from etcdsec.monitor.connections.timebudget import TimeBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_overrun_is_paid_for_by_the_calls_after_it() -> None:
    clock = Clock()

    def lookup(cost: float) -> str:
        clock.now += cost
        return "found"

    budget = TimeBudget(lookup, share=0.1, clock=clock)
    assert budget(0.05) == "found"  # 0.1 s in the bucket
    assert budget(0.2) == "found"  # 0.055 left: it runs, and leaves the bucket 0.145 s in debt
    assert budget(0.01) is None  # in debt: skipped at once, and a skip costs nothing
    clock.now += 1.0  # 0.1 s refilled: still in debt
    assert budget(0.01) is None
    clock.now += 0.3  # paid off
    assert budget(0.01) == "found"


def test_over_a_long_run_calls_take_at_most_their_share() -> None:
    clock = Clock()
    spent = 0.0

    def lookup() -> bool:
        nonlocal spent
        clock.now += 0.03
        spent += 0.03
        return True

    budget = TimeBudget(lookup, share=0.1, clock=clock)
    start, ran, skipped = clock.now, 0, 0
    while clock.now - start < 100.0:  # a lookup wanted every 10 ms of simulated time
        if budget() is None:
            skipped += 1
        else:
            ran += 1
        clock.now += 0.01
    elapsed = clock.now - start
    assert ran and skipped
    assert spent <= 0.1 * elapsed + 0.1 + 0.03  # the share, plus the bucket and one call's overrun
    assert spent >= 0.1 * elapsed - 0.1  # and the budget is used, not left idle

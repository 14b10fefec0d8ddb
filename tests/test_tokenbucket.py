"""The one token bucket (scan pacing, honeypot guard, gRPC throttle), on a clock passed in."""

from __future__ import annotations

import pytest

from etcdsec.tokenbucket import TokenBucket


def test_take_grants_the_burst_then_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=10.0, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.1)
    assert bucket.take(100.0) == pytest.approx(0.1)  # a refusal spends nothing
    assert bucket.take(100.1) == 0.0  # waiting the time it named is enough
    assert bucket.take(100.1) > 0


def test_refill_never_exceeds_the_burst() -> None:
    bucket = TokenBucket(rate=5.0, burst=2, now=0.0)
    bucket.reserve(0.0, 2)
    assert bucket.reserve(3600.0, 2) == 0.0  # an hour idle still buys only the burst
    assert bucket.reserve(3600.0) == pytest.approx(0.2)


def test_fractional_rates_refill_in_fractions() -> None:
    bucket = TokenBucket(rate=0.25, burst=1, now=0.0)  # one token every 4 s
    assert bucket.take(0.0) == 0.0
    assert bucket.take(1.0) == pytest.approx(3.0)
    assert bucket.take(3.0) == pytest.approx(1.0)
    assert bucket.take(4.0) == 0.0
    assert TokenBucket(rate=0.5, now=0.0).capacity == 1.0  # the default burst is at least one token


def test_reserve_goes_into_debt_and_counts_what_was_over() -> None:
    bucket = TokenBucket(rate=100.0, burst=5, now=0.0)
    assert bucket.reserve(0.0, 4) == 0.0 and bucket.in_debt(4) == 0
    assert bucket.reserve(0.0, 3) == pytest.approx(0.02)  # 2 over the burst: 2 tokens at 100/s
    assert bucket.in_debt(3) == 2
    assert bucket.reserve(0.0) == pytest.approx(0.03) and bucket.in_debt(1) == 1
    assert bucket.reserve(0.05) == 0.0  # 5 tokens refilled pay the 3 owed and this one


def test_a_clock_going_backwards_neither_refills_nor_drains() -> None:
    bucket = TokenBucket(rate=10.0, burst=2, now=50.0)
    bucket.reserve(50.0, 2)
    assert bucket.take(40.0) == pytest.approx(0.1)  # ten seconds back: no tokens, none taken away
    assert bucket.tokens == 0.0 and bucket.updated == 50.0
    assert bucket.take(50.1) == 0.0  # time is measured from the latest instant seen, not the step back


def test_the_average_holds_over_many_takes() -> None:
    bucket = TokenBucket(rate=1000.0, now=0.0)
    now, granted = 0.0, 0
    while now < 2.0:
        wait = bucket.take(now)
        if wait == 0.0:
            granted += 1
        else:
            now += wait
    assert 1995 <= granted <= 2051  # 2000 in 2 s, plus the 50-token burst at most


@pytest.mark.parametrize("rate, burst", [(0.0, 1.0), (-1.0, 1.0), (1.0, -1.0)])
def test_nonsense_settings_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


def test_fractional_tokens_can_be_reserved_and_read_back() -> None:
    bucket = TokenBucket(rate=0.1, burst=0.1, now=0.0)  # seconds of work, a tenth of each second
    assert bucket.available(0.0) == pytest.approx(0.1)
    bucket.reserve(0.0, 0.25)
    assert bucket.available(0.0) == pytest.approx(-0.15)
    assert bucket.available(2.0) == pytest.approx(0.05)

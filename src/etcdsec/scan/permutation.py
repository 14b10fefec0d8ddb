"""A pseudo-random walk over 0..n-1 that visits each index once, as zmap does.

The walk is the cyclic multiplicative group of integers modulo a prime p > n: start at a seeded
element and keep multiplying by a seeded generator g. Every element 1..p-1 comes up exactly once per
cycle; element x stands for index x-1 and elements past n are skipped (few, since p is the next
prime after n). Consecutive indices land far apart, so no subnet sees a burst.

Shard k of N takes cycle positions k, k+N, k+2N, ...: the shards partition the cycle, so together
they cover every index exactly once. A shard's progress is a single integer, its step count, which
makes the resume cursor trivial: position(step) = k + step*N.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

_SMALL_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin for n < 3.3e24 (the bases above suffice)."""
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in _SMALL_PRIMES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def next_prime(n: int) -> int:
    """The smallest prime strictly greater than n."""
    candidate = n + 1
    while not is_prime(candidate):
        candidate += 1
    return candidate


def _pollard_rho(n: int, rng: random.Random) -> int:
    if n % 2 == 0:
        return 2
    while True:
        c = rng.randrange(1, n)
        x = y = rng.randrange(2, n)
        d = 1
        while d == 1:
            x = (x * x + c) % n
            y = (y * y + c) % n
            y = (y * y + c) % n
            d = math.gcd(abs(x - y), n)
        if d != n:
            return d


def prime_factors(n: int) -> set[int]:
    """Distinct prime factors (trial division, then Pollard's rho for what is left)."""
    factors: set[int] = set()
    for p in range(2, 1000):
        if n % p == 0:
            factors.add(p)
            while n % p == 0:
                n //= p
    stack = [n] if n > 1 else []
    rng = random.Random(0)
    while stack:
        m = stack.pop()
        if is_prime(m):
            factors.add(m)
            continue
        d = _pollard_rho(m, rng)
        stack.extend((d, m // d))
    return factors


def find_generator(p: int, rng: random.Random) -> int:
    """A random generator of the multiplicative group mod prime p."""
    if p == 2:
        return 1
    factors = prime_factors(p - 1)
    while True:
        g = rng.randrange(2, p)
        if all(pow(g, (p - 1) // q, p) != 1 for q in factors):
            return g


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`i/N` with i in 1..N (1-based as typed, like `--shard 2/4`)."""
        try:
            i, n = (int(part) for part in text.split("/", 1))
        except ValueError:
            raise ValueError(f"bad shard {text!r}: expected i/N, e.g. 1/4") from None
        if n < 1 or not 1 <= i <= n:
            raise ValueError(f"bad shard {text!r}: need 1 <= i <= N")
        return cls(i - 1, n)

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"


class Permutation:
    """The seeded cycle over 0..n-1; `walk(shard, from_step)` yields (step, index) for one shard."""

    def __init__(self, n: int, seed: int) -> None:
        if n < 1:
            raise ValueError("nothing to permute")
        self.n = n
        self.p = next_prime(n)
        rng = random.Random(seed)
        self.generator = find_generator(self.p, rng)
        self.start = rng.randrange(1, self.p)

    def steps(self, shard: Shard) -> int:
        """How many cycle positions this shard owns (some map to skipped elements)."""
        order = self.p - 1
        return max(0, (order - shard.index + shard.count - 1) // shard.count)

    def walk(self, shard: Shard, from_step: int = 0) -> Iterator[tuple[int, int]]:
        """(step, index) for this shard's steps that map to an index."""
        for step, index in self.walk_all(shard, from_step):
            if index is not None:
                yield step, index

    def walk_all(self, shard: Shard, from_step: int = 0) -> Iterator[tuple[int, int | None]]:
        """Every step, with None for elements past n (the resume cursor must step over them too)."""
        stride = pow(self.generator, shard.count, self.p)
        position = shard.index + from_step * shard.count
        x = self.start * pow(self.generator, position, self.p) % self.p
        n = self.n
        for step in range(from_step, self.steps(shard)):
            yield step, (x - 1 if x <= n else None)
            x = x * stride % self.p

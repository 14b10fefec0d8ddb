import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from etcdsec.scan.permutation import Permutation, Shard, is_prime, next_prime, prime_factors
from etcdsec.tokenbucket import TokenBucket


def test_primality_and_factoring_agree_with_brute_force():
    brute = [n for n in range(2, 2000) if all(n % d for d in range(2, int(n**0.5) + 1))]
    assert [n for n in range(2000) if is_prime(n)] == brute
    assert next_prime(2**32) == 4294967311  # zmap's prime for the IPv4 space
    assert prime_factors(4294967310) == {2, 3, 5, 131, 364289}
    assert prime_factors(2**61 - 2) == {2, 3, 5, 7, 11, 13, 31, 41, 61, 151, 331, 1321}


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 3000), shards=st.integers(1, 9), seed=st.integers(0, 2**32))
def test_shards_cover_every_index_exactly_once(n, shards, seed):
    perm = Permutation(n, seed)
    seen = [index for k in range(shards) for _, index in perm.walk(Shard(k, shards))]
    assert sorted(seen) == list(range(n))


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 2000), seed=st.integers(0, 2**32), cut=st.floats(0, 1))
def test_walk_resumed_from_a_step_continues_the_same_sequence(n, seed, cut):
    perm = Permutation(n, seed)
    shard = Shard(1, 3) if n > 3 else Shard(0, 1)
    full = list(perm.walk(shard))
    step = int(cut * perm.steps(shard))
    assert list(perm.walk(shard, step)) == [pair for pair in full if pair[0] >= step]


def test_seed_reproduces_and_differs():
    a = [i for _, i in Permutation(1000, 7).walk(Shard(0, 1))]
    assert a == [i for _, i in Permutation(1000, 7).walk(Shard(0, 1))]
    assert a != [i for _, i in Permutation(1000, 8).walk(Shard(0, 1))]
    # Neighbours in the walk are far apart: a /24 is not swept in order.
    assert sum(abs(x - y) == 1 for x, y in itertools.pairwise(a)) < 20


def test_large_space_needs_no_memory():
    perm = Permutation(2**33, 1)  # the whole IPv4 space on 2 ports
    first = [i for _, (_, i) in zip(range(1000), perm.walk(Shard(3, 16)), strict=False)]
    assert len(set(first)) == 1000 and all(0 <= i < 2**33 for i in first)


def test_shard_parsing():
    assert Shard.parse("2/4") == Shard(1, 4)
    assert str(Shard.parse("1/1")) == "1/1"
    for bad in ("0/4", "5/4", "x", "1/0", "1"):
        try:
            Shard.parse(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_token_bucket_holds_the_average_rate():
    bucket = TokenBucket(rate=100.0, now=0.0)
    now, granted = 0.0, 0
    while now < 10.0:
        wait = bucket.take(now)
        if wait == 0.0:
            granted += 1
        else:
            now += wait
    assert 995 <= granted <= 1006

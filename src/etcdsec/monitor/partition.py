"""Cutting a watch list into partitions for `monitor exposure --workers/--cluster` (sans-IO).

A target belongs to one partition, chosen by a stable hash of its text, so the same watch list cut
the same way puts every target in the same partition in every run. Each partition is one long Dask
task; there are more partitions than worker threads, so a worker that dies hands several small
slices to the others rather than one big one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

PARTITIONS_PER_SLOT = 4
MAX_PARTITIONS = 4096

T = TypeVar("T")


def partition_of(text: str, partitions: int) -> int:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % partitions


def plan_partitions(targets: int, slots: int, wanted: int | None = None) -> int:
    """How many partitions for `targets` targets on `slots` worker threads (never an empty one planned)."""
    n = wanted if wanted else slots * PARTITIONS_PER_SLOT
    return max(1, min(n, targets, MAX_PARTITIONS))


def split(targets: Sequence[T], texts: Sequence[str], partitions: int) -> list[list[T]]:
    """The targets of each partition, in the order given (`texts[i]` names `targets[i]`)."""
    out: list[list[T]] = [[] for _ in range(partitions)]
    for target, text in zip(targets, texts, strict=True):
        out[partition_of(text, partitions)].append(target)
    return out


def partition_concurrency(concurrency: int, processes: int, partitions: int) -> int:
    """Probes in flight per partition, so that the partitions of one worker process (an even share of
    them) together hold about `concurrency` (per worker process, as `scan --probe-concurrency` is)."""
    return max(1, -(-concurrency * processes // partitions))


def lease_key(run: str, index: int) -> int:
    """The PostgreSQL advisory lock of partition `index` of one monitor run: a retried task waits for a
    run of the same partition that still goes on. Negative: never a scan shard's key (scan << 32 | shard,
    scan ids from 1) nor the schema lock's."""
    digest = int.from_bytes(hashlib.sha256(run.encode()).digest()[:4], "big") >> 1  # 31 bits: a bigint
    return -((digest << 32) | index) - 1

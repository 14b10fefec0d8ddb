"""Cutting a scan into shard tasks, and following what the tasks wrote (sans-IO).

A distributed scan is an ordinary sharded scan (docs/scan.md, "Shards") with many more shards than
workers: each task sweeps and probes one shard and writes through the shard's resume cursor, so a
task run again after its worker died resumes the shard instead of starting it over.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# A task sweeps at most this many pairs: at 10,000 connects/s that is half an hour, so a lost worker
# costs little, while 2^33 pairs (IPv4 on two ports) still make only 512 tasks.
MAX_PAIRS_PER_TASK = 1 << 24
MAX_TASKS = 100_000  # the scheduler handles ~1 ms per task: beyond this it, not the sweep, is the limit
# On one machine the permutation already spreads the work evenly over the shards, and each task ends
# with a tail (its slowest probes, up to --timeout) during which its worker idles: one task per
# worker. On a cluster, machines differ and come and go: many tasks per worker thread even that out.
TASKS_PER_SLOT = {"local": 1, "cluster": 16}


def plan_tasks(pairs: int, slots: int, tasks_per_slot: int) -> int:
    """How many shards to cut `pairs` into for `slots` worker threads."""
    wanted = max(slots * tasks_per_slot, -(-pairs // MAX_PAIRS_PER_TASK))
    return max(1, min(wanted, pairs, MAX_TASKS))


def task_key(db_identity: str, scan_id: int, started: str, shard_index: int) -> str:
    """A Dask key per (database, scan, shard): submitting it again attaches to the running task."""
    digest = hashlib.sha256(f"{db_identity}|{scan_id}|{started}".encode()).hexdigest()[:12]
    return f"etcdsec-scan-{scan_id}-{digest}-{shard_index}"


def unfinished_shards(shard_count: int, states: Iterable[Mapping[str, Any]]) -> list[int]:
    finished = {s["shard_index"] for s in states if s["finished"] is not None}
    return [k for k in range(shard_count) if k not in finished]


@dataclass
class Totals:
    """The whole scan as one shard: what the single progress bar and the summary line show."""

    steps: int
    done: int = 0
    swept: int = 0
    open: int = 0
    etcd: int = 0
    exposed: int = 0
    finished: int = 0


def scan_totals(steps: int, states: Iterable[Mapping[str, Any]]) -> Totals:
    totals = Totals(steps)
    for s in states:
        totals.done += int(s["next_step"]) - len(json.loads(s["in_flight"]))
        totals.swept += int(s["swept"])
        totals.open += int(s["open"])
        totals.etcd += int(s["etcd"])
        totals.exposed += int(s["exposed"])
        totals.finished += s["finished"] is not None
    return totals


@dataclass
class ResultFeed:
    """Which stored endpoint rows were already printed, in memory bounded by the shard count.

    Row ids are not handed out in commit order across shards (a PostgreSQL sequence), but within one
    shard they are: one run writes its batches one after another. So each shard keeps the last id
    printed, and a poll reads ids above the lowest of them (`floor`). A shard that was finished before
    a poll began is complete after it; a shard that had not started by a poll writes only ids above
    everything seen before that poll. Both stop holding the floor down.
    """

    last: dict[int, int] = field(default_factory=dict)  # shard -> last id printed (or a safe lower bound)
    drained: set[int] = field(default_factory=set)
    seen_max: int = 0

    def floor(self, shard_count: int) -> int:
        live = [self.last.get(k, 0) for k in range(shard_count) if k not in self.drained]
        return min(live, default=self.seen_max)

    def begin_poll(self, shard_count: int, states: Iterable[Mapping[str, Any]]) -> set[int]:
        """Call with the progress rows read just before the endpoint rows; returns shards finished then."""
        started, finished = set(), set()
        for s in states:
            started.add(s["shard_index"])
            if s["finished"] is not None:
                finished.add(s["shard_index"])
        for k in range(shard_count):
            if k not in started:
                self.last[k] = max(self.last.get(k, 0), self.seen_max)
        return finished

    def accept(self, row_id: int, shard_index: int) -> bool:
        """True for a row not printed yet."""
        self.seen_max = max(self.seen_max, row_id)
        if row_id <= self.last.get(shard_index, 0):
            return False
        self.last[shard_index] = row_id
        return True

    def end_poll(self, finished_before: set[int]) -> None:
        self.drained |= finished_before

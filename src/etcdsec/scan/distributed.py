"""Shard tasks on Dask distributed (the client itself: `etcdsec.scale.cluster`).

The scheduler holds no state that matters: what is done lives in the database (one resume cursor
per shard). Each shard is one task with a key derived from (database, scan, shard), so submitting
the unfinished shards again, after a restart or from a second terminal, attaches to tasks that
still run instead of starting them twice. A worker that dies loses only its shard's last batch:
the scheduler runs the task again elsewhere, and the task resumes from the shard's cursor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from etcdsec.scale.cluster import task_failure, worker_threads
from etcdsec.scan.shard_task import ShardJob, ShardOutcome, run_shard
from etcdsec.scan.shards import ResultFeed, Totals, scan_totals
from etcdsec.scan.sweep import SweepConfig
from etcdsec.store.scans import ScanInfo, ScanStore

POLL_SECONDS = 0.5
PAGE_ROWS = 5000
STOP_GRACE_SECONDS = 15.0  # after Ctrl-C: how long tasks get to write their last batch
PRELOAD = ("etcdsec.scan.shard_task", "etcdsec.commands.scan")


def run_shard_on_worker(job: ShardJob) -> ShardOutcome:
    return run_shard(dataclasses.replace(job, config=per_worker_share(job.config)))


def per_worker_share(config: SweepConfig) -> SweepConfig:
    """`--probe-concurrency` is per worker process: a worker running T tasks at once (`dask worker
    --nthreads T`) gives each its T-th part, so a process never has more probes in flight."""
    threads = worker_threads()
    if threads == 1:
        return config
    return dataclasses.replace(config, probe_concurrency=max(1, config.probe_concurrency // threads))


def submit(client: Any, jobs: dict[int, ShardJob], keys: dict[int, str]) -> dict[int, Any]:
    """One task per shard. Worker deaths are retried by the scheduler; errors in a task are not."""
    return {k: client.submit(run_shard_on_worker, job, key=keys[k], pure=False) for k, job in jobs.items()}


def detach(futures: dict[int, Any]) -> None:
    from distributed import fire_and_forget

    fire_and_forget(list(futures.values()))


@dataclass
class Watch:
    """Follows the tasks of one scan until they end: progress from the database, results from it too."""

    client: Any
    store: ScanStore
    scan: ScanInfo
    steps: int
    on_tick: Callable[[Totals], None] | None = None
    on_result: Callable[[str], None] | None = None  # the stored result JSON of each new endpoint
    event: Any = None  # the scan's stop event: set when one task fails, so the others stop too

    def __post_init__(self) -> None:
        self.feed = ResultFeed()

    def run(self, futures: dict[int, Any]) -> tuple[list[ShardOutcome], Totals]:
        from distributed import wait

        pending, outcomes = dict(futures), []
        while True:
            for k in [k for k, f in pending.items() if f.done()]:
                outcomes.append(self._outcome(k, pending.pop(k), pending))
            totals = self.poll()
            if not pending:
                return outcomes, totals
            with contextlib.suppress(TimeoutError):  # wakes up at once when the last task ends
                wait(list(pending.values()), timeout=POLL_SECONDS)

    def stop(self, futures: dict[int, Any], event: Any) -> list[ShardOutcome]:
        """Ctrl-C: tell every task to stop, give them a moment to write their last batch."""
        event.set()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        outcomes = []
        for f in futures.values():
            with contextlib.suppress(Exception):
                outcomes.append(f.result(timeout=max(0.1, deadline - time.monotonic())))
            if not f.done():
                f.cancel()
        self.poll()
        return outcomes

    def _outcome(self, shard_index: int, future: Any, others: dict[int, Any]) -> ShardOutcome:
        if future.status == "finished":
            return future.result()
        if self.event is not None:  # running tasks outlive a cancel: tell them to stop
            self.event.set()
        for f in others.values():
            f.cancel()
        shard = f"{shard_index + 1}/{self.scan.shard_count}"
        raise task_failure(future, f"shard {shard} of scan {self.scan.id}", "--resume") from None

    def poll(self) -> Totals:
        states = self.store.shard_states(self.scan.id)
        if self.on_result is not None:
            finished_before = self.feed.begin_poll(self.scan.shard_count, states)
            after = self.feed.floor(self.scan.shard_count)
            while True:  # page by id: the rows above the floor, each read once per poll
                rows = self.store.endpoints_after(self.scan.id, after, PAGE_ROWS)
                for row_id, shard_index, result in rows:
                    if self.feed.accept(row_id, shard_index):
                        self.on_result(result)
                if len(rows) < PAGE_ROWS:
                    break
                after = rows[-1][0]
            self.feed.end_poll(finished_before)
        totals = scan_totals(self.steps, states)
        if self.on_tick is not None:
            self.on_tick(totals)
        return totals

"""One shard of a stored scan, swept and probed to the end (or to a stop): the unit of work a Dask
worker runs. Free of Dask: it takes a plain job and returns plain figures, so any process can run it.

The shard's state lives in the database, not in the task: a run opens the shard's resume cursor,
continues from it and writes every batch with it, so running a task again (its worker died, the
submitter was restarted) finishes the shard without probing a finished pair again or skipping one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from etcdsec.errors import StoreError
from etcdsec.scan.permutation import Permutation, Shard
from etcdsec.scan.stored import open_shard, target_set
from etcdsec.scan.sweep import ProbeFn, SweepConfig, Sweeper, SweepStats
from etcdsec.store.scans import ScanStore
from etcdsec.store.shared import open_shared_engine, shard_lease

ProbeFactory = Callable[[dict[str, Any]], ProbeFn | None]  # the scan's stored options -> prober (None: sweep only)
STOP_CHECK_SECONDS = 1.0


def raise_fd_limit() -> None:
    """Every connection in flight is a file descriptor: take the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass(frozen=True)
class ShardJob:
    db: str
    scan_id: int
    shard_index: int
    config: SweepConfig
    probe_factory: ProbeFactory
    deadline: float | None = None  # wall-clock time (time.time()) to stop at, resumably
    should_stop: Callable[[], bool] | None = None  # asked every second; True stops the shard resumably


@dataclass(frozen=True)
class ShardOutcome:
    shard_index: int
    stats: SweepStats
    already_finished: bool = False


def run_shard(job: ShardJob) -> ShardOutcome:
    raise_fd_limit()
    engine = open_shared_engine(job.db)
    try:
        store = ScanStore(engine)
        scan = store.get_scan(job.scan_id)
        if scan is None:
            raise StoreError(f"no scan {job.scan_id} in the database")
        if store.shard_finished(scan.id, job.shard_index):
            # Submitted again just as its first run ended (a re-attach reads the progress, then
            # submits): nothing to do, and no new run to count.
            return ShardOutcome(job.shard_index, SweepStats(), already_finished=True)
        perm = Permutation(scan.targets.size, scan.seed)
        shard = Shard(job.shard_index, scan.shard_count)
        with shard_lease(engine, scan.id, shard.index):
            prog = open_shard(store, scan, shard, perm.steps(shard))
            if prog.finished:
                return ShardOutcome(shard.index, SweepStats(prog.swept, prog.open, prog.etcd, prog.exposed),
                                    already_finished=True)
            config = job.config
            if job.deadline is not None:
                left = job.deadline - time.time()
                if left <= 0:
                    return ShardOutcome(shard.index, SweepStats(prog.swept, prog.open, prog.etcd, prog.exposed,
                                                                interrupted=True))
                config = dataclasses.replace(config, max_seconds=left)
            sweeper = Sweeper(target_set(scan), perm, prog, store, config, job.probe_factory(dict(scan.options)))
            stats = asyncio.run(_run(sweeper, job.should_stop))
        return ShardOutcome(shard.index, stats)
    finally:
        engine.dispose()


async def _run(sweeper: Sweeper, should_stop: Callable[[], bool] | None) -> SweepStats:
    watcher = asyncio.create_task(_watch(sweeper, should_stop)) if should_stop else None
    try:
        return await sweeper.run()
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


async def _watch(sweeper: Sweeper, should_stop: Callable[[], bool]) -> None:
    while True:
        await asyncio.sleep(STOP_CHECK_SECONDS)
        if await asyncio.to_thread(should_stop):
            sweeper.request_stop()
            return

"""One partition of a watch list, watched to the end (`--duration`, `--once`, a stop): the unit of
work a Dask worker runs for `monitor exposure --workers/--cluster`.

The partition's state lives in the database, not in the task: the monitor loads each target's
baseline and misses from the history as it starts, so a task run again after its worker died picks
its targets up where the dead run left them (at most its last second of observations is lost, and
a change in that second is reported again, as after any restart). On PostgreSQL a run holds its
partition's advisory lock, so a retried task waits for a run that still goes on instead of watching
the same targets twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from etcdsec.monitor.exposure import EXIT_WORSE, ExposureConfig, ExposureMonitor
from etcdsec.monitor.partition import lease_key
from etcdsec.store.engine import open_engine
from etcdsec.store.shared import advisory_lease

STOP_CHECK_SECONDS = 1.0
ONCE_LEASE_WAIT = 600.0


@dataclass(frozen=True)
class PartitionJob:
    config: ExposureConfig  # its targets: this partition's
    index: int
    count: int
    run: str  # the monitor run's id: its partitions' leases
    deadline: float | None = None  # wall-clock time (time.time()) to stop at: --duration
    should_stop: Callable[[], bool] | None = None  # asked every second; True ends the watch


@dataclass(frozen=True)
class PartitionOutcome:
    index: int
    observations: int = 0
    changes: int = 0
    state_lines: dict[str, str] = field(default_factory=dict)  # --once: target -> its state line
    worse_lines: list[str] = field(default_factory=list)  # --once: the changes that made things worse
    exit_code: int = 0


class _Discard(io.TextIOBase):
    """The change lines of a worker: the command prints them from the database instead."""

    def write(self, s: str) -> int:
        return len(s)


def partition_on_worker(job: PartitionJob) -> PartitionOutcome:
    """The Dask task. A watch runs for hours: `secede` hands its worker thread back, so one worker runs
    several partitions (each an event loop in its own thread) and the scheduler sees them as long-running."""
    from distributed import secede

    secede()
    return run_partition(job)


def run_partition(job: PartitionJob) -> PartitionOutcome:
    c = job.config
    wait = ONCE_LEASE_WAIT if c.once else (job.deadline - time.time() if job.deadline else 3600.0)
    engine = open_engine(c.db)
    try:
        with advisory_lease(engine, lease_key(job.run, job.index),
                            f"partition {job.index + 1}/{job.count} of the monitor", max(1.0, wait)):
            return asyncio.run(_watch(job))
    finally:
        engine.dispose()


async def _watch(job: PartitionJob) -> PartitionOutcome:
    config = job.config
    if job.deadline is not None and not config.once:
        left = job.deadline - time.time()
        if left <= 0:
            return PartitionOutcome(job.index)
        config = dataclasses.replace(config, duration=left)
    monitor = ExposureMonitor(config, out=_Discard())
    try:
        if config.once:
            await monitor.observe_once()
            states, worse = monitor.once_lines()
            return PartitionOutcome(job.index, monitor.observations, monitor.changes,
                                    dict(zip((t.text for t in config.targets), states, strict=True)), worse,
                                    EXIT_WORSE if worse else 0)
        stop = asyncio.Event()
        watcher = asyncio.create_task(_stop_when_told(job.should_stop, stop)) if job.should_stop else None
        try:
            await monitor.run(stop)
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        return PartitionOutcome(job.index, monitor.observations, monitor.changes)
    finally:
        await monitor.close()


async def _stop_when_told(should_stop: Callable[[], bool], stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(STOP_CHECK_SECONDS)
        if await asyncio.to_thread(should_stop):
            stop.set()

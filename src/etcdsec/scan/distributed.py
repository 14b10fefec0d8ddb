"""Shard tasks on Dask distributed: a process cluster on this machine, or a running scheduler.

The scheduler holds no state that matters: what is done lives in the database (one resume cursor
per shard). Each shard is one task with a key derived from (database, scan, shard), so submitting
the unfinished shards again, after a restart or from a second terminal, attaches to tasks that
still run instead of starting them twice. A worker that dies loses only its shard's last batch:
the scheduler runs the task again elsewhere, and the task resumes from the shard's cursor.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from etcdsec.errors import ClusterError, UserError
from etcdsec.scan.shard_task import ShardJob, ShardOutcome, run_shard
from etcdsec.scan.shards import ResultFeed, Totals, scan_totals
from etcdsec.store.scans import ScanInfo, ScanStore

CONNECT_TIMEOUT = "10s"
WORKER_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.5
PAGE_ROWS = 5000
STOP_GRACE_SECONDS = 15.0  # after Ctrl-C: how long tasks get to write their last batch
PRELOAD = ("etcdsec.scan.worker_setup", "etcdsec.scan.shard_task", "etcdsec.commands.scan")


def _version() -> str:
    return importlib.metadata.version("etcdsec")


@contextlib.contextmanager
def dask_client(workers: int | None = None, address: str | None = None) -> Iterator[tuple[Any, int]]:
    """(client, worker threads) of a new local process cluster (`workers`) or a running scheduler."""
    from distributed import Client

    if address is None:
        with _forked_workers(), _local_client(workers or 1) as pair:
            yield pair
        return
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {reason}") from None
    with client:
        yield client, _check_workers(client, f"the Dask scheduler at {address}")


@contextlib.contextmanager
def _forked_workers() -> Iterator[None]:
    """Local workers forked from one server process that imported Dask and etcdsec once, instead of
    spawned (Dask's default), each importing them afresh: the start-up of a local cluster is most of
    its cost on a busy machine (docs/benchmarks.md, "scan scale-out")."""
    import multiprocessing

    import dask
    from distributed.utils import get_mp_context

    if "forkserver" not in multiprocessing.get_all_start_methods():
        yield
        return
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        get_mp_context().set_forkserver_preload(["distributed", *PRELOAD])
        yield


@contextlib.contextmanager
def _local_client(workers: int) -> Iterator[tuple[Any, int]]:
    from distributed import Client, LocalCluster

    # A Ctrl-C while the cluster starts waits until it is up, then lands inside the `with`, which
    # closes it (the workers themselves ignore SIGINT: worker_setup).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        # Processes, one thread each: every worker runs one shard's event loop on its own core.
        # The workers import the shard task while they start, not on their first task.
        # No dashboard; the scheduler's HTTP server (health, metrics) still starts, and would take
        # port 8787, or warn when another cluster holds it: a free loopback port instead.
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                               silence_logs=logging.ERROR, preload=list(PRELOAD))
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        raise
    with cluster, Client(cluster) as client:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        yield client, _check_workers(client, "the local cluster")


def _check_workers(client: Any, where: str) -> int:
    """Every worker must run this etcdsec (tasks are pickled by reference); returns the thread count."""
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
    except TimeoutError:
        raise ClusterError(f"{where} has no workers (start some: dask worker SCHEDULER --nthreads 1)") from None
    ours = _version()
    found = client.run(importlib.metadata.version, "etcdsec", on_error="return")
    for worker, version in sorted(found.items()):
        if isinstance(version, BaseException):
            raise ClusterError(f"Dask worker {worker} cannot run etcdsec tasks: etcdsec is not installed there "
                               f"(pip install etcdsec=={ours} in the worker's environment)")
        if version != ours:
            raise ClusterError(f"Dask worker {worker} runs etcdsec {version}, this command {ours}: install one version")
    return max(1, sum(client.nthreads().values()))


@dataclass(frozen=True)
class StopFlag:
    """Picklable: a task asks it whether the submitter said stop (a Dask Event named after the scan)."""

    name: str

    def __call__(self) -> bool:
        from distributed import Event

        return bool(Event(self.name).is_set())


def stop_event(client: Any, name: str) -> Any:
    from distributed import Event

    return Event(name, client=client)


def submit(client: Any, jobs: dict[int, ShardJob], keys: dict[int, str]) -> dict[int, Any]:
    """One task per shard. Worker deaths are retried by the scheduler; errors in a task are not."""
    return {k: client.submit(run_shard, job, key=keys[k], pure=False) for k, job in jobs.items()}


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
        exc = future.exception() if future.status == "error" else None
        shard = f"{shard_index + 1}/{self.scan.shard_count}"
        if isinstance(exc, UserError):
            raise exc
        if type(exc).__name__ == "KilledWorker":
            raise ClusterError(f"shard {shard} of scan {self.scan.id} was running on workers that died, "
                               "too often for Dask to try again; look at the workers' logs, then --resume") from None
        if exc is None:
            raise ClusterError(f"shard {shard} of scan {self.scan.id} was cancelled on the cluster; "
                               "--resume finishes it")
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ClusterError(f"shard {shard} of scan {self.scan.id} failed on a worker: "
                           f"{type(exc).__name__}: {first_line}") from None

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

"""A Dask client: a process cluster on this machine (`--workers N`) or a running scheduler
(`--cluster tcp://HOST:PORT`), with the rules both options follow in `scan` and `monitor exposure`.

The scheduler holds no state that matters to etcdsec: what is done lives in the database, so the
tasks built on this find their place there again when they are run a second time.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etcdsec.errors import ClusterError, UserError
from etcdsec.store.engine import database_url

CONNECT_TIMEOUT = "10s"
WORKER_WAIT_SECONDS = 30.0
MAX_LOCAL_WORKERS = 256
WORKER_SETUP = "etcdsec.scale.worker_setup"


def parse_workers(text: str) -> int:
    if text == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    try:
        n = int(text)
    except ValueError:
        raise UserError(f"--workers {text!r}: expected a number or auto") from None
    if not 1 <= n <= MAX_LOCAL_WORKERS:
        raise UserError(f"--workers must be 1-{MAX_LOCAL_WORKERS} (or auto)")
    return n


def worker_database(workers: str | None, cluster: str | None, db: str) -> tuple[int | None, str]:
    """The local worker count (None with --cluster) and the database as the workers must open it."""
    if workers is not None and cluster is not None:
        raise UserError("--workers starts a cluster on this machine, --cluster uses a running one: pick one")
    if cluster is not None:
        if not database_url(db).startswith("postgresql"):
            raise UserError("--cluster needs --db postgresql://USER@HOST/DB: every worker writes there, "
                            "and a SQLite file lives on one machine")
        return None, db
    n = parse_workers(workers or "1")
    return n, db if "://" in db else str(Path(db).expanduser().resolve())


def _version() -> str:
    return importlib.metadata.version("etcdsec")


@contextlib.contextmanager
def dask_client(workers: int | None, address: str | None, preload: Sequence[str]) -> Iterator[tuple[Any, int]]:
    """(client, worker threads) of a new local process cluster (`workers`) or a running scheduler.
    `preload`: the modules a local worker imports as it starts (the task's own), not on its first task."""
    from distributed import Client

    if address is None:
        modules = [WORKER_SETUP, *preload]
        with _forked_workers(modules), _local_client(workers or 1, modules) as pair:
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
def _forked_workers(modules: list[str]) -> Iterator[None]:
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
        get_mp_context().set_forkserver_preload(["distributed", *modules])
        yield


@contextlib.contextmanager
def _local_client(workers: int, modules: list[str]) -> Iterator[tuple[Any, int]]:
    from distributed import Client, LocalCluster

    # A Ctrl-C while the cluster starts waits until it is up, then lands inside the `with`, which
    # closes it (the workers themselves ignore SIGINT: worker_setup).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        # Processes, one thread each: every worker runs its tasks' event loops on its own core.
        # No dashboard; the scheduler's HTTP server (health, metrics) still starts, and would take
        # port 8787, or warn when another cluster holds it: a free loopback port instead.
        # Logs below CRITICAL stay quiet: a task's failure reaches the command through its future,
        # and on a loaded machine a worker whose heartbeat meets the closing scheduler logs a
        # traceback (distributed.worker, "Failed to communicate with scheduler") that is no error.
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                               silence_logs=logging.CRITICAL, preload=modules)
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


def worker_threads() -> int:
    """Inside a task: how many tasks the worker running it runs at once (1 outside Dask)."""
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return 1


@dataclass(frozen=True)
class StopFlag:
    """Picklable: a task asks it whether the submitter said stop (a Dask Event of that name)."""

    name: str

    def __call__(self) -> bool:
        from distributed import Event

        return bool(Event(self.name).is_set())


def stop_event(client: Any, name: str) -> Any:
    from distributed import Event

    return Event(name, client=client)


def task_failure(future: Any, what: str, hint: str | None = None) -> UserError:
    """The one-line error for a task that ended without a result (`hint`: the command that finishes
    the work, e.g. "--resume")."""
    exc = future.exception() if future.status == "error" else None
    if isinstance(exc, UserError):
        return exc
    if type(exc).__name__ == "KilledWorker":
        return ClusterError(f"{what} was running on workers that died, too often for Dask to try again; "
                            "look at the workers' logs" + (f", then {hint}" if hint else ""))
    if exc is None:
        return ClusterError(f"{what} was cancelled on the cluster" + (f"; {hint} finishes it" if hint else ""))
    first_line = (str(exc).strip().splitlines() or [""])[0][:300]
    return ClusterError(f"{what} failed on a worker: {type(exc).__name__}: {first_line}")

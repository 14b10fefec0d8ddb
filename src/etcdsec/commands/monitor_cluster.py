"""`etcdsec monitor exposure --workers N|auto` and `--cluster tcp://HOST:PORT`: the watch list cut
into partitions by a stable hash of each target, one long Dask task per partition running the
monitor's own loop on its slice (docs/scale.md, "monitor exposure").

Each target is in one partition and each partition runs once at a time, so each target is watched
by one worker. The command prints what the workers stored: the change lines from the database's
events, and with `--once` each partition's state lines in the order the targets were given.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from etcdsec.commands.options import add_worker_arguments
from etcdsec.errors import UserError
from etcdsec.scale.cluster import StopFlag, dask_client, stop_event, task_failure, worker_database
from etcdsec.store.engine import shown_database

if TYPE_CHECKING:  # the monitor itself is imported when it runs: `etcdsec monitor --help` stays quick
    from etcdsec.monitor.exposure import ExposureConfig
    from etcdsec.monitor.feed import EventFeed
    from etcdsec.monitor.history import History
    from etcdsec.monitor.partition_task import PartitionOutcome

PRELOAD = ("etcdsec.monitor.partition_task",)
POLL_SECONDS = 0.5
PAGE_ROWS = 1000
MAX_EVENT_CHARS = 1 << 20  # a change event is a few KiB
STOP_GRACE_SECONDS = 15.0  # after SIGTERM/Ctrl-C: how long partitions get to write their last observations


def add_scale_arguments(p: argparse.ArgumentParser) -> None:
    g = add_worker_arguments(p)
    g.add_argument("--partitions", type=int, default=None, metavar="K",
                   help="cut the targets into K partitions (default: 4 per worker thread)")


def scale_out(args: argparse.Namespace) -> bool:
    """Whether this watch runs as partition tasks (`--workers 1` is the one-process monitor)."""
    if args.workers is None and args.cluster is None:
        if args.partitions is not None:
            raise UserError("--partitions needs --workers or --cluster")
        return False
    workers, _db = worker_database(args.workers, args.cluster, args.db)
    return args.cluster is not None or (workers or 1) > 1


@contextlib.contextmanager
def _stop_signals() -> Iterator[list[int]]:
    """SIGTERM and SIGINT end the watch cleanly (exit 0, as without workers); the list holds them."""
    got: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, _f: got.append(s)) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield got
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_partitioned(args: argparse.Namespace, config: ExposureConfig) -> int:
    from etcdsec.monitor.feed import EventFeed
    from etcdsec.monitor.history import History
    from etcdsec.monitor.partition import partition_concurrency, plan_partitions, split
    from etcdsec.monitor.partition_task import PartitionJob, partition_on_worker

    workers, db = worker_database(args.workers, args.cluster, args.db)
    if config.metrics_listen is not None:
        raise UserError("--metrics-listen serves one process's figures: not with --workers/--cluster")
    if args.partitions is not None and not 1 <= args.partitions <= 4096:
        raise UserError("--partitions must be 1-4096")
    config = dataclasses.replace(config, db=db, shared_events=True)
    history = History(db)  # the tables, once, before the workers start; a wrong URL fails here, in one line
    try:
        feed = EventFeed(history.last_event_id())
        with dask_client(workers, args.cluster, PRELOAD) as (client, slots), _stop_signals() as signals:
            texts = [t.text for t in config.targets]
            count = plan_partitions(len(texts), slots, args.partitions)
            per = partition_concurrency(config.concurrency, len(client.nthreads()), count)  # per worker process
            run = f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
            flag = StopFlag(f"etcdsec-monitor-stop-{run}")
            event = stop_event(client, flag.name)
            deadline = time.time() + config.duration if config.duration else None
            jobs = {k: PartitionJob(dataclasses.replace(config, targets=part, concurrency=per), k, count, run,
                                    deadline, flag)
                    for k, part in enumerate(split(config.targets, texts, count)) if part}
            futures = {k: client.submit(partition_on_worker, job, key=f"etcdsec-monitor-{run}-{k}", pure=False)
                       for k, job in jobs.items()}
            where = args.cluster or f"{workers} local workers"
            print(f"etcdsec monitor exposure: {len(texts)} target{'s' if len(texts) != 1 else ''}, "
                  f"{'once' if config.once else f'every {args.every}'}, db {shown_database(db)}; "
                  f"{len(jobs)} partitions on {where} ({slots} threads)", file=sys.stderr, flush=True)
            watch = _Watch(history, feed, set(texts), futures, event, print_changes=not config.once)
            if config.once:
                return _report_once(texts, watch.run(signals))
            watch.run(signals)
            return 0
    finally:
        history.close()


@dataclasses.dataclass
class _Watch:
    """Follows the partition tasks until they end, printing each change as the database shows it."""

    history: History
    feed: EventFeed
    targets: set[str]
    futures: dict[int, Any]
    event: Any  # the run's stop event
    print_changes: bool = True  # --once prints only its report, as without workers

    def run(self, signals: list[int]) -> list[PartitionOutcome]:
        from distributed import wait

        pending, outcomes = dict(self.futures), []
        try:
            while pending and not signals:
                for k in [k for k, f in pending.items() if f.done()]:
                    future = pending.pop(k)
                    if future.status != "finished":
                        raise task_failure(future, f"partition {k + 1} of the monitor")
                    outcomes.append(future.result())
                self.poll()
                if pending and not signals:
                    with contextlib.suppress(TimeoutError):  # wakes up at once when the last task ends
                        wait(list(pending.values()), timeout=POLL_SECONDS)
            if signals:
                outcomes += self.stop(pending)
        except BaseException:
            self.event.set()  # a failed partition: the others stop too (a cancel does not reach a running task)
            for f in pending.values():
                f.cancel()
            raise
        self.poll()
        return outcomes

    def stop(self, pending: dict[int, Any]) -> list[PartitionOutcome]:
        self.event.set()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        outcomes = []
        for f in pending.values():
            with contextlib.suppress(Exception):
                outcomes.append(f.result(timeout=max(0.1, deadline - time.monotonic())))
            self.poll()
        pending.clear()
        return outcomes

    def poll(self) -> None:
        from etcdsec.events.ids import full_id
        from etcdsec.monitor.drift import EVENT_ID

        if not self.print_changes:
            return
        after = self.feed.floor
        while True:
            rows = self.history.events_after(after, full_id(EVENT_ID), PAGE_ROWS)
            for row_id, data in rows:
                if not self.feed.accept(row_id):
                    continue
                line = _change_line(data, self.targets)
                if line is not None:
                    print(line, flush=True)
            if len(rows) < PAGE_ROWS:
                break
            after = rows[-1][0]
        self.feed.end_poll()


def _change_line(data: str, targets: set[str]) -> str | None:
    """The line of a stored change event of ours; None for another monitor's target, or a row that is
    no such event (a database may hold anything: bounded, checked, and escaped by `change_line`)."""
    from etcdsec.monitor.drift import Change
    from etcdsec.monitor.exposure import change_line

    if len(data) > MAX_EVENT_CHARS:
        return None
    try:
        event = json.loads(data)
        if not isinstance(event, dict) or event.get("target") not in targets:
            return None
        return change_line(Change.from_event(event))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _report_once(texts: list[str], outcomes: list[PartitionOutcome]) -> int:
    """The one-process `--once` output: a state line per target in the order given, then what got worse."""
    from etcdsec.monitor.exposure import EXIT_WORSE

    lines: dict[str, str] = {}
    worse: list[str] = []
    for o in sorted(outcomes, key=lambda o: o.index):
        lines.update(o.state_lines)
        worse += o.worse_lines
    for text in texts:
        if text in lines:
            print(lines[text])
    for line in worse:
        print(line)
    sys.stdout.flush()
    return EXIT_WORSE if worse else 0

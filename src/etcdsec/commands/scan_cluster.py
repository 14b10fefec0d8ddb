"""`etcdsec scan --workers N|auto` and `etcdsec scan --cluster tcp://HOST:PORT`: one scan, cut into
many more shards than workers, run as Dask tasks that write straight to the database.

`etcdsec scan` passes in what it shares with the one-process path (how a scan is created, the
progress bar, the prober), so this module does not import it back.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from etcdsec.commands.options import add_worker_arguments
from etcdsec.commands.scan_output import finish, note
from etcdsec.errors import UserError
from etcdsec.scale.cluster import StopFlag, dask_client, parse_workers, stop_event, worker_database
from etcdsec.scan.distributed import PRELOAD, Watch, detach, submit
from etcdsec.scan.permutation import Permutation, Shard
from etcdsec.scan.shard_task import ProbeFactory, ShardJob
from etcdsec.scan.shards import TASKS_PER_SLOT, Totals, plan_tasks, task_key, unfinished_shards
from etcdsec.scan.sweep import SweepConfig, SweepStats
from etcdsec.store.engine import open_engine, shown_database
from etcdsec.store.scans import ScanInfo, ScanStore


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    g = add_worker_arguments(p)
    g.add_argument("--tasks", type=int, default=None, metavar="K",
                   help="cut the scan into K shard tasks (default: 1 per local worker, 16 per cluster worker "
                        "thread, at most 2^24 pairs each)")
    g.add_argument("--detach", action="store_true",
                   help="with --cluster: submit the tasks and exit; they run on (--resume --cluster re-attaches)")


def scale_out(args: argparse.Namespace) -> bool:
    """Whether this scan runs as shard tasks. A new scan with `--workers 1` does not: one process is
    one worker, without a cluster's start-up cost."""
    if args.workers is None and args.cluster is None:
        return False
    _check_arguments(args)
    return args.cluster is not None or args.resume or parse_workers(args.workers) > 1


def _check_arguments(args: argparse.Namespace) -> tuple[int | None, str]:
    """The worker count (None with --cluster) and the database as the workers must open it."""
    if args.shard != "1/1":
        raise UserError("--shard is for machines started by hand; with --workers or --cluster the scan is cut "
                        "into shard tasks by itself (--tasks K)")
    if args.detach and args.cluster is None:
        raise UserError("--detach needs --cluster (a local cluster ends with this command)")
    if args.tasks is not None and not 1 <= args.tasks <= 100_000:
        raise UserError("--tasks must be 1-100000")
    return worker_database(args.workers, args.cluster, args.db)


def scan_to_resume(args: argparse.Namespace, store: ScanStore) -> ScanInfo:
    """The stored scan `--resume` finishes (`--scan ID`, else the latest unfinished one)."""
    if args.targets or args.imports or args.targets_file:
        raise UserError("--resume takes no targets: it finishes a stored scan (pick it with --scan ID)")
    scan_id = args.scan if args.scan is not None else store.latest_scan_id(unfinished_only=True)
    if scan_id is None:
        raise UserError(f"nothing to resume in {shown_database(args.db)}: no unfinished scan")
    scan = store.get_scan(scan_id)
    if scan is None:
        raise UserError(f"no scan {scan_id} in {shown_database(args.db)}")
    return scan


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_distributed(args: argparse.Namespace, new_scan: Callable[..., ScanInfo], display_class: Any,
                    probe_factory: ProbeFactory) -> int:
    workers, db = _check_arguments(args)
    store = ScanStore(open_engine(db))
    store.ensure_schema()
    scan = scan_to_resume(args, store) if args.resume else None
    with dask_client(workers, args.cluster, PRELOAD) as (client, slots):
        if scan is None:
            if args.seed is None and args.name is None:  # one seed for every shard task, stored with the scan
                args.seed = random.SystemRandom().randrange(1 << 62)
            per_slot = TASKS_PER_SLOT["cluster" if args.cluster else "local"]
            scan = new_scan(args, store, Shard(0, 1),
                            plan=lambda pairs: min(args.tasks, pairs) if args.tasks else plan_tasks(pairs, slots,
                                                                                                     per_slot))
        todo = unfinished_shards(scan.shard_count, store.shard_states(scan.id))
        steps = Permutation(scan.targets.size, scan.seed).p - 1
        if not todo:
            note(args, f"scan {scan.id} is already finished")
            return 0
        config = SweepConfig(rate=args.rate / slots if args.rate else None, concurrency=args.concurrency,
                             probe_concurrency=args.probe_concurrency, connect_timeout=args.connect_timeout)
        identity = shown_database(db) if "://" in db else db
        keys = {k: task_key(identity, scan.id, scan.started.isoformat(), k) for k in todo}
        flag = StopFlag(f"etcdsec-stop-{keys[todo[0]].rsplit('-', 1)[0]}")
        event = stop_event(client, flag.name)
        event.clear()  # an earlier Ctrl-C must not stop this run's tasks
        deadline = time.time() + args.max_time if args.max_time else None
        jobs = {k: ShardJob(db, scan.id, k, config, probe_factory, deadline, flag) for k in todo}
        started = time.monotonic()
        futures = submit(client, jobs, keys)
        where = args.cluster or f"{workers} local workers"
        if args.detach:
            detach(futures)
            print(f"scan {scan.id}: {len(todo)} shard tasks submitted to {where}; follow it with: etcdsec scan "
                  f"--resume --scan {scan.id} --cluster {args.cluster} --db {shown_database(args.db)}")
            return 0
        note(args, f"scan {scan.id}: {len(todo)} of {scan.shard_count} shard tasks on {where} ({slots} threads)")
        display = display_class(Totals(steps)) if not args.quiet and sys.stderr.isatty() else None
        watch = Watch(client, store, scan, steps, on_tick=display.update if display else None,
                      on_result=_print_line if args.format == "jsonl" else None, event=event)
        interrupted = False
        try:
            with _sigterm_as_interrupt():
                outcomes, totals = watch.run(futures)
        except KeyboardInterrupt:
            with _sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt):
                watch.stop(futures, event)
            outcomes, totals, interrupted = [], watch.poll(), True
        finally:
            if display:
                display.close()
    interrupted = interrupted or any(o.stats.interrupted for o in outcomes)
    stats = SweepStats(totals.swept, totals.open, totals.etcd, totals.exposed, time.monotonic() - started,
                       interrupted=interrupted)
    summary = stats.summary(f"scan {scan.id}")
    again = f"--cluster {args.cluster}" if args.cluster else f"--workers {args.workers}"
    return finish(args, scan.id, summary, bool(stats.etcd), interrupted,
                  f" --db {shown_database(args.db)} {again}")


def _print_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()



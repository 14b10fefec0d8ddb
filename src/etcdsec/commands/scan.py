"""`etcdsec scan TARGETS...`: sweep ranges for open etcd ports, probe what answers, store everything."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import signal
import sys
from collections.abc import Callable
from typing import Any

from etcdsec.commands.scan_cluster import add_cluster_arguments, run_distributed, scale_out, scan_to_resume
from etcdsec.commands.scan_output import finish, note
from etcdsec.errors import UserError
from etcdsec.model import ProbeResult
from etcdsec.scan.exclusions import build_exclusions, wide_exclusions
from etcdsec.scan.imports import FORMATS as IMPORT_FORMATS
from etcdsec.scan.imports import read_import
from etcdsec.scan.permutation import Permutation, Shard
from etcdsec.scan.shard_task import raise_fd_limit
from etcdsec.scan.shards import Totals
from etcdsec.scan.stored import ShardProgress, open_shard, stored_targets, target_set
from etcdsec.scan.sweep import ProbeFn, SweepConfig, Sweeper, SweepStats
from etcdsec.scan.targets import (
    DEFAULT_PORTS,
    build_target_set,
    gather_target_words,
    parse_ports,
    wide_scan_refusal,
)
from etcdsec.store.engine import DEFAULT_DB, open_engine, shown_database
from etcdsec.store.scans import ScanInfo, ScanStore

EPILOG = """targets: 10.0.0.0/16, 10.0.0.1-10.0.0.99, 10.0.0.1-99, 2001:db8::/120, host names, @file, '-' (stdin).
imports: --import FILE reads masscan -oJ/-oL/-oX, zmap CSV, nmap -oX or `shodan download` files.
Reserved and special-purpose ranges are never scanned (--no-default-excludes to lift that);
loopback and private ranges are scannable. A target wider than a /8 also loses every IANA
special-purpose range (--wide-excludes FILE replaces the list) and needs --confirm-wide.
Shards: run `--shard i/N --seed S --name NAME` on N machines against one PostgreSQL --db.
Resume: after Ctrl-C or a crash, `etcdsec scan --resume [--scan ID]` finishes the same scan.
Scale out (docs/scale.md): --workers N|auto on this machine, --cluster tcp://HOST:8786 with a
PostgreSQL --db on a Dask cluster; --detach, then `etcdsec scan --resume --cluster ...` re-attaches.
exit status: 0 done, 2 bad input, 3 database or cluster trouble, 130 interrupted (resumable)."""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("scan", help="sweep networks for exposed etcd and store the results",
                       description="Sweep address ranges for etcd, probe every open port, store the results.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="*", metavar="TARGET", help="address, CIDR, range, host name, @file or -")
    p.add_argument("-iL", "--targets-file", action="append", default=[], metavar="FILE",
                   help="read targets from a file")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="FILE",
                   help="masscan / zmap / nmap / Shodan output to scan (repeatable)")
    p.add_argument("--import-format", choices=IMPORT_FORMATS, default="auto")
    p.add_argument("-p", "--ports", default=",".join(map(str, DEFAULT_PORTS)),
                   help="ports (default 2379,2380; 4001 is etcd's legacy client port)")
    p.add_argument("--exclude", action="append", default=[], metavar="RANGE", help="never scan this range")
    p.add_argument("--exclude-file", action="append", default=[], metavar="FILE")
    p.add_argument("--no-default-excludes", action="store_true",
                   help="also scan reserved / special-purpose ranges")
    p.add_argument("--confirm-wide", action="store_true",
                   help="run a scan wider than a /8 (refused without it, saying how many addresses and how long)")
    p.add_argument("--wide-excludes", metavar="FILE", default=None,
                   help="ranges cut from targets wider than a /8 (default: the shipped IANA special-purpose "
                        "list, etcdsec/scan/special-purpose.conf)")
    p.add_argument("--rate", type=float, default=None, help="new connections per second (default: unlimited)")
    p.add_argument("--concurrency", type=int, default=1000, help="connections in flight (default 1000)")
    p.add_argument("--probe-concurrency", type=int, default=64,
                   help="open ports probed at once (default 64); with --workers/--cluster: in each worker process")
    p.add_argument("--connect-timeout", type=float, default=2.0, help="TCP connect timeout, seconds")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="probe deadline per open port, seconds (from the probe's start, not its wait for a "
                        "--probe-concurrency slot)")
    p.add_argument("--no-probe", action="store_true", help="only sweep: record open ports, do not probe them")
    p.add_argument("--no-data", action="store_true", help="do not count keys by prefix")
    p.add_argument("--seed", type=int, default=None, help="permutation seed (same seed, same order)")
    p.add_argument("--shard", default="1/1", help="take part i of N of the target set (e.g. 2/4)")
    p.add_argument("--name", default=None, help="scan name; shards with the same name join one scan")
    p.add_argument("--db", default=DEFAULT_DB, help=f"SQLite path or postgresql:// URL (default {DEFAULT_DB})")
    p.add_argument("--format", choices=("text", "jsonl"), default="text",
                   help="jsonl: one probe result per open endpoint on stdout")
    p.add_argument("--resume", action="store_true", help="finish an interrupted scan")
    p.add_argument("--scan", type=int, default=None, metavar="ID", help="with --resume: which scan")
    p.add_argument("--max-time", type=float, default=None, metavar="SECONDS",
                   help="stop (resumably) after this long")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes on stderr")
    add_cluster_arguments(p)
    p.set_defaults(run=run)


def _check_numbers(args: argparse.Namespace) -> None:
    if args.rate is not None and args.rate <= 0:
        raise UserError("--rate must be positive")
    if args.concurrency < 1 or args.probe_concurrency < 1:
        raise UserError("--concurrency and --probe-concurrency must be at least 1")
    if args.connect_timeout <= 0 or args.timeout <= 0:
        raise UserError("timeouts must be positive")


def _parse_shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise UserError(f"--shard: {exc}") from None


def _probe_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"deadline": args.timeout, "connect_timeout": min(args.connect_timeout, args.timeout),
            "request_timeout": min(4.0, args.timeout), "collect_data": not args.no_data,
            "probe": not args.no_probe}


def _new_scan(args: argparse.Namespace, store: ScanStore, shard: Shard,
              plan: Callable[[int], int] | None = None) -> ScanInfo:
    """`plan(pairs)`: the shard count, when the scan is cut into shard tasks (--workers, --cluster)."""
    if args.scan is not None:
        raise UserError("--scan goes with --resume (a new scan gets a new id)")
    words = gather_target_words(args.targets, args.targets_file)
    pairs: list[tuple[str, int]] = []
    hosts: list[str] = []
    meta: dict[str, dict[str, Any]] = {}
    for path in args.imports:
        imported = read_import(path, args.import_format)
        if imported.malformed or imported.truncated:  # data was lost: say so even with --quiet
            print(f"etcdsec: warning: import {imported.summary()}", file=sys.stderr)
        else:
            note(args, "import " + imported.summary())
        pairs += imported.pairs
        hosts += imported.hosts
        for ip, fields in imported.meta.items():
            meta.setdefault(ip, {}).update(fields)
    if not words and not pairs and not hosts:
        raise UserError("no targets given (try: etcdsec scan 10.0.0.0/24, or --import masscan.json)")
    ports = parse_ports(args.ports)
    exclusions = build_exclusions(args.exclude, args.exclude_file, defaults=not args.no_default_excludes)
    targets, notes = build_target_set(words, ports, exclusions, pairs=pairs, hosts=hosts, meta=meta,
                                      wide_exclusions=wide_exclusions(args.wide_excludes))
    for n in notes:
        what = "excluded" if n.whole else "partly excluded"
        note(args, f"{n.target} {what}: {'; '.join(n.reasons)}")
    if targets.size == 0:
        raise UserError("nothing left to scan: every target is excluded")
    refusal = wide_scan_refusal(targets, args.rate, args.concurrency, args.connect_timeout)
    if refusal and not args.confirm_wide:
        raise UserError(refusal)
    seed = args.seed
    if seed is None:
        if shard.count > 1 and args.name is None:
            raise UserError("--shard needs the same --seed (or --name) on every shard")
        seed = (int(hashlib.sha256(args.name.encode()).hexdigest()[:15], 16) if args.name
                else random.SystemRandom().randrange(1 << 62))
    argv = {k: v for k, v in vars(args).items() if k != "run"}
    return store.create_or_join(name=args.name, args=argv, targets=stored_targets(targets), seed=seed,
                                shard_count=plan(targets.size) if plan else shard.count,
                                options=_probe_options(args))


def _resumed_scan(args: argparse.Namespace, store: ScanStore) -> tuple[ScanInfo, Shard]:
    scan = scan_to_resume(args, store)
    if args.shard != "1/1":
        shard = _parse_shard(args.shard)
        if shard.count != scan.shard_count:
            raise UserError(f"scan {scan.id} has {scan.shard_count} shards, not {shard.count}")
    elif scan.shard_count == 1:
        shard = Shard(0, 1)
    else:
        states = {s["shard_index"]: s for s in store.shard_states(scan.id)}
        unfinished = [k for k in range(scan.shard_count) if k not in states or states[k]["finished"] is None]
        if len(unfinished) != 1:
            left = ", ".join(str(Shard(k, scan.shard_count)) for k in unfinished) or "none"
            raise UserError(f"scan {scan.id} has {scan.shard_count} shards; say which with --shard (left: {left}), "
                            "or finish them all with --workers N or --cluster")
        shard = Shard(unfinished[0], scan.shard_count)
    return scan, shard


def run(args: argparse.Namespace) -> int:
    _check_numbers(args)
    if scale_out(args):
        return run_distributed(args, _new_scan, _ProgressDisplay, probe_function)
    shard = _parse_shard(args.shard)
    store = ScanStore(open_engine(args.db))
    store.ensure_schema()
    if args.resume:
        scan, shard = _resumed_scan(args, store)
    else:
        scan = _new_scan(args, store, shard)
    perm = Permutation(scan.targets.size, scan.seed)
    prog = open_shard(store, scan, shard, perm.steps(shard))
    if prog.finished:
        note(args, f"scan {scan.id} shard {shard} is already finished")
        return 0
    if prog.runs > 1:
        note(args, f"resuming scan {scan.id} shard {shard}: {prog.swept} of {scan.targets.size} pairs done")
    raise_fd_limit()
    config = SweepConfig(rate=args.rate, concurrency=args.concurrency, probe_concurrency=args.probe_concurrency,
                         connect_timeout=args.connect_timeout, max_seconds=args.max_time)
    stats = asyncio.run(_sweep(args, scan, perm, prog, store, config))
    where = f"scan {scan.id} shard {shard}" if shard.count > 1 else f"scan {scan.id}"
    summary = stats.summary(where)
    db = "" if args.db == DEFAULT_DB else f" --db {shown_database(args.db)}"
    return finish(args, scan.id, summary, bool(stats.etcd), stats.interrupted,
                  db + (f" --shard {shard}" if shard.count > 1 else ""))


def probe_function(scan_options: dict[str, Any]) -> ProbeFn | None:
    """The prober a scan's stored options ask for (None: sweep only); shard tasks on workers call it too."""
    opts = dict(scan_options)
    if not opts.pop("probe", True):
        return None
    from etcdsec.probe.api import probe
    from etcdsec.probe.options import ProbeOptions

    known = ProbeOptions.__dataclass_fields__  # options stored by another etcdsec version may differ
    options = ProbeOptions(**{k: v for k, v in opts.items() if k in known})

    async def probe_fn(target: str) -> ProbeResult:
        return await probe(target, options)

    return probe_fn


async def _sweep(args: argparse.Namespace, scan: ScanInfo, perm: Permutation, prog: ShardProgress,
                 store: ScanStore, config: SweepConfig) -> SweepStats:
    probe_fn = probe_function(scan.options)

    def on_result(result: ProbeResult) -> None:
        if args.format == "jsonl":
            sys.stdout.write(json.dumps(result.to_dict()) + "\n")
            sys.stdout.flush()

    display = _ProgressDisplay(prog) if not args.quiet and sys.stderr.isatty() else None
    sweeper = Sweeper(target_set(scan), perm, prog, store, config, probe_fn, on_result,
                      on_tick=display.update if display else None)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sweeper.request_stop)
    try:
        return await sweeper.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if display:
            display.close()


class _ProgressDisplay:
    """A rich progress bar on stderr: rate, ETA, and what was found so far."""

    def __init__(self, prog: ShardProgress | Totals) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                 TextColumn("{task.fields[rate]}/s"),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self.task = self.progress.add_task("sweep", total=prog.steps, rate="-")
        self.progress.start()
        self.update(prog)

    def update(self, prog: ShardProgress | Totals) -> None:
        done = prog.done
        speed = self.progress.tasks[0].speed
        self.progress.update(self.task, completed=done, rate=f"{speed:,.0f}" if speed else "-",
                             description=f"{prog.open} open, {prog.etcd} etcd, {prog.exposed} exposed")

    def close(self) -> None:
        self.progress.stop()

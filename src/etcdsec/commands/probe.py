"""`etcdsec probe TARGET...`: an exact exposure verdict for one or a few endpoints."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING

from etcdsec.errors import UserError
from etcdsec.model import ProbeResult, Severity
from etcdsec.output import FORMATS, render
from etcdsec.targets import PEER_PORT, Target, parse_target

if TYPE_CHECKING:
    from etcdsec.probe.options import ProbeOptions

EXIT_BY_SEVERITY = {Severity.none: 0, Severity.info: 0, Severity.low: 3, Severity.medium: 4,
                    Severity.high: 5, Severity.critical: 6}

HELP_EPILOG = """exit status: 0 nothing at or above --fail-on; 3 low, 4 medium, 5 high, 6 critical (the worst
severity found); 2 bad input; 1 internal error.
Non-intrusive: reads only, never a key's value; --check-write is the one opt-in request that touches
the raft log (a PUT that can only fail)."""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("probe", help="probe etcd endpoints and judge how exposed they are",
                       description="Probe etcd endpoints: fingerprint, TLS, auth, anonymous access, leaks.",
                       epilog=HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="IP, host, host:port, http(s)://host:port, [v6]:port; '-' reads targets from stdin")
    p.add_argument("-f", "--file", action="append", default=[], help="read targets from a file (one a line)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--concurrency", type=int, default=32, help="endpoints probed at once (default 32)")
    p.add_argument("--timeout", type=float, default=10.0, help="deadline per endpoint, seconds (default 10)")
    p.add_argument("--connect-timeout", type=float, default=3.0)
    p.add_argument("--scheme", choices=("http", "https"), help="skip detection and use this scheme")
    p.add_argument("--no-peer", action="store_true",
                   help="for targets without a port, probe only 2379 (default: 2379 and the peer port 2380)")
    p.add_argument("--no-data", action="store_true", help="do not count keys by prefix")
    p.add_argument("--check-write", action="store_true",
                   help="opt-in: prove v2 guest write access with a PUT that cannot succeed")
    p.add_argument("--cacert", help="CA bundle to verify the server (owners auditing their cluster)")
    p.add_argument("--cert", help="client certificate (PEM)")
    p.add_argument("--key", help="client key (PEM)")
    p.add_argument("--user", help="etcd user; the result then says what this user can do")
    p.add_argument("--password", help="password for --user (or set ETCDSEC_PASSWORD)")
    p.add_argument("--fail-on", default="low", help="lowest severity that makes the exit status non-zero")
    p.set_defaults(run=run)


def read_target_lines(lines: list[str]) -> list[str]:
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]


def collect_targets(args: argparse.Namespace) -> list[Target]:
    texts: list[str] = []
    for t in args.targets:
        if t == "-":
            texts += read_target_lines(sys.stdin.read().splitlines())
        else:
            texts.append(t)
    for path in args.file:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                texts += read_target_lines(fh.read().splitlines())
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}") from None
    if not texts:
        raise UserError("no targets given (try: etcdsec probe 127.0.0.1:2379)")
    targets: list[Target] = []
    seen: set[tuple[str, int, str | None]] = set()
    for text in texts:
        t = parse_target(text)
        extra = [] if (t.port_given or args.no_peer) else [
            Target(t.host, PEER_PORT, t.scheme, f"{t.netloc.rsplit(':', 1)[0]}:{PEER_PORT}", False)]
        for one in [t, *extra]:
            key = (one.host, one.port, one.scheme)
            if key not in seen:
                seen.add(key)
                targets.append(one)
    return targets


def options_from_args(args: argparse.Namespace) -> ProbeOptions:
    from etcdsec.probe.options import ProbeOptions

    for name in ("cacert", "cert", "key"):
        path = getattr(args, name)
        if path and not os.path.isfile(path):
            raise UserError(f"--{name}: no such file: {path}")
    if bool(args.cert) != bool(args.key):
        raise UserError("--cert and --key go together")
    if args.timeout <= 0 or args.connect_timeout <= 0:
        raise UserError("timeouts must be positive")
    password = args.password if args.password is not None else os.environ.get("ETCDSEC_PASSWORD")
    if args.user is None and password:
        raise UserError("--password needs --user")
    return ProbeOptions(deadline=args.timeout, connect_timeout=args.connect_timeout,
                        request_timeout=min(4.0, args.timeout), collect_data=not args.no_data,
                        scheme=args.scheme, cacert=args.cacert, cert=args.cert, key=args.key,
                        user=args.user, password=password, check_write=args.check_write)


def exit_status(results: list[ProbeResult], fail_on: Severity) -> int:
    worst = max((Severity.parse(r.severity) for r in results), default=Severity.none)
    return EXIT_BY_SEVERITY[worst] if worst >= fail_on and worst > Severity.info else 0


def _shown(t: Target, r: ProbeResult, single: bool) -> bool:
    """Ports we added on our own (the peer port) are shown only when something answers there."""
    return t.port_given or t.port != PEER_PORT or r.reachable or single


async def _stream_jsonl(targets: list[Target], options: ProbeOptions, concurrency: int) -> list[ProbeResult]:
    """JSON lines as each endpoint finishes: a slow one never holds back the rest."""
    from etcdsec.output import write_jsonl
    from etcdsec.probe.api import probe

    sem = asyncio.Semaphore(concurrency)

    async def one(t: Target) -> tuple[Target, ProbeResult]:
        async with sem:
            return t, await probe(t, options)

    shown: list[ProbeResult] = []
    for fut in asyncio.as_completed([one(t) for t in targets]):
        t, r = await fut
        if _shown(t, r, len(targets) == 1):
            write_jsonl([r], sys.stdout)
            shown.append(r)
    return shown


def run(args: argparse.Namespace) -> int:
    from etcdsec.probe.api import probe_many

    try:
        fail_on = Severity.parse(args.fail_on)
    except ValueError as exc:
        raise UserError(f"--fail-on: {exc}") from None
    if args.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    targets = collect_targets(args)
    options = options_from_args(args)
    try:
        if args.format == "jsonl":
            results = asyncio.run(_stream_jsonl(targets, options, args.concurrency))
        else:
            results = asyncio.run(probe_many(targets, options, concurrency=args.concurrency))
            results = [r for t, r in zip(targets, results, strict=True) if _shown(t, r, len(targets) == 1)]
            render(results, args.format)
    except ValueError as exc:  # e.g. a certificate or key file that does not parse
        raise UserError(str(exc)) from None
    return exit_status(results, fail_on)

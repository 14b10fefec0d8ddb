"""`etcdsec probe TARGET...`: an exact exposure verdict for one or a few endpoints."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING

from etcdsec.errors import UserError
from etcdsec.model import ProbeResult, Severity
from etcdsec.output import FORMATS, ResultWriter
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


def read_target_lines(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            yield text


class TargetSource:
    """The targets of one run, read twice and never all held in memory (a million-line -f stays flat).

    The first pass checks every target (a bad one is a one-line error before anything is probed) and
    marks a 64-bit hash of each in an 8 MiB bitmap; a hash whose bit is already set is noted as a
    possible repeat (a true repeat, or a bitmap collision: ~1.5 % of a million). The second pass
    yields each target once, comparing exact keys only among those possible repeats. stdin is spooled
    to a temporary file to be read twice.
    """

    _BITS = 1 << 26

    def __init__(self, args: argparse.Namespace) -> None:
        self.words: list[str] = list(args.targets)
        self.files: list[str] = list(args.file)
        self.no_peer: bool = args.no_peer
        self._stdin: IO[str] | None = None
        if "-" in self.words:
            self._stdin = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115  read till exit
            shutil.copyfileobj(sys.stdin, self._stdin)
        bitmap = bytearray(self._BITS >> 3)
        self._repeated: set[int] = set()
        distinct: set[tuple[str, int, str | None]] = set()  # the first two, to know a single target
        for t in self._expand():
            key = (t.host, t.port, t.scheme)
            h = hash(key)
            index, bit = (h % self._BITS) >> 3, 1 << (h & 7)
            if bitmap[index] & bit:
                self._repeated.add(h)
            bitmap[index] |= bit
            if len(distinct) < 2:
                distinct.add(key)
        if not distinct:
            raise UserError("no targets given (try: etcdsec probe 127.0.0.1:2379)")
        self.single = len(distinct) == 1

    def _texts(self) -> Iterator[str]:
        for word in self.words:
            if word != "-":
                yield word
            elif self._stdin is not None:
                self._stdin.seek(0)
                yield from read_target_lines(self._stdin)
        for path in self.files:
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    yield from read_target_lines(fh)
            except OSError as exc:
                raise UserError(f"cannot read {path}: {exc.strerror}") from None

    def _expand(self) -> Iterator[Target]:
        for text in self._texts():
            t = parse_target(text)
            yield t
            if not (t.port_given or self.no_peer):
                yield Target(t.host, PEER_PORT, t.scheme, f"{t.netloc.rsplit(':', 1)[0]}:{PEER_PORT}", False)

    def __iter__(self) -> Iterator[Target]:
        seen: set[tuple[str, int, str | None]] = set()  # exact keys, only of possible repeats
        for t in self._expand():
            key = (t.host, t.port, t.scheme)
            if hash(key) in self._repeated:
                if key in seen:
                    continue
                seen.add(key)
            yield t


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


def exit_status(worst: Severity, fail_on: Severity) -> int:
    return EXIT_BY_SEVERITY[worst] if worst >= fail_on and worst > Severity.info else 0


def _shown(t: Target, r: ProbeResult, single: bool) -> bool:
    """Ports we added on our own (the peer port) are shown only when something answers there."""
    return t.port_given or t.port != PEER_PORT or r.reachable or single


async def _probe_all(source: TargetSource, options: ProbeOptions, concurrency: int, writer: ResultWriter) -> Severity:
    """Every result written as it comes: JSON lines in the order endpoints finish (a slow one never
    holds back the rest), the other formats in the order of the targets. Returns the worst severity."""
    from etcdsec.probe.api import probe_stream

    worst = Severity.none
    async for t, r in probe_stream(source, options, concurrency, ordered=writer.fmt != "jsonl"):
        if _shown(t, r, source.single):
            writer.add(r)
            worst = max(worst, Severity.parse(r.severity))
    return worst


def run(args: argparse.Namespace) -> int:
    try:
        fail_on = Severity.parse(args.fail_on)
    except ValueError as exc:
        raise UserError(f"--fail-on: {exc}") from None
    if args.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    source = TargetSource(args)
    options = options_from_args(args)
    writer = ResultWriter(args.format, sys.stdout)
    try:
        worst = asyncio.run(_probe_all(source, options, args.concurrency, writer))
    except ValueError as exc:  # e.g. a certificate or key file that does not parse
        raise UserError(str(exc)) from None
    writer.close()
    return exit_status(worst, fail_on)

"""`etcdsec audit`: audit etcd configuration from files, a host tree, live processes and an endpoint."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from etcdsec.audit.engine import audit
from etcdsec.audit.reporters import render_json, render_sarif, render_text
from etcdsec.errors import UserError
from etcdsec.model import Severity

EPILOG = """\
With no PATH and no --root, running etcd and kube-apiserver processes are audited from /proc.
Exit status: 0 when no finding is at or above --fail-on, 1 when one is, 2 on bad input."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit", help="find etcd misconfigurations on a host, resolved the way etcd reads them",
        description="Audit etcd (and kube-apiserver's use of it) from config files, a host tree, "
                    "running processes and optionally a live endpoint.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", metavar="PATH", type=Path,
                        help="a config file, or a directory (a host tree holding etc/...)")
    parser.add_argument("--root", type=Path, metavar="DIR",
                        help="resolve absolute paths met inside configs under DIR (a mounted host tree)")
    parser.add_argument("--pid", type=int, action="append", metavar="PID",
                        help="audit this running process (repeatable); implies a live audit")
    parser.add_argument("--live", action="store_true",
                        help="also audit running etcd/kube-apiserver processes when PATHs are given")
    parser.add_argument("--endpoint", action="append", metavar="URL", default=[],
                        help="probe this etcd client URL and add what it allows at runtime (repeatable)")
    parser.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    parser.add_argument("--fail-on", default="high", metavar="SEVERITY",
                        help="exit 1 when a finding is at or above this: info, low, medium, high "
                             "(default) or critical; none never fails")
    parser.set_defaults(run=run)


def _fail_threshold(text: str) -> Severity | None:
    if text.strip().lower() == "none":
        return None
    try:
        severity = Severity.parse(text)
    except ValueError as exc:
        raise UserError(f"--fail-on: {exc}") from None
    if severity is Severity.none:
        return None
    return severity


def _probe(endpoints: list[str]) -> list[Any]:
    """What each --endpoint allows an anonymous client, from the prober (read-only by default)."""
    if not endpoints:
        return []
    from etcdsec.probe.api import probe_many  # only with --endpoint: the prober's imports cost start-up time
    from etcdsec.targets import parse_target
    for url in endpoints:
        if "://" not in url:
            raise UserError(f"--endpoint {url!r}: expected a URL such as https://10.0.0.5:2379")
    targets = [parse_target(url) for url in endpoints]  # UserError for a malformed URL
    return list(asyncio.run(probe_many(targets, None, concurrency=4)))


def run(args: argparse.Namespace) -> int:
    threshold = _fail_threshold(args.fail_on)
    if args.root is not None and not args.root.is_dir():
        raise UserError(f"--root {args.root}: not a directory")
    for path in args.paths:
        if not path.exists() and not path.is_symlink():
            raise UserError(f"{path}: no such file or directory")
    live = bool(args.live or args.pid or (not args.paths and args.root is None))
    pids = set(args.pid) if args.pid else None
    if pids:
        missing = [p for p in sorted(pids) if not Path(f"/proc/{p}").exists()]
        if missing:
            raise UserError(f"--pid {missing[0]}: no such process")
    report = audit(list(args.paths), root=args.root, pids=pids, live=live, probes=_probe(args.endpoint))
    if args.format == "json":
        render_json(report, sys.stdout)
    elif args.format == "sarif":
        render_sarif(report, sys.stdout)
    else:
        render_text(report, sys.stdout, colour=sys.stdout.isatty())
    if threshold is None:
        return 0
    return 1 if any(Severity.parse(f.severity) >= threshold for f in report.findings) else 0

"""How a scan command ends, in one place for the one-process and the Dask paths: the summary line
(stdout for text, stderr otherwise), or on an interrupt the command that finishes the scan."""

from __future__ import annotations

import argparse
import sys


def note(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(f"etcdsec: {text}", file=sys.stderr)


def finish(args: argparse.Namespace, scan_id: int, summary: str, found_etcd: bool, interrupted: bool,
           resume_flags: str) -> int:
    """Exit code 130 with the resume command when interrupted, else 0 after the summary."""
    if interrupted:
        print(f"etcdsec: interrupted; {summary}; finish it with: etcdsec scan --resume --scan {scan_id}"
              f"{resume_flags}", file=sys.stderr)
        return 130
    if args.format == "text":
        print(summary + (f" (etcdsec report --scan {scan_id})" if found_etcd else ""))
    else:
        note(args, summary)
    return 0

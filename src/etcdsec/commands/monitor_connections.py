"""`etcdsec monitor connections`: placeholder; the monitor-connections branch replaces this file."""

from __future__ import annotations

import argparse

from etcdsec.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--watch", action="append", default=[], metavar="HOST:PORT", help="an etcd listener to watch")


def run(args: argparse.Namespace) -> int:
    raise UserError("monitor connections: not built yet")

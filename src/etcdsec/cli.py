"""The `etcdsec` command line: one sub-command per module under `etcdsec.commands`.

Each command module exposes `add_parser(subparsers)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from etcdsec.errors import UserError
from etcdsec.version import __version__

# Sub-command name -> module. Order is the order shown in --help.
COMMANDS: dict[str, str] = {
    "probe": "etcdsec.commands.probe",
    "scan": "etcdsec.commands.scan",
    "report": "etcdsec.commands.report",
    "honeypot": "etcdsec.commands.honeypot",
    "audit": "etcdsec.commands.audit",
    "monitor": "etcdsec.commands.monitor",
    "demo": "etcdsec.commands.demo",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every other bad input
        raise UserError(message if self.prog == "etcdsec" else f"{self.prog}: {message}")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Import only the chosen sub-command's module (start-up stays fast); all of them for --help."""
    parser = _Parser(prog="etcdsec", description="Find, prove, audit and watch exposed etcd.")
    parser.add_argument("--version", action="version", version=f"etcdsec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    words = list(sys.argv[1:] if argv is None else argv)
    chosen = next((w for w in words if not w.startswith("-")), None)
    names = [chosen] if chosen in COMMANDS else list(COMMANDS)
    for name in names:
        importlib.import_module(COMMANDS[name]).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser(argv).parse_args(argv)
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"etcdsec: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("etcdsec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # A closed pipe (`etcdsec probe ... | head`) is not worth a traceback. SIGPIPE is left alone:
        # main() also runs inside other processes (tests), whose sockets must not kill them.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 141

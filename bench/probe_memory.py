#!/usr/bin/env python3
"""Peak memory of `etcdsec probe -f` over many closed loopback targets, before and after streaming.

Usage:  .venv/bin/python bench/probe_memory.py [--counts 100000,1000000] [--before SRC] [--nmap 100000]
        --before: a `src` directory of an older etcdsec (e.g. `git archive 264a789 src | tar -x -C /tmp/old`)
        run at counts up to --before-max (default 100,000: it holds ~3.6 KB a target).
        --nmap: also run `nmap -sT -Pn -n -p1 -iL FILE` (a connect scan, what a user would reach for to
        sweep a target list) at this count; 0 skips it.
Every target is 127.x.y.z:1 (port 1: nothing listens; the kernel answers RST at once). Each run is
bounded by --timeout seconds. Peak RSS is the kernel's own (wait4 ru_maxrss, through
tests/support/peakrss.py so that this script's own memory is not counted in).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.peakrss import run_measured

MIB = 1024 * 1024


def closed_targets(path: Path, count: int) -> Path:
    if count > 55 * 65024:
        raise SystemExit("at most 3.5 million loopback targets")
    with path.open("w") as fh:
        for i in range(count):
            fh.write(f"127.{200 + i // 65024}.{i // 254 % 256}.{i % 254 + 1}:1\n")
    return path


def measure(argv: list[str], env: dict[str, str], timeout: float) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, output lines) of one bounded run; the output goes to a file and is
    counted, not kept in memory."""
    with tempfile.TemporaryFile() as out:
        run = run_measured(argv, timeout, env=env, stdout_file=out)
        out.seek(0)
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: out.read(1 << 20), b""))
    return run.seconds, run.peak_bytes / MIB, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="100000,1000000")
    ap.add_argument("--formats", default="jsonl,csv,json,table")
    ap.add_argument("--before", help="src directory of the etcdsec to compare with")
    ap.add_argument("--before-max", type=int, default=100_000)
    ap.add_argument("--nmap", type=int, default=100_000)
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"{'tool':<34} {'targets':>9} {'format':>6} {'seconds':>8} {'peak MiB':>9} {'lines out':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            path = closed_targets(Path(tmp) / f"{count}.txt", count)
            runs: list[tuple[str, list[str], dict[str, str]]] = []
            for fmt in filter(None, args.formats.split(",")):
                argv = [sys.executable, "-m", "etcdsec", "probe", "-f", str(path), "--format", fmt]
                runs.append(("etcdsec probe (streaming)", argv, dict(os.environ)))
                if args.before and count <= args.before_max:
                    runs.append(("etcdsec probe (before)", argv, {**os.environ, "PYTHONPATH": args.before}))
            if args.nmap and count == args.nmap and shutil.which("nmap"):
                hosts = Path(tmp) / f"{count}.hosts"  # nmap takes addresses, the port goes in -p
                hosts.write_text("".join(line.rsplit(":", 1)[0] + "\n" for line in path.open()))
                runs.append(("nmap -sT -Pn -n -p1 -iL", ["nmap", "-sT", "-Pn", "-n", "-p1", "--max-retries", "0",
                                                         "-T4", "-oG", "-", "-iL", str(hosts)], dict(os.environ)))
            for name, argv, env in runs:
                secs, rss, lines = measure(argv, env, args.timeout)
                fmt = argv[argv.index("--format") + 1] if "--format" in argv else "-oG"
                print(f"{name:<34} {count:>9,} {fmt:>6} {secs:>8.1f} {rss:>9.0f} {lines:>10,}", flush=True)


if __name__ == "__main__":
    main()

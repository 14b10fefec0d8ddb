"""Several sensor processes on one port: a supervisor forks workers and keeps them running.

One Python process tops out at one core (~9,000 logged writes/s). The supervisor makes one
SO_REUSEPORT listening socket per worker, with a BPF program that sends every connection from a
client address to the same worker (`reuseport.py`), so a source keeps one keyspace, its watches and
exact per-source limits. Workers do not share their keyspaces: sources served by different workers
do not see each other's writes, and their revisions move apart (docs/honeypot.md).

Signals: SIGTERM/SIGINT are passed to the workers, which flush and exit; the supervisor then exits 0
when every worker did. SIGHUP is passed on (reopen the event file). A worker that dies is started
again on the same socket (connections for it wait in the kernel's queue meanwhile); one that dies
within a second of its start, twice in a row, stops the sensor instead of looping.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

from etcdsec.errors import UserError
from etcdsec.honeypot.reuseport import listen_group
from etcdsec.honeypot.sensor import SensorConfig, WorkerSlot, run_forever, sensor_identity

PR_SET_PDEATHSIG = 1
QUICK_DEATH_S = 1.0


def _die_with_parent() -> None:
    """A worker whose supervisor is killed (-9) stops too, instead of serving on unsupervised."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def run_workers(config: SensorConfig, count: int,
                ready: Callable[[dict[str, tuple[str, int]]], None] | None = None,
                metrics: Callable[[list[int]], None] | None = None) -> int:
    """Run `count` workers until SIGTERM/SIGINT; the exit status is 0 when all of them stopped cleanly."""
    identity = sensor_identity(config)  # once, so workers never race on the state file
    try:
        groups = {"client": listen_group(*config.listen, count)}
        if config.peer_listen:
            groups["peer"] = listen_group(*config.peer_listen, count)
    except OSError as exc:
        raise UserError(f"cannot listen: {exc.strerror or exc}") from None
    addresses = {name: socks[0].getsockname()[:2] for name, socks in groups.items()}
    workers: dict[int, int] = {}  # pid -> index
    started: dict[int, float] = {}  # index -> start time
    quick_deaths: dict[int, int] = {}
    stopping = False
    failed = False

    def spawn(index: int) -> None:
        slot = WorkerSlot(index, count, {name: socks[index] for name, socks in groups.items()})
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                _die_with_parent()
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                code = run_forever(config, identity=identity, slot=slot)
            except UserError as exc:
                print(f"etcdsec honeypot: worker {index}: {exc}", file=sys.stderr, flush=True)
                code = 2
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        workers[pid] = index
        started[index] = time.monotonic()

    def forward(sig: int, _frame: object) -> None:
        nonlocal stopping
        if sig != signal.SIGHUP:
            stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if sig != signal.SIGHUP else signal.SIGHUP)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        for index in range(count):
            spawn(index)
        if ready:
            ready(addresses)
        if metrics:
            metrics(list(workers))
        while workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            index = workers.pop(pid, None)
            if index is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                failed |= code != 0
                continue
            print(f"etcdsec honeypot: worker {index} (pid {pid}) exited with {code}", file=sys.stderr, flush=True)
            quick = time.monotonic() - started[index] < QUICK_DEATH_S
            quick_deaths[index] = quick_deaths.get(index, 0) + 1 if quick else 0
            if quick_deaths[index] >= 2:
                failed = True
                forward(signal.SIGTERM, None)
                continue
            spawn(index)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for socks in groups.values():
            for sock in socks:
                sock.close()
    return 1 if failed else 0


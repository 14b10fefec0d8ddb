"""Several sensor processes on one port: a supervisor forks workers and keeps them running.

One Python process tops out at one core (~9,000 logged writes/s). The supervisor makes one
SO_REUSEPORT listening socket per worker, with a BPF program that sends every connection from a
client address to the same worker (`reuseport.py`), so a source keeps one keyspace, its watches and
exact per-source limits. Workers do not share their keyspaces: sources served by different workers
do not see each other's writes, and their revisions move apart (docs/honeypot.md).

The supervisor is a single-threaded select() loop (no threads, so forking a replacement worker is
safe): signals arrive through a wakeup pipe; SIGTERM/SIGINT are passed to the workers, which flush
and exit, and the supervisor exits 0 when every worker did; SIGHUP is passed on (reopen the event
file). A worker that dies is started again on the same socket (its connections wait in the
kernel's queue meanwhile); one that dies within a second of its start twice in a row stops the
sensor instead of looping. `--metrics-listen` is served here, summed over the workers, which each
answer on a control socket.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable

import h11

from etcdsec.errors import UserError
from etcdsec.events.metrics import answer
from etcdsec.honeypot import sensor_metrics
from etcdsec.honeypot.sensor import SensorConfig, WorkerSlot, run_forever, sensor_identity, tls_context
from etcdsec.honeypot.serve.reuseport import listen_group
from etcdsec.honeypot.shared.link import link_message
from etcdsec.honeypot.v3.replica import Published

PR_SET_PDEATHSIG = 1
QUICK_DEATH_S = 1.0
CONTROL_TIMEOUT_S = 2.0
METRICS_TIMEOUT_S = 5.0


def _die_with_parent() -> None:
    """A worker whose supervisor is killed (-9) stops too, instead of serving on unsupervised."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def preflight(config: SensorConfig) -> None:
    """What a worker would refuse at start, refused once here with the same one-line errors."""
    if config.events is not None:
        try:
            os.close(os.open(config.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))
        except OSError as exc:
            raise UserError(f"cannot open event file {config.events}: {exc.strerror or exc}") from None
    tls_context(config)
    if config.seed_file is not None:
        from etcdsec.honeypot.core.bait import load_seed_file

        load_seed_file(config.seed_file)  # a bad seed: one error here, not every worker failing twice
    if config.db:
        from etcdsec.events.store import EventStoreWriter

        EventStoreWriter(config.db).close()  # creates the tables; its thread ends before any fork


class Supervisor:
    def __init__(self, config: SensorConfig, count: int) -> None:
        self.config, self.count = config, count
        self.identity = sensor_identity(config)  # once, so workers never race on the state file
        preflight(config)
        try:
            self.groups = {"client": listen_group(*config.listen, count)}
            if config.peer_listen:
                self.groups["peer"] = listen_group(*config.peer_listen, count)
            self.metrics_sock = None
            if config.metrics_listen:
                host = config.metrics_listen[0]
                self.metrics_sock = socket.create_server(
                    config.metrics_listen, family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        except OSError as exc:
            self.close()
            raise UserError(f"cannot listen: {exc.strerror or exc}") from None
        self.addresses = {name: socks[0].getsockname()[:2] for name, socks in self.groups.items()}
        if self.metrics_sock is not None:
            self.addresses["metrics"] = self.metrics_sock.getsockname()[:2]
        self.workers: dict[int, int] = {}  # pid -> index
        self.controls: dict[int, socket.socket] = {}  # index -> supervisor's end of the control pair
        self.started: dict[int, float] = {}
        self.quick_deaths: dict[int, int] = {}
        self.stopping = False
        self.failed = False
        self.wake: tuple[int, int] | None = None  # the signal wakeup pipe while running
        self.shared = config.shared_keyspace and count > 1
        # one page for the owner's count of pushed changes: made before any fork, so every worker maps it
        self.published = Published.shared() if self.shared else None

    def close(self) -> None:
        for socks in getattr(self, "groups", {}).values():
            for sock in socks:
                sock.close()
        if getattr(self, "metrics_sock", None) is not None:
            self.metrics_sock.close()
        for control in getattr(self, "controls", {}).values():
            control.close()

    # --- workers -------------------------------------------------------------------------------
    def spawn(self, index: int) -> None:
        old = self.controls.pop(index, None)
        if old is not None:
            old.close()
        ours, theirs = socket.socketpair()
        slot = WorkerSlot(index, self.count, {name: socks[index] for name, socks in self.groups.items()}, theirs,
                          shared=self.shared, published=self.published)
        link = self._new_link(index) if self.shared and index != 0 and 0 in self.controls else None
        slot.link = link
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                _die_with_parent()
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
                for fd in self.wake or ():
                    os.close(fd)
                ours.close()
                # only its own sockets: the others stay open in the supervisor, which owns them
                for other in self.controls.values():
                    other.close()
                for socks in self.groups.values():
                    for sock in socks:
                        if sock not in slot.sockets.values():
                            sock.close()
                if self.metrics_sock is not None:
                    self.metrics_sock.close()
                code = run_forever(self.config, identity=self.identity, slot=slot)
            except UserError as exc:
                print(f"etcdsec: error: worker {index}: {exc}", file=sys.stderr, flush=True)
                code = 2
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        theirs.close()
        if link is not None:
            link.close()
        ours.settimeout(CONTROL_TIMEOUT_S)
        self.controls[index] = ours
        self.workers[pid] = index
        self.started[index] = time.monotonic()
        if self.shared and index == 0:  # a new owner: every forwarding worker gets a link to it
            for other in sorted(self.controls):
                if other != 0:
                    self._hand(other, self._new_link(other))

    # --- --shared-keyspace ---------------------------------------------------------------------
    def _new_link(self, index: int) -> socket.socket:
        """A link between the owner and worker `index`: the owner's end goes to it now (passed on
        its control socket); the worker's end is returned."""
        owner_end, worker_end = socket.socketpair()
        try:
            socket.send_fds(self.controls[0], [link_message(index)], [owner_end.fileno()])
        except OSError:  # the owner is dying: its successor links everyone again
            pass
        finally:
            owner_end.close()
        return worker_end

    def _hand(self, index: int, worker_end: socket.socket) -> None:
        """Give a running worker its new link (the owner was restarted)."""
        try:
            socket.send_fds(self.controls[index], [link_message(index)], [worker_end.fileno()])
        except OSError:  # the worker is dying: it gets a link when it is started again
            pass
        finally:
            worker_end.close()

    def signal_workers(self, sig: int) -> None:
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                return
            if pid == 0:
                return
            index = self.workers.pop(pid, None)
            if index is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:  # a worker still starting when SIGTERM came dies of it: also a clean stop
                self.failed |= code not in (0, -signal.SIGTERM, -signal.SIGINT)
                continue
            print(f"etcdsec honeypot: worker {index} (pid {pid}) exited with {code}; starting it again",
                  file=sys.stderr, flush=True)
            quick = time.monotonic() - self.started[index] < QUICK_DEATH_S
            self.quick_deaths[index] = self.quick_deaths.get(index, 0) + 1 if quick else 0
            if self.quick_deaths[index] >= 2:
                print(f"etcdsec honeypot: worker {index} keeps failing at start; stopping", file=sys.stderr,
                      flush=True)
                self.failed = self.stopping = True
                self.signal_workers(signal.SIGTERM)
                continue
            self.spawn(index)

    # --- metrics -------------------------------------------------------------------------------
    def worker_snapshots(self) -> list[dict[str, object]]:
        snaps = []
        for control in list(self.controls.values()):
            try:
                control.sendall(b"?")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = control.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                snaps.append(json.loads(data))
            except (OSError, ValueError):  # a worker restarting or stuck: left out of this scrape
                continue
        return snaps

    def metrics_text(self) -> bytes:
        snaps = self.worker_snapshots()
        return sensor_metrics.render(sensor_metrics.merge(snaps), len(snaps))

    def serve_metrics(self) -> None:
        assert self.metrics_sock is not None
        conn, _ = self.metrics_sock.accept()
        conn.settimeout(METRICS_TIMEOUT_S)
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=8192)
        try:
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    data = conn.recv(8192)
                    parser.receive_data(data)
                    if not data:
                        return
                elif isinstance(event, h11.Request):
                    conn.sendall(answer(parser, event.target, self.metrics_text))
                    return
                else:
                    return
        except (h11.ProtocolError, OSError):
            return
        finally:
            conn.close()

    # --- main loop -----------------------------------------------------------------------------
    def run(self, ready: Callable[[dict[str, tuple[str, int]]], None] | None = None) -> int:
        wake_r, wake_w = self.wake = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        pending: list[int] = []

        def on_signal(sig: int, _frame: object) -> None:
            pending.append(sig)

        previous = {sig: signal.signal(sig, on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)}
        old_wakeup = signal.set_wakeup_fd(wake_w)
        try:
            for index in range(self.count):
                self.spawn(index)
            if ready:
                ready(self.addresses)
            watched = [wake_r] + ([self.metrics_sock] if self.metrics_sock is not None else [])
            while self.workers:
                readable, _, _ = select.select(watched, [], [], 1.0)
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
                while pending:
                    sig = pending.pop(0)
                    if sig in (signal.SIGTERM, signal.SIGINT):
                        self.stopping = True
                        self.signal_workers(signal.SIGTERM)
                    elif sig == signal.SIGHUP:
                        self.signal_workers(signal.SIGHUP)
                self.reap()
                if self.metrics_sock is not None and self.metrics_sock in readable:
                    self.serve_metrics()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
            self.close()
        return 1 if self.failed else 0


def run_workers(config: SensorConfig, count: int,
                ready: Callable[[dict[str, tuple[str, int]]], None] | None = None) -> int:
    """Run `count` workers until SIGTERM/SIGINT; the exit status is 0 when all of them stopped cleanly."""
    return Supervisor(config, count).run(ready)

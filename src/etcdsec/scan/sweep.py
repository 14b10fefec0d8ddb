"""The scan engine: a rate-limited async TCP connect sweep over the permutation, open ports handed to
the prober, results written in batches together with the resume cursor.

Bounded everywhere: `concurrency` pairs in flight (connecting or being probed), `rate` new
connections per second, one connect timeout per attempt, the prober's own deadline per open port.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from etcdsec.errors import UserError
from etcdsec.model import ProbeResult
from etcdsec.scan.connect import Connector
from etcdsec.scan.permutation import Permutation
from etcdsec.scan.stored import ShardProgress
from etcdsec.scan.targets import TargetSet
from etcdsec.store.scans import EndpointRow, ScanStore
from etcdsec.tokenbucket import TokenBucket

ProbeFn = Callable[[str], Awaitable[ProbeResult]]


@dataclass
class SweepConfig:
    rate: float | None = None  # new connections per second; None = as fast as concurrency allows
    concurrency: int = 1000  # (address, port) pairs in flight
    probe_concurrency: int = 64  # open ports being probed at once
    connect_timeout: float = 2.0
    flush_interval: float = 0.25  # seconds between batch writes: all a kill -9 can make us redo
    flush_size: int = 500  # results per batch at most
    max_seconds: float | None = None  # stop (resumably) after this long


@dataclass
class SweepStats:
    swept: int = 0
    open: int = 0
    etcd: int = 0
    exposed: int = 0
    elapsed: float = 0.0
    interrupted: bool = False

    def summary(self, where: str) -> str:
        return (f"{where}: {self.swept} pairs swept, {self.open} open, {self.etcd} etcd, {self.exposed} exposed "
                f"in {self.elapsed:.1f}s")


def endpoint_text(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class Sweeper:
    def __init__(self, targets: TargetSet, perm: Permutation, prog: ShardProgress, store: ScanStore,
                 config: SweepConfig, probe: ProbeFn | None,
                 on_result: Callable[[ProbeResult], None] | None = None,
                 on_tick: Callable[[ShardProgress], None] | None = None) -> None:
        self.targets, self.perm, self.prog, self.store = targets, perm, prog, store
        self.config, self.probe, self.on_result, self.on_tick = config, probe, on_result, on_tick
        self.pending: list[EndpointRow] = []
        self.stop = asyncio.Event()
        self.error: BaseException | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self.inflight = 0
        self._flush_lock = asyncio.Lock()

    async def run(self) -> SweepStats:
        started = time.monotonic()
        cfg = self.config
        limit = max(1, cfg.concurrency)
        self._probes = asyncio.Semaphore(max(1, cfg.probe_concurrency))
        bucket = TokenBucket(cfg.rate, now=time.monotonic()) if cfg.rate else None
        deadline = started + cfg.max_seconds if cfg.max_seconds else None
        connector = Connector(cfg.connect_timeout)
        flusher = asyncio.create_task(self._flush_loop())
        launched = 0
        # Local names: this loop runs once per (address, port) and is the sweep's hot path.
        cursor, target, start, connected = self.prog.cursor, self.targets.target, connector.start, self._connected
        stopped, partial = self.stop.is_set, functools.partial
        try:
            for step, index in self.perm.walk_all(self.prog.shard, cursor.start_step()):
                if stopped() or (deadline and time.monotonic() > deadline):
                    self.stop.set()
                    break
                if index is None:  # an element past the target set: nothing to do, but the cursor moves
                    cursor.skip(step)
                    continue
                if cursor.is_done(step):
                    continue
                if bucket is not None:
                    while (wait := bucket.take(time.monotonic())) > 0:
                        await asyncio.sleep(wait)
                while self.inflight >= limit and not stopped():
                    self._slot_freed.clear()
                    await self._slot_freed.wait()
                ip, port = target(index)
                self.inflight += 1
                cursor.launch(step)
                start(ip, port, partial(connected, step, ip, port))
                launched += 1
                if launched % 256 == 0:
                    await asyncio.sleep(0)  # let answers, probes and the flusher run
            while self.inflight and not self.stop.is_set():
                self._slot_freed.clear()
                await self._slot_freed.wait()
        finally:
            # Interrupted: abandon in-flight pairs (not marked done, so a resume redoes them).
            connector.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
        if self.error is not None:
            raise self.error
        await self.flush()
        stats = SweepStats(self.prog.swept, self.prog.open, self.prog.etcd, self.prog.exposed,
                           time.monotonic() - started, interrupted=self.stop.is_set())
        if not stats.interrupted:
            self.prog.finished = True
            self.store.finish_shard(self.prog.row())
        return stats

    def request_stop(self) -> None:
        """Stop launching, abandon what is in flight, write what is done (signal handlers call this)."""
        self.stop.set()
        self._slot_freed.set()

    def _release(self) -> None:
        self.inflight -= 1
        self._slot_freed.set()

    def _connected(self, step: int, ip: str, port: int, is_open: bool | None) -> None:
        if is_open is None:
            self.error = UserError(f"out of local sockets or ports while connecting to {ip}:{port}: "
                                   "lower --concurrency or raise `ulimit -n`, then --resume")
            self._release()
            self.request_stop()
        elif is_open:
            task = asyncio.create_task(self._found(step, ip, port))
            self.tasks.add(task)
            task.add_done_callback(self._task_done)
        else:
            self.prog.swept += 1
            self.prog.cursor.finish(step)
            self._release()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self.error is None:
            self.error = task.exception()
            self.request_stop()

    async def _found(self, step: int, ip: str, port: int) -> None:
        try:
            if self.probe is None:
                result = ProbeResult(target=endpoint_text(ip, port), ip=ip, port=port, reachable=True)
            else:
                async with self._probes:
                    result = await self.probe(endpoint_text(ip, port))
                result.ip = result.ip or ip
                result.port = result.port or port
            self.pending.append(EndpointRow(result, self.targets.meta.get(ip)))
            self.prog.open += 1
            self.prog.etcd += bool(result.is_etcd)
            self.prog.exposed += bool(result.exposed)
            if self.on_result is not None:
                self.on_result(result)
            self.prog.swept += 1
            self.prog.cursor.finish(step)
        finally:
            self._release()
        if len(self.pending) >= self.config.flush_size and not self._flush_lock.locked():
            await self.flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval)
            await self.flush()
            if self.on_tick is not None:
                self.on_tick(self.prog)

    async def flush(self) -> None:
        """Write the pending rows and the cursor as they are now, off the event loop."""
        async with self._flush_lock:
            rows, self.pending = self.pending, []
            snapshot = self.prog.row()
            write = asyncio.ensure_future(asyncio.to_thread(self.store.write_batch, snapshot, rows))
            try:
                # Shielded: cancelling the wait (the sweep ending, Ctrl-C) would also cancel a write
                # still queued for a pool thread, and lose its rows. It finishes under the lock, so
                # the writes after it (the last batch, the finished mark) land after it.
                await asyncio.shield(write)
            except asyncio.CancelledError:
                await asyncio.wait([write])
                if write.exception() is not None and self.error is None:
                    self.error = write.exception()
                raise
            except Exception as exc:
                self.error = exc
                self.request_stop()
                raise

"""The scan engine: a rate-limited async TCP connect sweep over the permutation, open ports handed to
the prober, results written in batches together with the resume cursor.

Bounded everywhere: `concurrency` tasks at once, `rate` new connections per second, one connect
timeout per attempt, the prober's own deadline per open port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from etcdsec.model import ProbeResult
from etcdsec.scan.cursor import ResumeCursor
from etcdsec.scan.permutation import Permutation
from etcdsec.scan.ratelimit import TokenBucket
from etcdsec.scan.targets import TargetSet
from etcdsec.store.scans import EndpointRow, ScanStore, ShardProgress

ProbeFn = Callable[[str], Awaitable[ProbeResult]]
# Local resource trouble: not an answer from the target, so wait and try the same pair again.
_LOCAL_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.EADDRNOTAVAIL, errno.ENOBUFS, errno.EAGAIN}
_LINGER_RESET = struct.pack("ii", 1, 0)


@dataclass
class SweepConfig:
    rate: float | None = None  # new connections per second; None = as fast as concurrency allows
    concurrency: int = 1000  # (address, port) pairs in flight
    probe_concurrency: int = 64  # open ports being probed at once
    connect_timeout: float = 2.0
    flush_interval: float = 1.0  # seconds between batch writes
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
    extra: dict[str, float] = field(default_factory=dict)


def endpoint_text(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


async def tcp_open(ip: str, port: int, timeout: float) -> bool:
    """True if a TCP connect completes. Open sockets are closed with a reset (no TIME_WAIT pile-up)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    for attempt in range(50):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (ip, port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            return True
        except TimeoutError:
            return False
        except OSError as exc:
            if exc.errno in _LOCAL_ERRNOS:
                await asyncio.sleep(min(1.0, 0.01 * (attempt + 1)))
                continue
            return False
        finally:
            sock.close()
    return False


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
        self._flush_lock = asyncio.Lock()

    async def run(self) -> SweepStats:
        started = time.monotonic()
        cfg = self.config
        slots = asyncio.Semaphore(max(1, cfg.concurrency))
        probes = asyncio.Semaphore(max(1, cfg.probe_concurrency))
        bucket = TokenBucket(cfg.rate, now=time.monotonic()) if cfg.rate else None
        tasks: set[asyncio.Task[None]] = set()
        deadline = started + cfg.max_seconds if cfg.max_seconds else None
        flusher = asyncio.create_task(self._flush_loop())
        try:
            for step, index in self.perm.walk_all(self.prog.shard, self.prog.cursor.cursor):
                if self.stop.is_set() or (deadline and time.monotonic() > deadline):
                    self.stop.set()
                    break
                if index is None:  # an element past the target set: nothing to do, but the cursor moves
                    self.prog.cursor.mark_done(step)
                    continue
                if self.prog.cursor.is_done(step):
                    continue
                if bucket is not None:
                    while (wait := bucket.take(time.monotonic())) > 0:
                        await asyncio.sleep(wait)
                await slots.acquire()
                task = asyncio.create_task(self._one(step, index, slots, probes))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks and not self.stop.is_set():
                done, _ = await asyncio.wait(set(tasks), timeout=0.25)
                for task in done:
                    if task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
        finally:
            # Interrupted: abandon in-flight pairs (not marked done, so a resume redoes them).
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
        if self.error is not None:
            raise self.error
        await self.flush()
        stats = SweepStats(self.prog.swept, self.prog.open, self.prog.etcd, self.prog.exposed,
                           time.monotonic() - started, interrupted=self.stop.is_set())
        if not stats.interrupted:
            self.store.finish_shard(self.prog)
        return stats

    async def _one(self, step: int, index: int, slots: asyncio.Semaphore, probes: asyncio.Semaphore) -> None:
        try:
            ip, port = self.targets.target(index)
            if await tcp_open(ip, port, self.config.connect_timeout):
                if self.probe is None:
                    result = ProbeResult(target=endpoint_text(ip, port), ip=ip, port=port, reachable=True)
                else:
                    async with probes:
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
            self.prog.cursor.mark_done(step)
        finally:
            slots.release()
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
            snapshot = dataclasses.replace(
                self.prog, cursor=ResumeCursor(self.prog.cursor.cursor, set(self.prog.cursor.done_ahead))
            )
            try:
                await asyncio.to_thread(self.store.write_batch, snapshot, rows)
            except Exception as exc:
                self.error = exc
                self.stop.set()
                raise

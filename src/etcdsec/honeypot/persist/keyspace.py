"""The honeypot's keyspace kept across restarts: what attackers write, delete and lease stays.

Every write path of the keyspace is journalled the same way: its records (`persist/records.py`,
the format a replica applies too) go to this journal's sink. Records collect in memory and are
written and fsynced to the log every flush interval (`--state-flush`, 1 s): `kill -9` loses at
most that interval. When the log outgrows the snapshot (or the state nears its cap) a new
snapshot replaces both. Past the cap (`--state-max-bytes`), puts fail as etcd's do under its
NOSPACE alarm ("etcdserver: mvcc: database space exceeded") until a snapshot fits again.

Lease expiries are kept as wall-clock deadlines: the time the sensor was down counts against them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from etcdsec.honeypot.persist.journal import Journal, JournalError, encode, write_background_snapshot
from etcdsec.honeypot.persist.records import BAD_INPUT, KeyspaceRecords, Record
from etcdsec.honeypot.v2.keystore import V2Store

if TYPE_CHECKING:
    from etcdsec.honeypot.v3.state import V3State

log = logging.getLogger(__name__)

MIN_LOG_BEFORE_SNAPSHOT = 4 << 20  # a small keyspace is not rewritten for every few writes


class KeyspaceJournal:
    def __init__(self, prefix: Path, v3: V3State | None, v2: V2Store, *, flush_interval: float = 1.0,
                 max_bytes: int = 256 << 20, records: KeyspaceRecords | None = None) -> None:
        """`records`: the keyspace's records when something else (the keyspace owner) reads them too."""
        self.journal = Journal(prefix, 2 * max_bytes + (1 << 20))
        self.v3, self.v2 = v3, v2
        self.records = records or KeyspaceRecords(v3, v2)
        self.flush_interval = flush_interval
        self.max_bytes = max_bytes
        self.quota_full = False
        self.replayed = 0  # log records applied at start
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._stop = asyncio.Event()
        self._child: int | None = None  # pid of the process writing the next snapshot
        self._since_fork: list[bytes] = []  # records logged since that fork
        self._task: asyncio.Task[None] | None = None

    # --- start: restore, hook, first snapshot -----------------------------------------------------
    def open(self) -> None:
        """Load what the files hold into the keyspace, then journal it. JournalError: a damaged snapshot."""
        loaded = self.journal.load()
        note = loaded.note
        if loaded.snapshot is not None:
            try:
                self.records.load_snapshot(loaded.snapshot)
            except BAD_INPUT as exc:
                raise JournalError(f"keyspace snapshot {self.journal.snap_path} is damaged: {exc}") from None
            for record in loaded.log:
                try:
                    self.records.apply(record)
                except BAD_INPUT as exc:
                    note = f"log record {self.replayed + 1} is damaged ({exc})"
                    break
                self.replayed += 1
            self.records.catch_up()
        if note:
            aside = self.journal.keep_damaged_log()
            log.warning("honeypot keyspace: %s; %d log records kept, the rest left out (moved to %s)",
                        note, self.replayed, aside)
        self.records.sinks.append(self._add)
        self.records.hook()
        self.journal.write_snapshot(self._snapshot_body())
        self._check_quota()

    def _add(self, record: Record) -> None:
        data = encode(record)
        self._pending.append(data)
        self._pending_bytes += len(data)
        if not self.quota_full and self.size() > self.max_bytes:
            self._set_quota(True)  # until the next snapshot shows the state fits again

    # --- snapshots and flushes --------------------------------------------------------------------
    def size(self) -> int:
        """Bytes the state takes on disk, with what is still to be written."""
        return self.journal.snap_bytes + self.journal.log_bytes + self._pending_bytes

    def _snapshot_body(self) -> bytes:
        return orjson.dumps(self.records.snapshot_body())

    def _take(self) -> bytes:
        chunk = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        return chunk

    def _put_back(self, chunk: bytes) -> None:
        self._pending.insert(0, chunk)
        self._pending_bytes += len(chunk)

    def _wants_snapshot(self) -> bool:
        log_bytes = self.journal.log_bytes + self._pending_bytes
        return log_bytes > max(self.journal.snap_bytes, MIN_LOG_BEFORE_SNAPSHOT) or self.size() > self.max_bytes

    async def flush(self) -> None:
        """Write (and fsync) what collected since the last flush; start or finish a snapshot when due."""
        due = self._child is None and self._wants_snapshot()  # counting what is still unwritten
        chunk = self._take()
        if due:
            self._fork_snapshot()
        elif self._child is not None:
            self._since_fork.append(chunk)  # the next snapshot lacks these: its log starts with them
        if chunk:
            try:
                await asyncio.to_thread(self.journal.append, chunk)
            except OSError as exc:
                self._put_back(chunk)
                self._set_quota(True)  # a full or failing disk: refuse writes rather than lose them
                log.warning("honeypot keyspace: cannot write log %s: %s", self.journal.log_path, exc)
        if self._child is not None:
            await self._reap_snapshot(block=False)

    def _fork_snapshot(self) -> None:
        """Serialise the keyspace in a forked child (copy-on-write, as Redis's BGSAVE does), so the
        event loop does not stop for it; the child writes `<snap>.next` and exits."""
        data_path, generation = self.journal.background_path, self.journal.generation + 1
        try:
            pid = os.fork()
        except OSError as exc:
            log.warning("honeypot keyspace: cannot fork for a snapshot: %s", exc)
            return
        if pid == 0:  # the child: touches nothing but the frozen keyspace and one file
            code = 1
            try:
                with contextlib.suppress(ValueError):  # only where the loop runs in the main thread
                    signal.set_wakeup_fd(-1)  # a signal to the child must not wake the sensor's loop
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                        signal.signal(sig, signal.SIG_DFL)
                write_background_snapshot(data_path, self.journal.snapshot_bytes(generation, self._snapshot_body()))
                code = 0
            finally:
                os._exit(code)
        self._child, self._since_fork = pid, []

    async def _reap_snapshot(self, block: bool) -> None:
        assert self._child is not None
        try:
            pid, status = os.waitpid(self._child, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pid, status = self._child, -1
        if pid == 0:
            return  # still writing
        self._child = None
        since = b"".join(self._since_fork)
        self._since_fork = []
        if status != 0:
            log.warning("honeypot keyspace: the snapshot child failed (status %s); trying again later", status)
            return
        try:
            await asyncio.to_thread(self.journal.adopt_background, since)
        except OSError as exc:
            log.warning("honeypot keyspace: cannot put snapshot %s in place: %s", self.journal.snap_path, exc)
        self._check_quota()

    def _check_quota(self) -> None:
        self._set_quota(self.size() > self.max_bytes)

    def _set_quota(self, full: bool) -> None:
        self.quota_full = self.records.quota_full = full
        self.v2.quota_full = full
        if self.v3 is not None:
            for _, ns in self.v3.namespaces():
                ns.store.quota_full = ns.lessor.quota_full = full

    # --- running ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.flush_interval)
            await self.flush()

    async def close(self) -> None:
        """Stop flushing; a last snapshot so the next start has no log to replay."""
        self._stop.set()
        if self._task is not None:
            await self._task
        if self._child is not None:  # its snapshot is older than the one written now
            with contextlib.suppress(OSError):
                os.kill(self._child, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._child, 0)
            self._child = None
        try:
            self.journal.write_snapshot(self._snapshot_body())
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.journal.append(self._take())
            log.warning("honeypot keyspace: cannot write snapshot %s: %s", self.journal.snap_path, exc)
        self.journal.close()


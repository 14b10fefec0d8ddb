"""A snapshot plus an append-only log on disk, for the honeypot's keyspace (docs/honeypot.md#durable-keyspace).

Both files are a sequence of records: a 4-byte little-endian length, the CRC-32 of the payload,
the payload (JSON). The snapshot is one header record and one body record; the log starts with a
header record naming the snapshot generation it follows. A record that is cut short (kill -9 in
the middle of a write) or does not match its checksum ends the log: it and everything after it
is dropped, never trusted. A new snapshot is written beside the old one, fsynced and renamed over
it; only then a fresh log for the new generation replaces the old log, so a crash at any point
leaves one consistent pair (an old-generation log after a newer snapshot is ignored).

Framing and scanning are pure functions; `Journal` does the file work, under a lock, so the
sensor can run it in a thread while its event loop keeps appending.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

HEAD = struct.Struct("<II")  # payload length, CRC-32 of the payload
MAGIC = "etcdsec-keyspace"
VERSION = 1


class JournalError(ValueError):
    """A state file that cannot be read as one (one line, for the operator)."""


def frame(payload: bytes) -> bytes:
    return HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def encode(record: dict[str, Any]) -> bytes:
    return frame(orjson.dumps(record))


def scan(data: bytes, offset: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """(end offset, record) for each whole, intact record; stops at the first that is not."""
    while offset + HEAD.size <= len(data):
        size, crc = HEAD.unpack_from(data, offset)
        start, end = offset + HEAD.size, offset + HEAD.size + size
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            return
        try:
            record = orjson.loads(data[start:end])
        except orjson.JSONDecodeError:
            return
        if not isinstance(record, dict):
            return
        yield end, record
        offset = end


def _generation_of(log: bytes) -> Any:
    first = next(scan(log), None)
    return first[1].get("generation") if first is not None else None


@dataclass
class Loaded:
    generation: int
    snapshot: dict[str, Any] | None  # None: no snapshot yet (a first start)
    log: list[dict[str, Any]]  # the log's records after its header, in order
    dropped_bytes: int  # a torn or damaged tail of the log, left out
    note: str  # why log records were left out ("" when none were)


class Journal:
    """The two files of one keyspace: `<prefix>.snap` and `<prefix>.log`."""

    def __init__(self, prefix: Path, max_file_bytes: int) -> None:
        self.snap_path = prefix.with_name(prefix.name + ".snap")
        self.log_path = prefix.with_name(prefix.name + ".log")
        self.max_file_bytes = max_file_bytes  # a snapshot bigger than this is refused as damaged
        self.generation = 0
        self.snap_bytes = 0
        self.log_bytes = 0
        self._log_fd: int | None = None
        self._lock = threading.Lock()

    # --- reading ----------------------------------------------------------------------------------
    def load(self) -> Loaded:
        snapshot = self._read_snapshot()
        generation = self.generation = snapshot["generation"] if snapshot is not None else 0
        log: list[dict[str, Any]] = []
        dropped, note = 0, ""
        data = self._read(self.log_path, self.max_file_bytes * 2, "log")
        pending = self._read(self.log_path.with_name(self.log_path.name + ".next"), self.max_file_bytes * 2, "log")
        if pending and snapshot is not None and _generation_of(pending) == generation:
            data = pending  # a crash between the snapshot's rename and the log's: the new log is complete
        if data:
            records = scan(data)
            first = next(records, None)
            if first is None or first[1].get("magic") != MAGIC:
                dropped, note = len(data), "the log has no valid header"
            elif first[1].get("generation") != generation or snapshot is None:
                # the log of an older snapshot (a crash between the two renames): already in it
                dropped, note = len(data), "the log belongs to another snapshot"
            else:
                end = first[0]
                for after, record in records:
                    log.append(record)
                    end = after
                dropped = len(data) - end
                note = "a torn or damaged tail" if dropped else ""
        return Loaded(generation, snapshot["body"] if snapshot is not None else None, log, dropped, note)

    def _read_snapshot(self) -> dict[str, Any] | None:
        data = self._read(self.snap_path, self.max_file_bytes, "snapshot")
        if data is None:
            return None
        records = list(scan(data))
        if len(records) != 2 or records[-1][0] != len(data):
            raise JournalError(f"keyspace snapshot {self.snap_path} is damaged (a bad checksum or a cut)")
        head, body = records[0][1], records[1][1]
        if head.get("magic") != MAGIC or head.get("version") != VERSION:
            raise JournalError(f"{self.snap_path} is not an etcdsec keyspace snapshot of version {VERSION}")
        generation = head.get("generation")
        if not isinstance(generation, int) or isinstance(generation, bool) or generation < 1:
            raise JournalError(f"keyspace snapshot {self.snap_path}: bad generation {generation!r}")
        self.snap_bytes = len(data)
        return {"generation": generation, "body": body}

    @staticmethod
    def _read(path: Path, cap: int, what: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size > cap:
                    raise JournalError(f"keyspace {what} {path} is larger than the state cap ({cap} bytes)")
                return f.read(cap + 1)
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise JournalError(f"keyspace {what} {path} is a directory") from None
        except OSError as exc:
            raise JournalError(f"cannot read keyspace {what} {path}: {exc.strerror or exc}") from None

    def keep_damaged_log(self) -> Path | None:
        """Move a log whose tail was dropped aside (what an attacker wrote is evidence), once."""
        if not self.log_path.exists():
            return None
        aside = self.log_path.with_name(self.log_path.name + ".damaged")
        os.replace(self.log_path, aside)
        return aside

    # --- writing (in a worker thread) -------------------------------------------------------------
    def write_snapshot(self, body: bytes) -> None:
        """A new generation: `body` is the snapshot's JSON payload. Then an empty log for it."""
        with self._lock:
            _write_file(self.background_path, self.snapshot_bytes(self.generation + 1, body))
            self._switch(b"")

    def snapshot_bytes(self, generation: int, body: bytes) -> bytes:
        return encode({"magic": MAGIC, "version": VERSION, "generation": generation}) + frame(body)

    @property
    def background_path(self) -> Path:
        """Where a new snapshot is written (by a forked child, or in place) before it is renamed."""
        return self.snap_path.with_name(self.snap_path.name + ".next")

    def adopt_background(self, since: bytes) -> None:
        """A child wrote the next generation's snapshot: make it current, with the records logged
        since the fork (already in the old log) as the new log's first records."""
        with self._lock:
            self._switch(since)

    def _switch(self, since: bytes) -> None:
        generation = self.generation + 1
        next_log = self.log_path.with_name(self.log_path.name + ".next")
        _write_file(next_log, encode({"magic": MAGIC, "generation": generation}) + since)
        os.replace(self.background_path, self.snap_path)
        os.replace(next_log, self.log_path)  # a crash just before: load() finds the log in .next
        _sync_dir(self.snap_path.parent)
        self._close_log()
        self._log_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self.generation, self.snap_bytes = generation, os.stat(self.snap_path).st_size
        self.log_bytes = os.fstat(self._log_fd).st_size

    def append(self, chunk: bytes) -> None:
        """Records framed by `encode`, written and fsynced (the flush interval's group commit)."""
        if not chunk:
            return
        with self._lock:
            if self._log_fd is None:
                raise OSError("the keyspace log is not open")
            view = memoryview(chunk)
            while view:
                view = view[os.write(self._log_fd, view):]
            os.fsync(self._log_fd)
            self.log_bytes += len(chunk)

    def close(self) -> None:
        with self._lock:
            self._close_log()

    def _close_log(self) -> None:
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None


def _write_file(path: Path, data: bytes) -> None:
    """Write and fsync (the caller renames it into place: the old file or the new, never half)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_background_snapshot(path: Path, data: bytes) -> None:
    """In a forked child: the next snapshot, written and fsynced, not yet in place."""
    _write_file(path, data)


def _sync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

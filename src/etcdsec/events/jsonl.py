"""The JSON-lines event file: one compact object per line, whole lines per write, size rotation.

Loss bound on a crash (kill -9): with `flush_interval=0` (the default) every event is handed to
the kernel with `write()` before the response that caused it is sent, so a killed sensor loses
no answered request. A server that answers a batch at once (the gRPC shell: every call of one read)
may `hold()` the writer across the batch and `release()` it before it writes the answers: the
batch's lines then go in one `write()`, still before any answer leaves. With `flush_interval=t`
events are batched and at most the last `t` seconds (or 64 KiB) are lost. Power loss can also lose
what the kernel had not yet written to disk.

Several worker processes may append to one file (`shared=True`): O_APPEND keeps each line whole,
and before each write a worker checks that the path still names the file it holds and how big that
file really is; rotation happens under an flock on the directory, so one worker rotates and the
others follow it to the new file.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson

BATCH_BYTES = 64 << 10


def event_line(event: dict[str, Any]) -> bytes:
    """One compact UTF-8 JSON line. orjson: 10x faster than json.dumps, same bytes for our types;
    anything it cannot encode (a lone surrogate, an unknown object) falls back to json's text."""
    try:
        return orjson.dumps(event, default=str, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        import json

        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str)
        return (text + "\n").encode("utf-8", "backslashreplace")


class JsonlWriter:
    def __init__(self, path: Path, max_bytes: int = 100 << 20, backups: int = 5,
                 flush_interval: float = 0.0, shared: bool = False) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.flush_interval = flush_interval
        self.shared = shared
        self.lines = 0
        self.rotations = 0
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._held = 0  # hold() depth: lines wait in _buf until the last release()
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self._ino = 0
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        # O_APPEND: a restart never truncates, and each write lands whole at the end.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._ino = os.fstat(fd).st_ino
        return fd

    def _reopen_fd(self) -> None:
        os.close(self._fd)
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _current_size(self) -> int:
        """Shared file: the size of the file the path names now, after following another worker's rotation."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:  # moved away by another worker or logrotate: start the new file
            self._reopen_fd()
            return self._size
        if st.st_ino != self._ino:
            self._reopen_fd()
            return self._size
        return st.st_size

    def _rotate_shared(self, size: int) -> None:
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX)  # one rotation at a time across workers
            current = self._current_size()  # another worker may have rotated while we waited
            if current > 0 and current + size > self.max_bytes:
                self._rotate()
        finally:
            os.close(dir_fd)  # releases the lock

    def __call__(self, event: dict[str, Any]) -> None:
        try:
            line = orjson.dumps(event, default=str, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:
            line = event_line(event)
        lock = self._lock
        lock.acquire()  # not `with`: its two special-method look-ups cost ~1k instructions an event
        try:
            self.lines += 1
            if self.flush_interval <= 0 and not self._held:
                self._write(line)
                return
            self._buf.append(line)
            self._buf_bytes += len(line)
            if self._buf_bytes >= BATCH_BYTES or (
                    self.flush_interval > 0 and time.monotonic() - self._last_flush >= self.flush_interval):
                self._flush_locked()
        finally:
            lock.release()

    def hold(self) -> None:
        """Keep lines from here until the matching `release()` (with flush_interval=0; nested holds count).
        Holds come from one thread (a sensor's event loop), so the count takes no lock."""
        self._held += 1

    def release(self) -> None:
        """End a hold: the lines kept go to the kernel now, in one write(), before the caller answers."""
        held = self._held = max(0, self._held - 1)
        if held or not self._buf or self.flush_interval > 0:  # the common read holds one line or none
            return
        lock = self._lock
        lock.acquire()
        try:
            self._flush_locked()
        finally:
            lock.release()

    def _write(self, data: bytes) -> None:
        size = len(data)
        if self.shared:
            current = self._current_size()
            if self.max_bytes and current > 0 and current + size > self.max_bytes:
                self._rotate_shared(size)
        elif self.max_bytes and self._size + size > self.max_bytes and self._size > 0:
            self._rotate()
        written = os.write(self._fd, data)
        if written < size:  # a short write (disk full, signal): the rest, never a split line
            view = memoryview(data)[written:]
            while view:
                view = view[os.write(self._fd, view):]
        self._size += size

    def _flush_locked(self) -> None:
        """One write() per run of lines that fits before the next rotation; never a partial line."""
        if len(self._buf) == 1:  # a held read with one call: no join, no segments
            self._write(self._buf.pop())
            self._buf_bytes = 0
            self._last_flush = time.monotonic()
            return
        segment: list[bytes] = []
        size = 0
        for line in self._buf:
            if segment and self.max_bytes and self._size + size + len(line) > self.max_bytes:
                self._write(b"".join(segment))
                segment, size = [], 0
            segment.append(line)
            size += len(line)
        if segment:
            self._write(b"".join(segment))
        self._buf.clear()
        self._buf_bytes = 0
        self._last_flush = time.monotonic()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _rotate(self) -> None:
        os.close(self._fd)
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            os.truncate(self.path, 0)
        self._fd = self._open()
        self._size = 0
        self.rotations += 1

    def reopen(self) -> None:
        """After an external logrotate moved the file (SIGHUP)."""
        with self._lock:
            self._flush_locked()
            self._reopen_fd()

    def close(self) -> None:
        with self._lock:
            self._flush_locked()
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

"""Non-blocking TCP connects driven by event-loop callbacks, without a task per address.

On loopback and on most closed ports the kernel answers `connect()` at once, so the common case
costs one socket, one syscall and no scheduling; only connects still in progress get a writer
callback and a timeout. Profiling showed the task-per-address version spending most of its time in
asyncio bookkeeping, not in the kernel.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from collections.abc import Callable

# Local resource trouble: not an answer from the target, so wait and try the same pair again.
LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.EADDRNOTAVAIL, errno.ENOBUFS, errno.EAGAIN})
_LINGER_RESET = struct.pack("ii", 1, 0)
MAX_LOCAL_RETRIES = 50

# Called with True (open), False (closed, refused, unreachable, timed out) or None (no local resources).
Done = Callable[[bool | None], None]


class Connector:
    def __init__(self, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        self._pending: dict[int, tuple[socket.socket, asyncio.TimerHandle, Done]] = {}

    def start(self, ip: str, port: int, done: Done) -> None:
        self._attempt(ip, port, done, 0)

    def _retry(self, ip: str, port: int, done: Done, attempt: int) -> None:
        if attempt >= MAX_LOCAL_RETRIES:
            done(None)
        else:
            self.loop.call_later(min(1.0, 0.01 * (attempt + 1)), self._attempt, ip, port, done, attempt + 1)

    def _attempt(self, ip: str, port: int, done: Done, attempt: int) -> None:
        try:
            sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            if exc.errno in LOCAL_ERRNOS:
                self._retry(ip, port, done, attempt)
                return
            raise
        sock.setblocking(False)
        err = sock.connect_ex((ip, port))
        if err == 0:
            self._finish(sock, done, True)
        elif err == errno.EINPROGRESS:
            fd = sock.fileno()
            timer = self.loop.call_later(self.timeout, self._timed_out, fd)
            self._pending[fd] = (sock, timer, done)
            self.loop.add_writer(fd, self._writable, fd)
        elif err in LOCAL_ERRNOS:
            sock.close()
            self._retry(ip, port, done, attempt)
        else:  # refused, unreachable, ...
            sock.close()
            done(False)

    def _writable(self, fd: int) -> None:
        sock, timer, done = self._pending.pop(fd)
        self.loop.remove_writer(fd)
        timer.cancel()
        self._finish(sock, done, sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)

    def _timed_out(self, fd: int) -> None:
        sock, _, done = self._pending.pop(fd)
        self.loop.remove_writer(fd)
        sock.close()
        done(False)

    @staticmethod
    def _finish(sock: socket.socket, done: Done, is_open: bool) -> None:
        if is_open:  # close with a reset: no TIME_WAIT pile-up on our side, nothing sent to the service
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.close()
        done(is_open)

    def close(self) -> None:
        """Abandon connects in progress (their callbacks are never called)."""
        for fd, (sock, timer, _) in list(self._pending.items()):
            self.loop.remove_writer(fd)
            timer.cancel()
            sock.close()
        self._pending.clear()

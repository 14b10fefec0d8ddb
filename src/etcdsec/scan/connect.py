"""Non-blocking TCP connects driven by one epoll set, without a task or a timer per address.

Profiling the sweep showed the time going to asyncio bookkeeping (a task, a timer and a selector
registration per address), not to the kernel. Here each connect costs a socket, `connect_ex`, one
`epoll.register` and a deque entry; the epoll fd is a single reader in the asyncio loop, and timeouts
are a FIFO (every connect has the same timeout) checked a few times a second.
"""

from __future__ import annotations

import _socket
import asyncio
import collections
import errno
import select
import socket
import struct
import time
from collections.abc import Callable

# Local resource trouble: not an answer from the target, so wait and try the same pair again.
LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.EADDRNOTAVAIL, errno.ENOBUFS, errno.EAGAIN})
_LINGER_RESET = struct.pack("ii", 1, 0)
MAX_LOCAL_RETRIES = 50
_TIMEOUT_CHECK = 0.05  # seconds between looks at the timeout queue
_AF_INET, _AF_INET6 = socket.AF_INET, socket.AF_INET6
_HAS_NONBLOCK = hasattr(socket, "SOCK_NONBLOCK")
_STREAM_NONBLOCK = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)

# Called with True (open), False (closed, refused, unreachable, timed out) or None (no local resources).
Done = Callable[[bool | None], None]


class Connector:
    def __init__(self, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        self._epoll = select.epoll()
        self._pending: dict[int, tuple[_socket.socket, Done]] = {}
        self._deadlines: collections.deque[tuple[float, int, _socket.socket]] = collections.deque()
        self.loop.add_reader(self._epoll.fileno(), self._ready)
        self._ticker = self.loop.call_later(_TIMEOUT_CHECK, self._expire)

    def start(self, ip: str, port: int, done: Done) -> None:
        self._attempt(ip, port, done, 0)

    def _retry(self, ip: str, port: int, done: Done, attempt: int) -> None:
        if attempt >= MAX_LOCAL_RETRIES:
            done(None)
        else:
            self.loop.call_later(min(1.0, 0.01 * (attempt + 1)), self._attempt, ip, port, done, attempt + 1)

    def _attempt(self, ip: str, port: int, done: Done, attempt: int) -> None:
        try:
            # The C-level socket with SOCK_NONBLOCK: no Python __init__, no fcntl call per address.
            sock = _socket.socket(_AF_INET6 if ":" in ip else _AF_INET, _STREAM_NONBLOCK)
        except OSError as exc:
            if exc.errno in LOCAL_ERRNOS:
                self._retry(ip, port, done, attempt)
                return
            raise
        if not _HAS_NONBLOCK:
            sock.setblocking(False)
        err = sock.connect_ex((ip, port))
        if err == 0:
            self._finish(sock, done, True)
        elif err == errno.EINPROGRESS:
            fd = sock.fileno()
            self._pending[fd] = (sock, done)
            self._epoll.register(fd, select.EPOLLOUT | select.EPOLLERR)
            self._deadlines.append((time.monotonic() + self.timeout, fd, sock))
        elif err in LOCAL_ERRNOS:
            sock.close()
            self._retry(ip, port, done, attempt)
        else:  # refused, unreachable, ...
            sock.close()
            done(False)

    def _ready(self) -> None:
        for fd, _events in self._epoll.poll(0, 4096):
            entry = self._pending.pop(fd, None)
            if entry is None:
                continue
            sock, done = entry
            self._finish(sock, done, sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, fd, sock = self._deadlines.popleft()
            entry = self._pending.get(fd)
            if entry is not None and entry[0] is sock:  # still connecting (fds are reused once closed)
                del self._pending[fd]
                sock.close()  # closing also drops it from the epoll set
                entry[1](False)
        self._ticker = self.loop.call_later(_TIMEOUT_CHECK, self._expire)

    @staticmethod
    def _finish(sock: _socket.socket, done: Done, is_open: bool) -> None:
        if is_open:  # close with a reset: no TIME_WAIT pile-up on our side, nothing sent to the service
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.close()
        done(is_open)

    def close(self) -> None:
        """Abandon connects in progress (their callbacks are never called)."""
        self._ticker.cancel()
        self.loop.remove_reader(self._epoll.fileno())
        for sock, _ in self._pending.values():
            sock.close()
        self._pending.clear()
        self._deadlines.clear()
        self._epoll.close()

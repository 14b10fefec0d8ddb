"""Plain TCP listeners on chosen loopback addresses that count the connections they accept."""

from __future__ import annotations

import selectors
import socket
import threading
from collections import Counter


class CountingListeners:
    def __init__(self, addresses: list[tuple[str, int]]) -> None:
        self.accepted: Counter[tuple[str, int]] = Counter()
        self._sel = selectors.DefaultSelector()
        self._socks = []
        for ip, port in addresses:
            s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ip, port))
            s.listen(512)
            s.setblocking(False)
            self._sel.register(s, selectors.EVENT_READ, (ip, port))
            self._socks.append(s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(0.1):
                try:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                except OSError:
                    continue
                self.accepted[key.data] += 1
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in self._socks:
            s.close()

    def __enter__(self) -> CountingListeners:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""What rotation never takes: each source's first sight and every honeytoken use.

A flood rotates the JSON-lines file's history away within minutes (233 MB of events a minute was
measured, 600 MB of files with the defaults), and the start of an attack goes with it. This output
copies into a file of its own that is never rotated (`events.jsonl` -> `events.kept.jsonl`) the
first event of each kind from each source (its first connection, request, gRPC call, WebSocket
message, malformed input, TLS handshake) and every `honeytoken.used`. Bounded: at most `max_bytes`
(then lines are counted in `dropped`; the main file still has them) and `MAX_SOURCES` remembered
per kind, the first seen forgotten first. It sees every event: one dict and one set look-up each.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from etcdsec.events.ids import EVENT_PREFIX
from etcdsec.events.jsonl import event_line

FIRST_OF = frozenset(EVENT_PREFIX + k for k in ("session.connect", "http.request", "grpc.request",
                                                  "websocket.message", "malformed", "tls.handshake"))
EVERY = frozenset({EVENT_PREFIX + "honeytoken.used"})
MAX_SOURCES = 65_536  # sources remembered per kind (oldest first seen forgotten first): ~30 MB at most
MAX_BYTES = 32 << 20


def kept_path(events: Path) -> Path:
    """`events.jsonl` -> `events.kept.jsonl`; `events` -> `events.kept`."""
    return events.with_name(f"{events.stem}.kept{events.suffix}" if events.suffix else f"{events.name}.kept")


class KeptEvents:
    """An event output: appends what must outlive rotation to `path` (O_APPEND: workers may share it)."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.seen: dict[str, dict[str, None]] = {kind: {} for kind in FIRST_OF}  # kind -> sources, in order
        self.kept = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def __call__(self, event: dict[str, Any]) -> None:
        seen = self.seen.get(event["eventid"])
        if seen is None:
            if event["eventid"] not in EVERY:
                return
        else:
            src = event.get("src_ip")
            if not src or src in seen:
                return
            seen[src] = None
            if len(seen) > MAX_SOURCES:
                del seen[next(iter(seen))]
        line = event_line(event)
        with self._lock:
            if os.fstat(self._fd).st_size + len(line) > self.max_bytes:  # fstat: other workers append too
                self.dropped += 1
                return
            os.write(self._fd, line)
            self.kept += 1

    def reopen(self) -> None:
        with self._lock:
            os.close(self._fd)
            self._fd = self._open()

    def close(self) -> None:
        with self._lock:
            os.fsync(self._fd)
            os.close(self._fd)

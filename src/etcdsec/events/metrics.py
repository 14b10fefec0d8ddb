"""Prometheus metrics of a long-running etcdsec process (sensor, monitor), served on their own
loopback port over h11. What the figures are is the emitter's business: it hands a `body()` that
renders them, usually with `prometheus_text`."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import h11

# One metric family: name, kind ("counter"/"gauge"), help text, samples of (label text, value).
Family = tuple[str, str, str, list[tuple[str, float]]]


class EventCounter:
    """An event output that counts events by id (the ids are a fixed set from our own code)."""

    def __init__(self) -> None:
        self.by_id: Counter[str] = Counter()

    def __call__(self, event: dict[str, Any]) -> None:
        self.by_id[event["eventid"]] += 1


def label_value(text: str) -> str:
    """A label value as the text format wants it: backslash, quote and newline escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(families: list[Family]) -> bytes:
    lines: list[str] = []
    for name, kind, help_text, samples in families:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        # Integers whole: `:g` would print a counter past 999,999 as 1e+06.
        lines.extend(f"{name}{labels} {value if isinstance(value, int) else format(value, 'g')}"
                     for labels, value in samples)
    return ("\n".join(lines) + "\n").encode()


def answer(conn: h11.Connection, target: bytes, body: Callable[[], bytes]) -> bytes:
    """The whole response to one request on the metrics port (GET /metrics, else 404)."""
    ok = target.split(b"?")[0] == b"/metrics"
    data = body() if ok else b"404 page not found\n"
    ctype = b"text/plain; version=0.0.4; charset=utf-8" if ok else b"text/plain; charset=utf-8"
    return conn.send(h11.Response(status_code=200 if ok else 404, headers=[
        (b"Content-Type", ctype), (b"Content-Length", str(len(data)).encode()), (b"Connection", b"close")])) \
        + conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage())


class MetricsServer:
    """GET /metrics answers `body()`; one request per connection, 8 KiB and 10 s per read at most."""

    def __init__(self, body: Callable[[], bytes]) -> None:
        self.body = body
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, host, port)
        return self.server.sockets[0].getsockname()[:2]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=8192)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await asyncio.wait_for(reader.read(8192), 10)
                    conn.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(event, h11.Request):
                    writer.write(answer(conn, event.target, self.body))
                    await writer.drain()
                    return
                if isinstance(event, h11.ConnectionClosed):
                    return
        except (h11.ProtocolError, TimeoutError, ConnectionError):
            return
        finally:
            writer.close()

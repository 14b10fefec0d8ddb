"""The sensor's own Prometheus metrics, served on a separate loopback port (never the decoy port)."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import h11

if TYPE_CHECKING:
    from etcdsec.honeypot.sensor import Sensor


class EventCounter:
    """An event output that counts events by id (the ids are a fixed set from our own code)."""

    def __init__(self) -> None:
        self.by_id: Counter[str] = Counter()

    def __call__(self, event: dict[str, Any]) -> None:
        self.by_id[event["eventid"]] += 1


def snapshot(sensor: Sensor, counter: EventCounter) -> dict[str, Any]:
    """This process's figures as plain JSON values (a worker sends them to its supervisor)."""
    snap: dict[str, Any] = {
        "events": dict(counter.by_id), "sessions": sensor.client.sessions, "active": sensor.client.active,
        "throttled": sensor.guard.throttled, "refused": sensor.guard.refused,
        "output_errors": sensor.events.output_errors,
        "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if sensor.writer is not None:
        snap["rotations"] = sensor.writer.rotations
    if sensor.store_writer is not None:
        snap["store_written"], snap["store_dropped"] = sensor.store_writer.written, sensor.store_writer.dropped
    if sensor.alerts is not None:
        snap["alerts_sent"], snap["alerts_suppressed"] = sensor.alerts.sent, sensor.alerts.suppressed
    return snap


def merge(snaps: list[dict[str, Any]]) -> dict[str, Any]:
    """Several workers' figures as one sensor's: counts and peak memory add up."""
    total: dict[str, Any] = {"events": Counter()}
    for snap in snaps:
        for key, value in snap.items():
            if key == "events":
                total["events"].update(value)
            else:
                total[key] = total.get(key, 0) + value
    total["events"] = dict(total["events"])
    return total


def render(snap: dict[str, Any], workers: int = 1) -> bytes:
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        # Integers whole: `:g` would print a counter past 999,999 as 1e+06.
        lines.extend(f"{name}{labels} {value if isinstance(value, int) else format(value, 'g')}"
                     for labels, value in samples)

    def one(key: str, name: str, kind: str, help_text: str) -> None:
        if key in snap:
            metric(name, kind, help_text, [("", snap[key])])

    metric("etcdsec_honeypot_events_total", "counter", "Events emitted, by event id.",
           [(f'{{eventid="{k}"}}', v) for k, v in sorted(snap["events"].items())])
    one("sessions", "etcdsec_honeypot_sessions_total", "counter", "Connections accepted.")
    one("active", "etcdsec_honeypot_sessions_active", "gauge", "Connections open now.")
    one("throttled", "etcdsec_honeypot_throttled_total", "counter", "Requests delayed by the per-source rate limit.")
    one("refused", "etcdsec_honeypot_refused_total", "counter", "Connections refused by the connection caps.")
    one("output_errors", "etcdsec_honeypot_event_output_errors_total", "counter", "Event outputs that raised.")
    one("rotations", "etcdsec_honeypot_event_file_rotations_total", "counter", "Event file rotations.")
    one("store_written", "etcdsec_honeypot_store_written_total", "counter", "Events written to the database.")
    one("store_dropped", "etcdsec_honeypot_store_dropped_total", "counter", "Events not stored (queue full).")
    one("alerts_sent", "etcdsec_honeypot_alerts_sent_total", "counter", "Alerts delivered.")
    one("alerts_suppressed", "etcdsec_honeypot_alerts_suppressed_total", "counter",
        "Alerts held back by the per-source limit.")
    one("max_rss", "etcdsec_honeypot_max_resident_memory_bytes", "gauge",
        "Peak resident memory of the sensor (summed over its workers).")
    metric("etcdsec_honeypot_workers", "gauge", "Sensor processes answering.", [("", workers)])
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
    def __init__(self, sensor: Sensor, counter: EventCounter) -> None:
        self.sensor, self.counter = sensor, counter
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
                    writer.write(answer(conn, event.target,
                                        lambda: render(snapshot(self.sensor, self.counter))))
                    await writer.drain()
                    return
                if isinstance(event, h11.ConnectionClosed):
                    return
        except (h11.ProtocolError, TimeoutError, ConnectionError):
            return
        finally:
            writer.close()

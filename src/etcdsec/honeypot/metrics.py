"""The sensor's own Prometheus metrics, served on a separate loopback port (never the decoy port)."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections import Counter
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


def exposition(sensor: Sensor, counter: EventCounter) -> bytes:
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    metric("etcdsec_honeypot_events_total", "counter", "Events emitted, by event id.",
           [(f'{{eventid="{k}"}}', v) for k, v in sorted(counter.by_id.items())])
    listener = sensor.client
    metric("etcdsec_honeypot_sessions_total", "counter", "Connections accepted.", [("", listener.sessions)])
    metric("etcdsec_honeypot_sessions_active", "gauge", "Connections open now.", [("", listener.active)])
    metric("etcdsec_honeypot_throttled_total", "counter", "Requests delayed by the per-source rate limit.",
           [("", sensor.guard.throttled)])
    metric("etcdsec_honeypot_refused_total", "counter", "Connections refused by the connection caps.",
           [("", sensor.guard.refused)])
    metric("etcdsec_honeypot_event_output_errors_total", "counter", "Event outputs that raised.",
           [("", sensor.events.output_errors)])
    if sensor.writer is not None:
        metric("etcdsec_honeypot_event_file_rotations_total", "counter", "Event file rotations.",
               [("", sensor.writer.rotations)])
    if sensor.store_writer is not None:
        metric("etcdsec_honeypot_store_written_total", "counter", "Events written to the database.",
               [("", sensor.store_writer.written)])
        metric("etcdsec_honeypot_store_dropped_total", "counter", "Events not stored (queue full).",
               [("", sensor.store_writer.dropped)])
    if sensor.alerts is not None:
        metric("etcdsec_honeypot_alerts_sent_total", "counter", "Alerts delivered.", [("", sensor.alerts.sent)])
        metric("etcdsec_honeypot_alerts_suppressed_total", "counter", "Alerts held back by the per-source limit.",
               [("", sensor.alerts.suppressed)])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    metric("etcdsec_honeypot_max_resident_memory_bytes", "gauge", "Peak resident memory of the sensor.",
           [("", rss)])
    return ("\n".join(lines) + "\n").encode()


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
                    ok = event.target.split(b"?")[0] == b"/metrics"
                    body = exposition(self.sensor, self.counter) if ok else b"404 page not found\n"
                    ctype = b"text/plain; version=0.0.4; charset=utf-8" if ok else b"text/plain; charset=utf-8"
                    writer.write(conn.send(h11.Response(status_code=200 if ok else 404, headers=[
                        (b"Content-Type", ctype), (b"Content-Length", str(len(body)).encode()),
                        (b"Connection", b"close")])))
                    writer.write(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                    await writer.drain()
                    return
                if isinstance(event, h11.ConnectionClosed):
                    return
        except (h11.ProtocolError, TimeoutError, ConnectionError):
            return
        finally:
            writer.close()

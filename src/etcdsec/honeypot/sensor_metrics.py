"""The sensor's figures as Prometheus metrics (served by `etcdsec.events.metrics`, summed over workers)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from etcdsec.events.metrics import Family, label_value, prometheus_text


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


_ONE = (  # snapshot key, metric name, kind, help
    ("sessions", "etcdsec_honeypot_sessions_total", "counter", "Connections accepted."),
    ("active", "etcdsec_honeypot_sessions_active", "gauge", "Connections open now."),
    ("throttled", "etcdsec_honeypot_throttled_total", "counter", "Requests delayed by the per-source rate limit."),
    ("refused", "etcdsec_honeypot_refused_total", "counter", "Connections refused by the connection caps."),
    ("output_errors", "etcdsec_honeypot_event_output_errors_total", "counter", "Event outputs that raised."),
    ("rotations", "etcdsec_honeypot_event_file_rotations_total", "counter", "Event file rotations."),
    ("store_written", "etcdsec_honeypot_store_written_total", "counter", "Events written to the database."),
    ("store_dropped", "etcdsec_honeypot_store_dropped_total", "counter", "Events not stored (queue full)."),
    ("alerts_sent", "etcdsec_honeypot_alerts_sent_total", "counter", "Alerts delivered."),
    ("alerts_suppressed", "etcdsec_honeypot_alerts_suppressed_total", "counter",
     "Alerts held back by the per-source limit."),
    ("max_rss", "etcdsec_honeypot_max_resident_memory_bytes", "gauge",
     "Peak resident memory of the sensor (summed over its workers)."),
)


def render(snap: dict[str, Any], workers: int = 1) -> bytes:
    families: list[Family] = [("etcdsec_honeypot_events_total", "counter", "Events emitted, by event id.",
                               [(f'{{eventid="{label_value(k)}"}}', v) for k, v in sorted(snap["events"].items())])]
    families.extend((name, kind, help_text, [("", snap[key])]) for key, name, kind, help_text in _ONE if key in snap)
    families.append(("etcdsec_honeypot_workers", "gauge", "Sensor processes answering.", [("", workers)]))
    return prometheus_text(families)

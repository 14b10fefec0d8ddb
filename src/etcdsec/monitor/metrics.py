"""The monitor's Prometheus figures: observations, changes, and the current state of each target."""

from __future__ import annotations

from collections.abc import Mapping, Sized
from typing import Any, Protocol

from etcdsec.events.metrics import EventCounter, Family, label_value, prometheus_text


class MonitorFigures(Protocol):
    """What the figures are read from (the exposure monitor); a protocol, so the arrow runs one way."""

    current: Mapping[str, Any]
    observations: int
    changes: int
    counter: EventCounter
    targets: Sized
    emitter: Any
    errors: int
    alertmanager: Any


def render(m: MonitorFigures) -> bytes:
    current = sorted(m.current.items())

    def per_target(value: object) -> list[tuple[str, float]]:
        return [(f'{{target="{label_value(t)}"}}', int(bool(getattr(o, str(value))))) for t, o in current]

    families: list[Family] = [
        ("etcdsec_monitor_observations_total", "counter", "Probes of watched targets.", [("", m.observations)]),
        ("etcdsec_monitor_changes_total", "counter", "Security-relevant changes reported.", [("", m.changes)]),
        ("etcdsec_monitor_events_total", "counter", "Events emitted, by event id.",
         [(f'{{eventid="{label_value(k)}"}}', v) for k, v in sorted(m.counter.by_id.items())]),
        ("etcdsec_monitor_targets", "gauge", "Targets watched.", [("", len(m.targets))]),
        ("etcdsec_monitor_target_reachable", "gauge", "1 when the target answered (or is not yet counted down).",
         per_target("reachable")),
        ("etcdsec_monitor_target_exposed", "gauge", "1 when the target's current verdict is exposed.",
         per_target("exposed")),
        ("etcdsec_monitor_target_severity", "gauge", "The current verdict's severity: 0 none .. 5 critical.",
         [(f'{{target="{label_value(t)}"}}', o.rank) for t, o in current]),
        ("etcdsec_monitor_event_output_errors_total", "counter", "Event outputs that raised.",
         [("", m.emitter.output_errors)]),
        ("etcdsec_monitor_errors_total", "counter", "Observations lost to a bug (never expected).", [("", m.errors)]),
    ]
    if m.alertmanager is not None:
        families.append(("etcdsec_monitor_alertmanager_alerts_sent_total", "counter",
                         "Alerts posted to Alertmanager.", [("", m.alertmanager.sent)]))
        families.append(("etcdsec_monitor_alertmanager_post_failures_total", "counter",
                         "Posts to Alertmanager that failed (retried).", [("", m.alertmanager.failed)]))
    return prometheus_text(families)

"""The report's monitor section: exposure changes per target over time, and triage cards of
anomalous connections, from `etcdsec monitor` events (in the events table or `--events` files).

Only the latest events are read (bounded), each field is checked for type and cut to size: the
events may come from a file anyone could have written.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from etcdsec.model import Severity
from etcdsec.store.schema import monitor_events as mon  # the one import of the monitor's table in report/

MONITOR_PREFIX = "etcdsec.monitor."
EXPOSURE = "etcdsec.monitor.exposure.changed"
ANOMALY = "etcdsec.monitor.connection.anomalous"
MAX_CHANGES = 2000  # the latest exposure changes read
MAX_TARGETS = 50  # timelines drawn, the targets with the most recent change first
MAX_CARDS = 100
TEXT = 300
LIST = 20
CARD_TEXT = ("src_ip", "dst_ip", "role", "first_seen", "last_seen", "org", "exposure", "severity")
CARD_INT = ("src_port", "dst_port", "count")


def monitor_summary(engine: Engine) -> dict[str, Any] | None:
    """None when there is no events table or no monitor event in it."""
    try:
        if not inspect(engine).has_table(mon.name):
            return None
        with engine.connect() as conn:
            counts = dict(conn.execute(select(mon.c.eventid, func.count()).where(mon.c.eventid.in_((EXPOSURE, ANOMALY)))
                                       .group_by(mon.c.eventid)).all())
            if not counts:
                return None
            changes = conn.execute(select(mon.c.timestamp, mon.c.data).where(mon.c.eventid == EXPOSURE)
                                   .order_by(mon.c.timestamp.desc(), mon.c.id.desc()).limit(MAX_CHANGES)).all()
            cards = conn.execute(select(mon.c.timestamp, mon.c.data).where(mon.c.eventid == ANOMALY)
                                 .order_by(mon.c.timestamp.desc(), mon.c.id.desc()).limit(MAX_CARDS)).all()
    except SQLAlchemyError:
        return None
    return {"exposure_changes": counts.get(EXPOSURE, 0), "targets": _timelines(changes),
            "anomalies": counts.get(ANOMALY, 0), "cards": [c for c in (_card(t, d) for t, d in cards) if c]}


def _timelines(rows: list[Any]) -> list[dict[str, Any]]:
    by_target: dict[str, list[dict[str, Any]]] = {}
    for timestamp, data in rows:  # newest first
        event = _object(data)
        target = _text(event.get("target"))
        if target is None:
            continue
        if target not in by_target and len(by_target) >= MAX_TARGETS:
            continue
        by_target.setdefault(target, []).append({
            "timestamp": timestamp, "before": _state(event.get("before")), "after": _state(event.get("after")),
            "added": _texts(event.get("added")), "removed": _texts(event.get("removed")),
        })
    return [{"target": t, "changes": list(reversed(changes))} for t, changes in by_target.items()]


def _state(raw: Any) -> dict[str, Any]:
    raw = raw if isinstance(raw, dict) else {}
    severity = raw.get("severity")
    if not (isinstance(severity, str) and severity in Severity.__members__):
        severity = "none"
    return {"reachable": raw.get("reachable") is True, "exposed": raw.get("exposed") is True,
            "severity": severity, "findings": _texts(raw.get("findings"))}


def _card(timestamp: str, data: str) -> dict[str, Any] | None:
    card = _object(data).get("card")
    if not isinstance(card, dict):
        return None
    out: dict[str, Any] = {"timestamp": timestamp}
    out.update({k: _text(card.get(k)) for k in CARD_TEXT})
    out.update({k: card.get(k) if _is_int(card.get(k)) else None for k in CARD_INT})
    out["reasons"] = _texts(card.get("reasons"))
    out["actions"] = _texts(card.get("actions"))
    if out["severity"] not in Severity.__members__:
        out["severity"] = "none"
    return out


def _object(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value[:TEXT]
    if _is_int(value):
        return str(value)
    return None


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [t for t in (_text(v) for v in value[:LIST]) if t is not None]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < (1 << 53)

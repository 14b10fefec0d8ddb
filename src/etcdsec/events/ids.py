"""What an event is: the `etcdsec.` id prefix, the timestamp format, and the registry of known ids.

The registry lists each id with the fields it carries beyond the common ones (`timestamp`,
`eventid`, `sensor`), so `--alert-on` can refuse an id that no part of etcdsec ever emits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from etcdsec.errors import UserError

EVENT_PREFIX = "etcdsec."

EventOutput = Callable[[dict[str, Any]], None]

_SESSION = ("session", "src_ip", "src_port", "dst_ip", "dst_port", "worker")  # worker: --workers N only


@dataclass(frozen=True)
class EventId:
    eventid: str  # with the prefix
    emitter: str  # "honeypot" or "monitor"
    fields: tuple[str, ...]  # beyond timestamp, eventid, sensor


def _ids(emitter: str, table: dict[str, tuple[str, ...]]) -> dict[str, EventId]:
    return {EVENT_PREFIX + k: EventId(EVENT_PREFIX + k, emitter, v) for k, v in table.items()}


REGISTRY: dict[str, EventId] = {
    **_ids("honeypot", {
        "sensor.start": ("persona", "member_name", "listen", "worker"),
        "sensor.stop": ("sessions", "throttled", "refused", "worker"),
        "sensor.error": ("error", "path"),
        "session.connect": (*_SESSION, "protocol"),
        "session.refused": (*_SESSION, "reason"),
        "session.closed": (*_SESSION, "duration", "reason"),
        "session.shed": (*_SESSION, "reason", "for_src_ip", "bytes_in", "requests_in", "duration"),
        "tls.handshake": (*_SESSION, "alpn", "tls_version"),
        "http.request": (*_SESSION, "method", "path", "http_version", "headers", "user_agent", "status",
                         "duration_ms", "tls", "body", "body_b64", "body_len", "body_truncated"),
        "grpc.request": (*_SESSION, "grpc_method", "request", "raw", "status", "user_agent", "content_type"),
        "websocket.message": (*_SESSION, "path", "body", "body_b64", "body_len"),
        "malformed": (*_SESSION, "protocol", "reason", "raw_b64", "raw_len", "close"),
        "honeytoken.used": (*_SESSION, "token", "where"),
    }),
    **_ids("monitor", {
        "monitor.exposure.changed": ("target", "before", "after", "added", "removed", "changes"),
        "monitor.connection.anomalous": ("src_ip", "src_port", "dst_ip", "dst_port", "role", "severity", "card"),
        "monitor.connection.updated": ("src_ip", "src_port", "dst_ip", "dst_port", "role", "severity", "card"),
    }),
}


def full_id(eventid: str) -> str:
    """`http.request` -> `etcdsec.http.request`; an id that has the prefix is kept as it is."""
    return eventid if eventid.startswith(EVENT_PREFIX) else EVENT_PREFIX + eventid


def parse_event_ids(text: str, option: str = "--alert-on", emitter: str | None = None) -> list[str]:
    """A comma-separated list of known ids (prefix optional); an unknown one is a one-line UserError."""
    wanted = [full_id(part.strip()) for part in text.split(",") if part.strip()]
    if not wanted:
        raise UserError(f"{option}: expected at least one event id")
    known = {k for k, v in REGISTRY.items() if emitter is None or v.emitter == emitter}
    for eventid in wanted:
        if eventid not in known:
            raise UserError(f"{option}: unknown event id {eventid[:80]!r} (known: {_short(sorted(known))})")
    return wanted


def _short(ids: Iterable[str]) -> str:
    return ", ".join(i[len(EVENT_PREFIX):] for i in ids)


_DIGITS = tuple(f"{i:03d}" for i in range(1000))
_DIGITS_Z = tuple(f"{i:03d}Z" for i in range(1000))
# (second, its text, millisecond, its text): one tuple, replaced whole, so a thread never reads half of it
_stamp_cache: tuple[int, str, int, str] = (0, "", -1, "")


def utc_timestamp() -> str:
    """`2026-11-27T03:41:53.624938Z`: the text up to the seconds is formatted once per second, up to
    the millisecond once per millisecond; the microseconds come from a table (every event pays this)."""
    global _stamp_cache
    now = time.time()
    second = int(now)
    micro = int((now - second) * 1_000_000)  # < 1_000_000: now - second < 1 - ulp(now)
    milli = micro // 1000
    cache = _stamp_cache
    if cache[2] != milli or cache[0] != second:
        text = cache[1] if cache[0] == second else datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        cache = _stamp_cache = (second, text, milli, text + _DIGITS[milli])
    return cache[3] + _DIGITS_Z[micro % 1000]

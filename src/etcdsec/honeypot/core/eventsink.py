"""The honeypot's events: Cowrie/T-Pot style dicts (session fields first) handed to etcdsec.events.

Event ids are passed to `EventSink.emit` WITHOUT the `etcdsec.` prefix (`"http.request"`); the sink adds
it (an id that already has it is kept as is)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from etcdsec.events.emitter import Emitter
from etcdsec.events.ids import EventOutput, full_id, utc_timestamp
from etcdsec.honeypot.core.session import Session


class EventSink(Emitter):
    """Builds Cowrie/T-Pot style events (session fields first) and delivers them through
    `etcdsec.events.emitter.Emitter` to every output (JSONL file, store, alerts).

    A sensor emits from its event loop's thread only (workers are processes), so delivery takes no
    lock; outputs that threads share (the files, the store's queue) keep their own."""

    def __init__(self, sensor: str, outputs: Iterable[EventOutput] = ()) -> None:
        super().__init__(sensor, outputs, threads=False)
        self._full_ids: dict[str, str] = {}
        self.worker: int | None = None  # with --workers N: this worker's index, in every session event

    def emit(self, eventid: str, session: Session | None = None, **fields: Any) -> dict[str, Any]:  # type: ignore[override]
        """None values are left out."""
        event = self._head(eventid, session)
        for key, value in fields.items():
            if value is not None:
                event[key] = value
        self.deliver(event)
        return event

    def emit_fields(self, eventid: str, session: Session | None, fields: dict[str, Any]) -> dict[str, Any]:
        """`emit` with the fields as a dict (no keyword copy on the hot path) that holds no None value
        (`request_event_fields` makes none): it is taken as it is, unfiltered."""
        event = self._head(eventid, session)
        event.update(fields)
        self.deliver(event)
        return event

    def _head(self, eventid: str, session: Session | None) -> dict[str, Any]:
        """The fields every event starts with, in their order: timestamp, id, sensor, then the session's."""
        full = self._full_ids.get(eventid)
        if full is None:
            full = self._full_ids[eventid] = full_id(eventid)
        if session is None:
            return {"timestamp": utc_timestamp(), "eventid": full, "sensor": self.sensor}
        event = {"timestamp": utc_timestamp(), "eventid": full, "sensor": self.sensor, "session": session.id,
                 "src_ip": session.src_ip, "src_port": session.src_port, "dst_ip": session.dst_ip,
                 "dst_port": session.dst_port}
        if session.peer_ip:
            event["peer_ip"] = session.peer_ip
        if self.worker is not None:
            event["worker"] = self.worker
        return event

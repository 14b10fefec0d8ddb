"""An event output that keeps the events in a list: tests, the sensor harness and the fidelity runner
read what a sensor emitted from it."""

from __future__ import annotations

from typing import Any

from etcdsec.events.ids import full_id


class MemoryEvents:
    """Pass it as one of a sensor's outputs; `of("http.request")` lists the events of one id."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def of(self, eventid: str) -> list[dict[str, Any]]:
        full = full_id(eventid)
        return [e for e in self.events if e["eventid"] == full]

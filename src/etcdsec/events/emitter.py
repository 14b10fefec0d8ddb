"""Build an event and hand it to every output: the one fan-out the honeypot and the monitor share."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from etcdsec.events.ids import EventOutput, full_id, utc_timestamp


class Emitter:
    """`emit(id, **fields)` -> `{"timestamp", "eventid", "sensor", **fields}` to every output.

    None values are left out. An output that raises is counted and skipped: one broken sink never
    stops the others, nor the emitter.
    """

    def __init__(self, sensor: str, outputs: Iterable[EventOutput] = ()) -> None:
        self.sensor = sensor
        self.outputs: list[EventOutput] = list(outputs)
        self.emitted = 0
        self.output_errors = 0
        self._lock = threading.Lock()

    def emit(self, eventid: str, **fields: Any) -> dict[str, Any]:
        event: dict[str, Any] = {"timestamp": utc_timestamp(), "eventid": full_id(eventid), "sensor": self.sensor}
        event.update((k, v) for k, v in fields.items() if v is not None)
        self.deliver(event)
        return event

    def deliver(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.emitted += 1
            for output in self.outputs:
                try:
                    output(event)
                except Exception:  # a failing sink must not take the emitter down
                    self.output_errors += 1

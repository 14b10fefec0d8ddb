"""Build an event and hand it to every output: the one fan-out the honeypot and the monitor share."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import FunctionType
from typing import Any

from etcdsec.events.ids import EventOutput, full_id, utc_timestamp


def _call_target(output: EventOutput) -> EventOutput:
    """An output object's bound `__call__`: calling it skips the instance-call slot (~60 ns an output an event)."""
    call = None
    for klass in type(output).__mro__:  # a __call__ written in Python, on the class or a base
        call = vars(klass).get("__call__")
        if call is not None:
            break
    return output.__call__ if isinstance(call, FunctionType) else output  # type: ignore[operator]


class Emitter:
    """`emit(id, **fields)` -> `{"timestamp", "eventid", "sensor", **fields}` to every output.

    None values are left out. An output that raises is counted and skipped: one broken sink never
    stops the others, nor the emitter. Outputs that buffer (the JSON-lines file) may be held
    (`hold`/`release`) across a batch whose answers are written after `release`.
    """

    def __init__(self, sensor: str, outputs: Iterable[EventOutput] = (), *, threads: bool = True) -> None:
        self.sensor = sensor
        self._outputs: list[EventOutput] = list(outputs)
        self._targets: tuple[EventOutput, ...] | None = None  # what deliver calls, made from _outputs
        self._holders: tuple[Any, ...] = ()  # the outputs that can hold a batch (hold/release)
        self.emitted = 0
        self.output_errors = 0
        # threads=False: one thread emits (a sensor's event loop), so delivery takes no lock
        self._lock: threading.Lock | None = threading.Lock() if threads else None

    @property
    def outputs(self) -> list[EventOutput]:
        """The outputs, in order; whoever takes the list may change it, so the call targets are made again."""
        self._targets = None
        return self._outputs

    @outputs.setter
    def outputs(self, outputs: list[EventOutput]) -> None:
        self._outputs, self._targets = outputs, None

    def emit(self, eventid: str, **fields: Any) -> dict[str, Any]:
        event: dict[str, Any] = {"timestamp": utc_timestamp(), "eventid": full_id(eventid), "sensor": self.sensor}
        event.update((k, v) for k, v in fields.items() if v is not None)
        self.deliver(event)
        return event

    def deliver(self, event: dict[str, Any]) -> None:
        targets = self._targets
        if targets is None:
            targets = self._prepare()
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            self.emitted += 1
            for output in targets:
                try:
                    output(event)
                except Exception:  # a failing sink must not take the emitter down
                    self.output_errors += 1
        finally:
            if lock is not None:
                lock.release()

    def _prepare(self) -> tuple[EventOutput, ...]:
        self._holders = tuple(o for o in self._outputs if callable(getattr(o, "hold", None))
                              and callable(getattr(o, "release", None)))
        self._targets = tuple(map(_call_target, self._outputs))
        return self._targets

    def hold(self) -> None:
        """Let buffering outputs keep this batch's events until `release` (nested holds count)."""
        if self._targets is None:
            self._prepare()
        for output in self._holders:
            try:
                output.hold()
            except Exception:  # as in deliver: a failing sink is counted, never raised into the server
                self.output_errors += 1

    def release(self) -> None:
        """End a `hold`: what was kept is written now, before the answers it describes."""
        for output in self._holders:
            try:
                output.release()
            except Exception:
                self.output_errors += 1

"""The resume cursor of one shard: how far the walk has launched, and which launched steps are still
in flight.

Steps are launched in walk order and finish out of order. Every step below `next_step` that is not
in flight is done, so the state stays small (in flight is bounded by --concurrency) however long a
slow endpoint holds its step. After a crash the in-flight steps are done again (they never
finished) and finished ones never are. Sans-IO: the store persists it with each batch of results.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ResumeCursor:
    next_step: int = 0  # every step below it was launched (or had nothing to do)
    in_flight: set[int] = field(default_factory=set)  # launched, not finished

    def start_step(self) -> int:
        """Where a resumed walk starts: the oldest unfinished step."""
        return min(self.in_flight, default=self.next_step)

    def is_done(self, step: int) -> bool:
        return step < self.next_step and step not in self.in_flight

    def skip(self, step: int) -> None:
        """A step with nothing to do (an element past the target set)."""
        self.next_step = max(self.next_step, step + 1)

    def launch(self, step: int) -> None:
        self.in_flight.add(step)
        self.next_step = max(self.next_step, step + 1)

    def finish(self, step: int) -> None:
        self.in_flight.discard(step)

    @property
    def done_count(self) -> int:
        return self.next_step - len(self.in_flight)

    def copy(self) -> ResumeCursor:
        return ResumeCursor(self.next_step, set(self.in_flight))

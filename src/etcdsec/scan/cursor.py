"""The resume cursor of one shard: every step below `cursor` is done, plus a few done out of order.

Probes finish out of order, so a single "last step" would either skip in-flight work or redo
finished work after a crash. Steps started but not finished (in flight) are in neither set, so a
resumed run does them again; finished steps are never redone. Sans-IO: the store persists it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ResumeCursor:
    cursor: int = 0
    done_ahead: set[int] = field(default_factory=set)

    def mark_done(self, step: int) -> None:
        if step < self.cursor:
            return
        if step == self.cursor:
            self.cursor += 1
            while self.cursor in self.done_ahead:
                self.done_ahead.remove(self.cursor)
                self.cursor += 1
        else:
            self.done_ahead.add(step)

    def is_done(self, step: int) -> bool:
        return step < self.cursor or step in self.done_ahead

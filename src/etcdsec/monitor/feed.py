"""Which stored events the command already printed, when workers write them (sans-IO).

Event ids come from a sequence. On PostgreSQL a row can commit after a row with a higher id, so a
poll that read "everything above the highest id seen" could skip it. A row commits within
milliseconds of taking its id (one short insert), so each poll reads again from the highest id seen
`LOOKBACK` polls earlier and skips the ids it printed since: memory bounded by what `LOOKBACK` polls hold.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

LOOKBACK = 20  # polls; at a poll every 0.5 s a row may commit up to 10 s after a higher id


@dataclass
class EventFeed:
    floor: int  # ids at or below it are done with
    seen: set[int] = field(default_factory=set)
    _tops: deque[int] = field(default_factory=lambda: deque(maxlen=LOOKBACK))

    def accept(self, row_id: int) -> bool:
        """True for a row not printed yet."""
        if row_id <= self.floor or row_id in self.seen:
            return False
        self.seen.add(row_id)
        return True

    def end_poll(self) -> None:
        self._tops.append(max(self.seen, default=self.floor))
        if len(self._tops) == LOOKBACK and self._tops[0] > self.floor:
            self.floor = self._tops[0]
            self.seen = {i for i in self.seen if i > self.floor}

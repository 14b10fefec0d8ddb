"""Who gives up a slot when the total connection cap is reached: the connection that sent least.

A slowloris (a header line every few seconds) or a WebSocket that never speaks holds a slot while
sending almost nothing; a new source is worth more to a honeypot than either, so the newcomer is
served and the least useful connection is closed instead (nginx and Go refuse the newcomer; a
sensor that refuses newcomers records nobody but the first attacker). Sans-IO: the listener asks,
then closes the one named.
"""

from __future__ import annotations

from collections.abc import Iterable

from etcdsec.honeypot.context import Session

# Every newcomer has sent nothing yet: connections this young are never shed, or two newcomers
# would shed each other.
SHED_GRACE_S = 1.0


def shed_key(session: Session, now: float) -> tuple[int, float]:
    """Lower goes first: fewest complete requests, then fewest bytes per second of its life."""
    age = max(now - session.started, 1e-3)
    return session.requests_in, session.bytes_in / age


def pick_victim(sessions: Iterable[Session], now: float) -> Session | None:
    """The connection to shed, or None when every one is younger than the grace time."""
    return min((s for s in sessions if now - s.started >= SHED_GRACE_S), key=lambda s: shed_key(s, now),
               default=None)

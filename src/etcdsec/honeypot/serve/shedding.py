"""Who gives up a slot when the total connection cap is reached: the connection that sent least.

A slowloris (a header line every few seconds) or a WebSocket that never speaks holds a slot while
sending almost nothing; a new source is worth more to a honeypot than either, so the newcomer is
served and the least useful connection is closed instead (nginx and Go refuse the newcomer; a
sensor that refuses newcomers records nobody but the first attacker). Sans-IO: the listener asks,
then closes the one named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from etcdsec.honeypot.core.session import Session

# Every newcomer has sent nothing yet: a connection this young is not shed while it is its
# source's only one, or two new sources would shed each other. A source holding several has no
# such grace: an attack that reconnects as fast as it is shed keeps every connection young.
SHED_GRACE_S = 1.0


def shed_key(session: Session, now: float) -> tuple[int, float]:
    """Lower goes first: fewest complete requests, then fewest bytes per second of its life."""
    age = max(now - session.started, 1e-3)
    return session.requests_in, session.bytes_in / age


def pick_victim(sessions: Iterable[Session], now: float,
                crowd: Callable[[str], int] = lambda _src: 1) -> Session | None:
    """The connection to shed, or None when every one is in its grace time. `crowd(src)`: how many
    connections that source holds."""
    return min((s for s in sessions if now - s.started >= SHED_GRACE_S or crowd(s.src_ip) > 1),
               key=lambda s: shed_key(s, now), default=None)

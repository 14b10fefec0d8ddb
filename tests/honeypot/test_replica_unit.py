"""The replica's bookkeeping (sans-IO): changes kept until a read needs them, never served stale."""

from __future__ import annotations

from etcdsec.honeypot.v3 import replica as rep


class Copy:
    """What the replica applies, in order; a record b"bad" fails as a damaged push would."""

    def __init__(self) -> None:
        self.applied: list[tuple[bytes, bool]] = []

    def apply(self, data: bytes, snapshot: bool) -> None:
        if data == b"bad":
            raise ValueError("damaged")
        self.applied.append((data, snapshot))


def make(now: list[float] | None = None, pauses: list[int] | None = None):
    published, copy, asks = rep.Published(), Copy(), []
    clock = (lambda: now[0]) if now is not None else (lambda: 0.0)
    replica = rep.Replica(published, copy.apply, lambda: None, lambda: True, lambda: asks.append(1), clock,
                          pause=(lambda: pauses.append(1)) if pauses is not None else None)
    return published, copy, replica, asks


def test_changes_wait_until_a_read_needs_them_and_a_read_waits_for_what_the_owner_counted() -> None:
    published, copy, replica, asks = make()
    assert not replica.current() and asks == [1]  # nothing yet: to the owner, and a snapshot is asked for
    replica.on_push(True, 5, b"snap")
    replica.on_push(False, 6, b"c6")
    published.write(7, False)
    assert copy.applied == [] and not replica.current()  # change 7 is counted but not here: to the owner
    replica.on_push(False, 7, b"c7")
    assert replica.current() and copy.applied == [(b"snap", True), (b"c6", False), (b"c7", False)]
    published.write(7, True)
    assert not replica.current()  # auth on: the owner's roles decide


def test_a_gap_or_a_damaged_change_makes_the_copy_stale_until_a_new_snapshot() -> None:
    now = [0.0]
    published, copy, replica, asks = make(now)
    replica.on_push(True, 1, b"snap")
    replica.on_push(False, 3, b"c3")  # 2 never came (the owner dropped it)
    published.write(3, False)
    assert not replica.current() and len(asks) == 1
    assert not replica.current() and len(asks) == 1  # asked at most once a second
    now[0] = 1.5
    assert not replica.current() and len(asks) == 2
    replica.on_push(True, 3, b"snap2")
    replica.on_push(False, 4, b"bad")
    published.write(4, False)
    assert not replica.current() and replica.broken == 1
    replica.on_push(True, 4, b"snap3")
    assert replica.current() and copy.applied[-1] == (b"snap3", True)


def test_unread_changes_are_bounded_and_the_owner_told_to_stop_sending_them() -> None:
    pauses: list[int] = []
    published, copy, replica, asks = make(pauses=pauses)
    replica.on_push(True, 0, b"snap")
    for seq in range(1, rep.MAX_PENDING + 2):
        replica.on_push(False, seq, b"c")
    assert replica.dropped == 1 and replica.pending == [] and replica.snapshot is None and pauses == [1]
    published.write(rep.MAX_PENDING + 1, False)
    assert not replica.current() and asks == [1] and copy.applied == []

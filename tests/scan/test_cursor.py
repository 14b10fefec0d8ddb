from hypothesis import given, settings
from hypothesis import strategies as st

from etcdsec.scan.cursor import ResumeCursor


@settings(max_examples=300, deadline=None)
@given(total=st.integers(1, 300), window=st.integers(1, 20), data=st.data())
def test_after_a_crash_exactly_the_unfinished_steps_are_redone(total, window, data):
    """Launch in order with at most `window` in flight, finish in any order, crash at any point."""
    cursor, in_flight, finished = ResumeCursor(), [], set()
    crash_after = data.draw(st.integers(0, 2 * total))
    for _ in range(crash_after):
        can_launch = cursor.next_step < total and len(in_flight) < window
        if can_launch and (not in_flight or data.draw(st.booleans())):
            in_flight.append(cursor.next_step)
            cursor.launch(cursor.next_step)
        elif in_flight:
            step = in_flight.pop(data.draw(st.integers(0, len(in_flight) - 1)))
            cursor.finish(step)
            finished.add(step)
    saved = cursor.copy()
    assert len(saved.in_flight) <= window
    redo = [s for s in range(saved.start_step(), total) if not saved.is_done(s)]
    assert sorted(redo) == sorted(set(range(total)) - finished)


def test_skipped_steps_move_the_cursor():
    cursor = ResumeCursor()
    cursor.launch(0)
    cursor.skip(1)
    cursor.launch(2)
    cursor.finish(2)
    assert cursor.next_step == 3 and cursor.in_flight == {0} and cursor.done_count == 2
    assert cursor.is_done(1) and cursor.is_done(2) and not cursor.is_done(0) and cursor.start_step() == 0

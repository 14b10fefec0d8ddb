"""The change detector on its own: what is a change, --down-after, coming back, what is worse."""

from __future__ import annotations

import datetime as dt

from etcdsec.monitor.drift import TargetState, step
from etcdsec.monitor.observation import Observation, expiring

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def obs(reachable: bool = True, exposed: bool = False, severity: str = "none", findings: tuple[str, ...] = (),
        **kw: object) -> Observation:
    return Observation("t:2379", T0, reachable, exposed, severity, findings, **kw)  # type: ignore[arg-type]


OPEN = obs(exposed=True, severity="critical", findings=("ETCD-ANON-READ-V3", "ETCD-PLAINTEXT"), v3_auth=False)
CLOSED = obs(severity="medium", findings=("ETCD-PLAINTEXT",), v3_auth=True)
DOWN = obs(reachable=False, error="connection refused")


def test_first_observation_is_the_baseline_and_no_event() -> None:
    state = TargetState()
    out = step(state, CLOSED, 2)
    assert out.change is None and out.baseline and state.baseline == CLOSED


def test_no_event_while_nothing_changes() -> None:
    state = TargetState()
    for _ in range(5):
        assert step(state, CLOSED, 2).change is None


def test_auth_turned_off_is_one_worse_change() -> None:
    state = TargetState()
    step(state, CLOSED, 2)
    change = step(state, OPEN, 2).change
    assert change is not None and change.worse
    assert change.added == ("ETCD-ANON-READ-V3",) and change.removed == ()
    assert set(change.changes) == {"exposed", "severity", "findings", "v3_auth"}
    fields = change.event_fields()
    assert fields["before"]["exposed"] is False and fields["after"]["exposed"] is True
    back = step(state, CLOSED, 2).change
    assert back is not None and not back.worse and back.removed == ("ETCD-ANON-READ-V3",)


def test_down_after_n_misses_then_back() -> None:
    state = TargetState()
    step(state, OPEN, 3)
    assert step(state, DOWN, 3).change is None and state.misses == 1
    assert step(state, DOWN, 3).change is None and state.misses == 2
    down = step(state, DOWN, 3).change
    assert down is not None and down.changes == ("reachable",) and down.worse and not down.after.reachable
    assert step(state, DOWN, 3).change is None  # still down: nothing new
    up = step(state, OPEN, 3).change
    assert up is not None and "reachable" in up.changes and not up.worse  # back as it was


def test_one_lost_probe_is_no_event() -> None:
    state = TargetState()
    step(state, CLOSED, 2)
    assert step(state, DOWN, 2).change is None
    assert step(state, CLOSED, 2).change is None and state.misses == 0


def test_back_more_exposed_than_before_it_went_down_is_worse() -> None:
    state = TargetState()
    step(state, CLOSED, 1)
    step(state, DOWN, 1)
    up = step(state, OPEN, 1).change
    assert up is not None and up.worse


def test_certificate_replaced_and_expiring() -> None:
    state = TargetState()
    step(state, obs(cert_id="a", cert_not_after="2027-01-01T00:00:00+00:00"), 2)
    change = step(state, obs(cert_id="b", cert_not_after="2026-12-05T00:00:00+00:00", cert_expiring=True), 2).change
    assert change is not None and set(change.changes) == {"certificate", "cert_expiring"} and change.worse
    assert expiring("2026-12-10T00:00:00+00:00", T0, 14) and not expiring("2026-12-20T00:00:00+00:00", T0, 14)
    assert not expiring("garbage", T0, 14) and not expiring(None, T0, 14)

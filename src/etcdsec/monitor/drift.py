"""What counts as a change between two observations of one target (sans-IO).

Each target has a baseline: the observation later ones are compared with. A reachable observation
always becomes the new baseline (after an event when something security-relevant differs). An
unreachable one only counts after `down_after` in a row, so one lost packet is no alert; until
then it is a miss and the baseline stays. The endpoint coming back is a change too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from etcdsec.monitor.observation import Observation

EVENT_ID = "monitor.exposure.changed"


@dataclass
class TargetState:
    baseline: Observation | None = None
    last_up: Observation | None = None  # the newest reachable observation
    misses: int = 0  # unreachable observations in a row since the baseline


@dataclass(frozen=True)
class Change:
    target: str
    before: Observation
    after: Observation
    changes: tuple[str, ...]  # which facts changed, e.g. ("findings", "severity")
    worse: bool  # the target got more exposed, or went down, or its certificate is near expiry
    added: tuple[str, ...] = field(default=())
    removed: tuple[str, ...] = field(default=())

    def event_fields(self) -> dict[str, Any]:
        return {"target": self.target, "before": self.before.summary(), "after": self.after.summary(),
                "added": list(self.added), "removed": list(self.removed), "changes": list(self.changes),
                "worse": self.worse, "severity": self.after.severity}

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Change:
        """Back from a stored event (what `monitor exposure --workers` prints from the database)."""
        target = str(event["target"])
        return cls(target, Observation.from_summary(target, event["before"]),
                   Observation.from_summary(target, event["after"]), tuple(event["changes"]), bool(event["worse"]),
                   tuple(event["added"]), tuple(event["removed"]))


@dataclass(frozen=True)
class Step:
    change: Change | None
    baseline: bool  # the observation became the baseline (stored as such)


def _differences(a: Observation, b: Observation) -> list[str]:
    facts = ["reachable", "exposed", "severity", "findings", "version", "scheme", "client_cert_required", "v3_auth"]
    out = [name for name in facts if getattr(a, name) != getattr(b, name)]
    if a.cert_id and b.cert_id and a.cert_id != b.cert_id:
        out.append("certificate")
    if a.cert_expiring != b.cert_expiring:
        out.append("cert_expiring")
    return out


def _worse(a: Observation, b: Observation) -> bool:
    """b is worse than a: more exposed, less protected, or a certificate closer to trouble."""
    if a.reachable and not b.reachable:
        return True
    if not b.reachable:
        return False
    return ((b.exposed and not a.exposed) or b.rank > a.rank or bool(set(b.findings) - set(a.findings))
            or (b.cert_expiring and not a.cert_expiring)
            or (a.scheme == "https" and b.scheme == "http")
            or (a.client_cert_required and not b.client_cert_required)
            or (a.v3_auth is True and b.v3_auth is False))


def step(state: TargetState, obs: Observation, down_after: int) -> Step:
    """Feed one observation; `state` is updated in place."""
    base = state.baseline
    if base is None:
        state.baseline, state.misses = obs, 0
        if obs.reachable:
            state.last_up = obs
        return Step(None, True)
    if not obs.reachable:
        if not base.reachable:
            return Step(None, False)  # still down: nothing new
        state.misses += 1
        if state.misses < down_after:
            return Step(None, False)
        state.baseline, state.misses = obs, 0
        return Step(Change(obs.target, base, obs, ("reachable",), True, (), tuple(base.findings)), True)
    state.baseline, state.misses = obs, 0
    previous_up, state.last_up = state.last_up, obs
    changed = _differences(base, obs)
    if not changed:
        return Step(None, True)
    # Back from down: it is worse only when it came back more exposed than it was when last seen up.
    worse = _worse(previous_up, obs) if not base.reachable and previous_up is not None else _worse(base, obs)
    added = tuple(sorted(set(obs.findings) - set(base.findings)))
    removed = tuple(sorted(set(base.findings) - set(obs.findings)))
    return Step(Change(obs.target, base, obs, tuple(changed), worse, added, removed), True)

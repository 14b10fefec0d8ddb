"""Observations in the store (SQLite or PostgreSQL), so a restarted monitor picks up where it was."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, and_, func, insert, select

from etcdsec.model import ProbeResult
from etcdsec.monitor.drift import TargetState
from etcdsec.monitor.observation import Observation
from etcdsec.store.engine import open_engine
from etcdsec.store.scans import guard
from etcdsec.store.schema import metadata, monitor_events, monitor_observations

obs_t = monitor_observations
ev_t = monitor_events
_CHUNK = 500


def _row(o: Observation, baseline: bool, result: ProbeResult | None) -> dict[str, Any]:
    return dict(target=o.target[:300], observed_at=o.observed_at, reachable=o.reachable, exposed=o.exposed,
                severity=o.severity, findings=json.dumps(list(o.findings)),
                version=o.version[:64] if o.version else None,
                scheme=o.scheme, client_cert_required=o.client_cert_required, v3_auth=o.v3_auth, cert_id=o.cert_id,
                cert_not_after=o.cert_not_after, cert_expiring=o.cert_expiring, error=o.error, baseline=baseline,
                result=json.dumps(result.to_dict()) if result is not None else None)


def _observation(row: Any) -> Observation:
    stamp = row.observed_at if row.observed_at.tzinfo else row.observed_at.replace(tzinfo=dt.UTC)
    return Observation(target=row.target, observed_at=stamp, reachable=row.reachable, exposed=row.exposed,
                       severity=row.severity, findings=tuple(json.loads(row.findings)), version=row.version,
                       scheme=row.scheme, client_cert_required=row.client_cert_required, v3_auth=row.v3_auth,
                       cert_id=row.cert_id, cert_not_after=row.cert_not_after, cert_expiring=row.cert_expiring,
                       error=row.error)


class History:
    def __init__(self, path_or_url: str) -> None:
        self.engine: Engine = open_engine(path_or_url)
        with guard("creating the monitor tables"):
            metadata.create_all(self.engine, tables=[monitor_observations, monitor_events])
        self.written = 0

    def load(self, targets: Iterable[str]) -> dict[str, TargetState]:
        """Each target's newest baseline, newest reachable observation and the misses since the baseline."""
        wanted = set(targets)
        states = {t: TargetState() for t in wanted}
        with guard("reading monitor history"), self.engine.connect() as conn:
            base_ids = select(obs_t.c.target, func.max(obs_t.c.id).label("bid")).where(obs_t.c.baseline) \
                .group_by(obs_t.c.target).subquery()
            up_ids = select(func.max(obs_t.c.id)).where(obs_t.c.reachable).group_by(obs_t.c.target)
            baseline_ids = {r[1] for r in conn.execute(select(base_ids)) if r[0] in wanted}
            ids = sorted(baseline_ids | {r[0] for r in conn.execute(up_ids)})
            for start in range(0, len(ids), _CHUNK):
                for row in conn.execute(select(obs_t).where(obs_t.c.id.in_(ids[start:start + _CHUNK]))):
                    if row.target not in wanted:
                        continue
                    obs = _observation(row)
                    if row.id in baseline_ids:  # one per target: the newest
                        states[row.target].baseline = obs
                    if row.reachable:  # one per target: the newest reachable
                        states[row.target].last_up = obs
            misses = select(obs_t.c.target, func.count()).select_from(
                obs_t.join(base_ids, and_(obs_t.c.target == base_ids.c.target, obs_t.c.id > base_ids.c.bid))
            ).group_by(obs_t.c.target)
            for target, count in conn.execute(misses):
                base = states[target].baseline if target in wanted else None
                if base is not None and base.reachable:  # misses count only towards going down
                    states[target].misses = int(count)
        return states

    def write(self, rows: list[tuple[Observation, bool, ProbeResult | None]]) -> None:
        if not rows:
            return
        with guard("writing observations"), self.engine.begin() as conn:
            conn.execute(insert(obs_t), [_row(*r) for r in rows])
        self.written += len(rows)

    def last_event_id(self) -> int:
        with guard("reading monitor events"), self.engine.connect() as conn:
            return int(conn.execute(select(func.max(ev_t.c.id))).scalar() or 0)

    def events_after(self, after_id: int, eventid: str, limit: int) -> list[tuple[int, str]]:
        """(id, event JSON) of the stored events `eventid` above `after_id`, oldest first."""
        with guard("reading monitor events"), self.engine.connect() as conn:
            rows = conn.execute(select(ev_t.c.id, ev_t.c.data).where(ev_t.c.id > after_id, ev_t.c.eventid == eventid)
                                .order_by(ev_t.c.id).limit(limit))
            return [(int(r.id), str(r.data)) for r in rows]

    def close(self) -> None:
        self.engine.dispose()

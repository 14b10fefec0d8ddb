"""What `etcdsec report` shows about honeypot interactions stored in the database (or read from
`--events` files into one, see report.eventfiles): every figure is a GROUP BY, capped."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, case, func, inspect, literal, select
from sqlalchemy.exc import SQLAlchemyError

from etcdsec.store.schema import honeypot_events as ev  # the one import of the events table in report/

TOP = 20
STORIES = 30  # sessions told as stories, the busiest first
TIMELINE_BUCKETS = 200  # hours, or days when the events span more hours than this
# The monitor writes to the same table; its events are the report's monitor section, not attacks.
HONEYPOT = ev.c.eventid.not_like("etcdsec.monitor.%")


def honeypot_summary(engine: Engine) -> dict[str, Any] | None:
    """Sources, first/last seen, methods and paths, clients, malformed and HEAD requests, honeytoken uses.

    None when the database has no honeypot table or no events in it.
    """
    try:
        if not inspect(engine).has_table(ev.name):
            return None
        with engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(ev).where(HONEYPOT)).scalar_one()
            if not total:
                return None
            first, last = conn.execute(select(func.min(ev.c.timestamp), func.max(ev.c.timestamp))
                                       .where(HONEYPOT)).one()
            by_id = dict(conn.execute(select(ev.c.eventid, func.count()).where(HONEYPOT)
                                      .group_by(ev.c.eventid)).all())
            sources = [
                {"src_ip": ip, "events": n, "sessions": s, "first_seen": f, "last_seen": la}
                for ip, n, s, f, la in conn.execute(
                    select(ev.c.src_ip, func.count(), func.count(func.distinct(ev.c.session)),
                           func.min(ev.c.timestamp), func.max(ev.c.timestamp))
                    .where(HONEYPOT & ev.c.src_ip.is_not(None)).group_by(ev.c.src_ip)
                    .order_by(func.count().desc(), ev.c.src_ip).limit(TOP))
            ]
            n_sources = conn.execute(select(func.count(func.distinct(ev.c.src_ip))).where(HONEYPOT)).scalar_one()
            http = ev.c.eventid == "etcdsec.http.request"
            methods = dict(conn.execute(select(ev.c.method, func.count()).where(http).group_by(ev.c.method)
                                        .order_by(func.count().desc())).all())
            paths = _top(conn, ev.c.path, http)
            user_agents = _top(conn, ev.c.user_agent, http & ev.c.user_agent.is_not(None))
            grpc = ev.c.eventid == "etcdsec.grpc.request"
            grpc_methods = _top(conn, ev.c.grpc_method, grpc)
            grpc_clients = _top(conn, ev.c.user_agent, grpc & ev.c.user_agent.is_not(None))
            head = conn.execute(select(func.count()).where(http & (ev.c.method == "HEAD"))).scalar_one()
            tokens = [
                {"timestamp": t, "src_ip": ip, "token": tok, "where": _where(data)}
                for t, ip, tok, data in conn.execute(
                    select(ev.c.timestamp, ev.c.src_ip, ev.c.token, ev.c.data)
                    .where(ev.c.eventid == "etcdsec.honeytoken.used").order_by(ev.c.timestamp).limit(100))
            ]
            sensors = [s for (s,) in conn.execute(select(func.distinct(ev.c.sensor))
                                                  .where(HONEYPOT & ev.c.sensor.is_not(None))
                                                  .order_by(ev.c.sensor))]
            timeline = _timeline(conn, first, last)
            stories = _stories(conn)
    except SQLAlchemyError:
        return None
    return {
        "events": total, "sensors": sensors, "first_seen": first, "last_seen": last,
        "event_counts": {k.removeprefix("etcdsec."): v for k, v in sorted(by_id.items())},
        "source_count": n_sources, "sources": sources, "methods": methods, "paths": paths,
        "clients": {"user_agents": user_agents, "grpc": grpc_clients}, "grpc_methods": grpc_methods,
        "malformed": by_id.get("etcdsec.malformed", 0), "head_requests": head,
        "honeytoken_uses": tokens, "timeline": timeline, "sessions": stories,
    }


def _top(conn: Any, column: Any, where: Any) -> list[dict[str, Any]]:
    rows = conn.execute(select(column, func.count()).where(where).group_by(column)
                        .order_by(func.count().desc(), column).limit(TOP))
    return [{"value": value, "count": n} for value, n in rows]


def _where(data: str) -> Any:
    try:
        event = json.loads(data)
    except ValueError:
        return None
    return event.get("where") if isinstance(event, dict) else None


def _timeline(conn: Any, first: str | None, last: str | None) -> dict[str, Any]:
    """Events per hour (`2026-11-27T04`), or per day when that would be too many bars."""
    width = 13  # the ISO timestamp's prefix that names the hour
    if first and last and _hours_between(first, last) > TIMELINE_BUCKETS:
        width = 10
    bucket = func.substr(ev.c.timestamp, 1, width)
    rows = conn.execute(select(bucket, func.count()).where(HONEYPOT).group_by(bucket).order_by(bucket)
                        .limit(10 * TIMELINE_BUCKETS)).all()
    return {"unit": "hour" if width == 13 else "day", "counts": {str(b): n for b, n in rows}}


def _hours_between(first: str, last: str) -> float:
    import datetime as dt

    try:
        a = dt.datetime.fromisoformat(first[:19])
        b = dt.datetime.fromisoformat(last[:19])
    except ValueError:
        return float(TIMELINE_BUCKETS + 1)
    return (b - a).total_seconds() / 3600


# What a request was for, in the order attacks usually go: learn what it is, take it, change it, stay.
PHASES: dict[str, Any] = {
    "recon": (ev.c.path.like("/version%") | ev.c.path.like("/health%") | ev.c.path.like("/v2/members%")
              | ev.c.path.like("/v2/stats%") | ev.c.path.like("/metrics%") | ev.c.path.like("%/maintenance/status")
              | ev.c.path.like("%/cluster/member/list") | ev.c.grpc_method.like("%/Maintenance/Status")
              | ev.c.grpc_method.like("%/Cluster/MemberList")),
    "dump": (((ev.c.method == "GET") & ev.c.path.like("/v2/keys%") & ev.c.path.not_like("%wait=true%"))
             | ev.c.path.like("%/kv/range") | ev.c.grpc_method.like("%/KV/Range")),
    "write": ((ev.c.method.in_(("PUT", "POST", "DELETE")) & ev.c.path.like("/v2/keys%"))
              | ev.c.path.like("%/kv/put") | ev.c.path.like("%/kv/deleterange") | ev.c.path.like("%/kv/txn")
              | ev.c.grpc_method.like("%/KV/Put") | ev.c.grpc_method.like("%/KV/DeleteRange")
              | ev.c.grpc_method.like("%/KV/Txn")),
    "watch": (ev.c.path.like("%wait=true%") | ev.c.path.like("%/watch%") | ev.c.grpc_method.like("%/Watch/Watch")),
    "honeytoken": ev.c.eventid == "etcdsec.honeytoken.used",
}


def _stories(conn: Any) -> list[dict[str, Any]]:
    """The busiest sessions as short stories: which phases happened, in the order they started."""
    starts = [func.min(case((cond, ev.c.timestamp), else_=literal(None))) for cond in PHASES.values()]
    query = (select(ev.c.session, func.min(ev.c.src_ip), func.count(), func.min(ev.c.timestamp),
                    func.max(ev.c.timestamp), *starts)
             .where(HONEYPOT & ev.c.session.is_not(None)).group_by(ev.c.session)
             .order_by(func.count().desc(), ev.c.session).limit(STORIES))
    stories = []
    for session, src_ip, n, first, last, *phase_starts in conn.execute(query):
        begun = sorted((start, phase) for phase, start in zip(PHASES, phase_starts, strict=True) if start)
        stories.append({"session": session, "src_ip": src_ip, "events": n, "first_seen": first, "last_seen": last,
                        "story": [phase for _, phase in begun]})
    return stories

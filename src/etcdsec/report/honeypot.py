"""What `etcdsec report` shows about honeypot interactions stored in the database."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from etcdsec.store.schema import honeypot_events as ev

TOP = 20


def honeypot_summary(engine: Engine) -> dict[str, Any] | None:
    """Sources, first/last seen, methods and paths, clients, malformed and HEAD requests, honeytoken uses.

    None when the database has no honeypot table or no events in it.
    """
    try:
        if not inspect(engine).has_table(ev.name):
            return None
        with engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(ev)).scalar_one()
            if not total:
                return None
            first, last = conn.execute(select(func.min(ev.c.timestamp), func.max(ev.c.timestamp))).one()
            by_id = dict(conn.execute(select(ev.c.eventid, func.count()).group_by(ev.c.eventid)).all())
            sources = [
                {"src_ip": ip, "events": n, "sessions": s, "first_seen": f, "last_seen": la}
                for ip, n, s, f, la in conn.execute(
                    select(ev.c.src_ip, func.count(), func.count(func.distinct(ev.c.session)),
                           func.min(ev.c.timestamp), func.max(ev.c.timestamp))
                    .where(ev.c.src_ip.is_not(None)).group_by(ev.c.src_ip)
                    .order_by(func.count().desc(), ev.c.src_ip).limit(TOP))
            ]
            n_sources = conn.execute(select(func.count(func.distinct(ev.c.src_ip)))).scalar_one()
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
                {"timestamp": t, "src_ip": ip, "token": tok, "where": json.loads(data).get("where")}
                for t, ip, tok, data in conn.execute(
                    select(ev.c.timestamp, ev.c.src_ip, ev.c.token, ev.c.data)
                    .where(ev.c.eventid == "etcdsec.honeytoken.used").order_by(ev.c.timestamp).limit(100))
            ]
            sensors = [s for (s,) in conn.execute(select(func.distinct(ev.c.sensor)).order_by(ev.c.sensor))]
    except SQLAlchemyError:
        return None
    return {
        "events": total, "sensors": sensors, "first_seen": first, "last_seen": last,
        "event_counts": {k.removeprefix("etcdsec."): v for k, v in sorted(by_id.items())},
        "source_count": n_sources, "sources": sources, "methods": methods, "paths": paths,
        "clients": {"user_agents": user_agents, "grpc": grpc_clients}, "grpc_methods": grpc_methods,
        "malformed": by_id.get("etcdsec.malformed", 0), "head_requests": head,
        "honeytoken_uses": tokens,
    }


def _top(conn: Any, column: Any, where: Any) -> list[dict[str, Any]]:
    rows = conn.execute(select(column, func.count()).where(where).group_by(column)
                        .order_by(func.count().desc(), column).limit(TOP))
    return [{"value": value, "count": n} for value, n in rows]

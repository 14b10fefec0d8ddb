"""The connection monitor's rows: its baseline (so a restart does not relearn) and its triage cards."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from etcdsec.store.scans import guard
from etcdsec.store.schema import metadata, monitor_conn_baseline, monitor_conn_cards


def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class ConnectionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._card_ids: dict[tuple[str, str], int] = {}
        with guard("creating the monitor tables"), engine.begin() as conn:
            metadata.create_all(conn, tables=[monitor_conn_baseline, monitor_conn_cards])

    def load_baseline(self, limit: int) -> list[dict[str, Any]]:
        """Rows as baseline documents (`Baseline.merge_doc` checks them like a file); at most `limit`+1."""
        with guard("reading the baseline"), self.engine.connect() as conn:
            rows = conn.execute(select(monitor_conn_baseline).limit(limit + 1)).mappings().all()
        return [{"src_ip": r["src_ip"], "port": r["port"], "role": r["role"],
                 "first_seen": _aware(r["first_seen"]).timestamp(), "last_seen": _aware(r["last_seen"]).timestamp(),
                 "count": r["count"], "processes": json.loads(r["processes"] or "[]")} for r in rows]

    def save_baseline(self, entries: list[dict[str, Any]]) -> None:
        """Replaces the stored baseline with `entries` (one transaction: never half a baseline)."""
        rows = [{"src_ip": e["src_ip"], "port": e["port"], "role": e["role"], "first_seen": _ts(e["first_seen"]),
                 "last_seen": _ts(e["last_seen"]), "count": e["count"], "processes": json.dumps(e["processes"])}
                for e in entries]
        with guard("saving the baseline"), self.engine.begin() as conn:
            conn.execute(delete(monitor_conn_baseline))
            if rows:
                conn.execute(insert(monitor_conn_baseline), rows)

    def save_card(self, card: dict[str, Any]) -> None:
        self.save_cards([card])

    def save_cards(self, cards: list[dict[str, Any]]) -> None:
        """Inserts new cards and updates the count and last sighting of known ones, in one transaction
        (a flood of repeat connections is one write per --update-every, not one per card)."""
        with guard("saving triage cards"), self.engine.begin() as conn:
            for card in cards:
                key = (card["src_ip"], card["endpoint"])
                values = {"last_seen": _iso(card["last_seen"]), "count": card["count"], "severity": card["severity"],
                          "card": json.dumps(card, default=str)}
                if key in self._card_ids:
                    conn.execute(update(monitor_conn_cards).where(monitor_conn_cards.c.id == self._card_ids[key])
                                 .values(**values))
                else:
                    result = conn.execute(insert(monitor_conn_cards).values(
                        src_ip=card["src_ip"], endpoint=card["endpoint"], first_seen=_iso(card["first_seen"]),
                        **values))
                    self._card_ids[key] = result.inserted_primary_key[0]

    def cards(self) -> list[dict[str, Any]]:
        with guard("reading triage cards"), self.engine.connect() as conn:
            return [json.loads(r) for r in conn.execute(select(monitor_conn_cards.c.card)).scalars()]


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC

"""The baseline and the cards in the store, SQLite and real PostgreSQL: a restart reads back what was kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from etcdsec.monitor.connections.baseline import Baseline
from etcdsec.monitor.connections.model import Connection, Endpoint, Process
from etcdsec.monitor.connections.tracker import Tracker
from etcdsec.store.engine import open_engine
from etcdsec.store.monitor_connections import ConnectionStore

ENDPOINT = Endpoint("10.0.0.5", 2380, "peer")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "mon.db")
    return request.getfixturevalue("pg_url")


def test_baseline_and_cards_survive_a_restart(db: str) -> None:
    baseline = Baseline()
    baseline.learn(Connection("10.0.0.7", 1, "10.0.0.5", 2380, 100.0, Process(4, "etcd", "etcd")), ENDPOINT)
    store = ConnectionStore(open_engine(db))
    store.save_baseline([e.to_doc() for e in baseline.entries.values()])
    tracker = Tracker(baseline, [ENDPOINT], 0.0, exposure_of=lambda e: {"exposed": False, "severity": "none"})
    card = tracker.observe(Connection("8.8.4.4", 2, "10.0.0.5", 2380, 200.0)).card
    store.save_card(card)
    tracker.observe(Connection("8.8.4.4", 3, "10.0.0.5", 2380, 201.0))
    store.save_card(card)

    again = ConnectionStore(open_engine(db))  # a new process
    restored = Baseline()
    restored.merge_doc({"format": "etcdsec.monitor.connections.baseline/1", "entries": again.load_baseline(10)})
    assert restored.known("10.0.0.7", 2380) and not restored.known("10.0.0.7", 2379)
    assert restored.entries[("10.0.0.7", 2380)].processes == ["etcd (etcd)"]
    cards = again.cards()
    assert len(cards) == 1 and cards[0]["count"] == 2 and cards[0]["severity"] == "critical"  # public, peer

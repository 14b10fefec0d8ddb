"""The events writer refuses a database that holds tables etcdsec did not create, as scans do."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from etcdsec.errors import StoreError
from etcdsec.events.store import EventStoreWriter


def foreign_db(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER)")
    return path


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_the_writer_refuses_and_adds_nothing(tmp_path: Path) -> None:
    db = foreign_db(tmp_path / "app.db")
    with pytest.raises(StoreError, match="tables etcdsec did not create"):
        EventStoreWriter(str(db))
    assert tables(db) == {"invoices"}


def test_a_new_database_gets_the_events_table_only(tmp_path: Path) -> None:
    writer = EventStoreWriter(str(tmp_path / "events.db"))
    writer.close()
    assert tables(tmp_path / "events.db") == {"honeypot_events"}


def test_the_honeypot_command_says_so_in_one_line(tmp_path: Path) -> None:
    db = foreign_db(tmp_path / "app.db")
    proc = subprocess.run([sys.executable, "-m", "etcdsec", "honeypot", "--listen", "127.0.0.1:0",
                           "--db", str(db), "--events", str(tmp_path / "ev.jsonl")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "did not create" in proc.stderr
    assert tables(db) == {"invoices"}

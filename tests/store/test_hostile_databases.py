"""`--db` pointed at something that is not an etcdsec database: the real error, and nothing damaged.

Real SQLite files made by the test, and the real PostgreSQL server of tests/support/postgres.py. Scans
sweep one closed port on a loopback address only.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from etcdsec.events.store import create_tables
from etcdsec.store.engine import PG_SCHEMA, open_engine
from etcdsec.testbed.addresses import free_loopback_ip

CLOSED = "1"  # nothing listens on port 1 of a loopback address


def etcdsec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etcdsec", *args], capture_output=True, text=True, timeout=120)


def scan(db: str, address: str = "127.0.0.1") -> subprocess.CompletedProcess[str]:
    return etcdsec("scan", address, "-p", CLOSED, "--no-probe", "-q", "--db", db)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode in (2, 3), (done.returncode, done.stdout, done.stderr)
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("etcdsec: error: ")
    assert "no scans" not in line and "yet" not in line
    return line


def tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))


@pytest.fixture
def real_db(tmp_path: Path) -> Path:
    path = tmp_path / "real.db"
    assert scan(str(path)).returncode == 0
    return path


def test_random_bytes(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(16384))
    assert "file is not a database" in one_error_line(etcdsec("report", "--db", str(junk)))
    assert "file is not a database" in one_error_line(scan(str(junk)))


def test_truncated_sqlite_file(real_db: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.db"
    cut.write_bytes(real_db.read_bytes()[:3000])
    assert "malformed" in one_error_line(etcdsec("report", "--db", str(cut)))
    assert "malformed" in one_error_line(scan(str(cut)))


def test_closed_postgresql_port() -> None:
    url = f"postgresql://etcdsec@{free_loopback_ip((5432,))}:5432/none"
    assert "Connection refused" in one_error_line(etcdsec("report", "--db", url))
    assert "Connection refused" in one_error_line(scan(url))


def test_malformed_url() -> None:
    url = "postgresql://etcdsec@127.0.0.1:notaport/x"
    assert "notaport" in one_error_line(etcdsec("report", "--db", url))
    assert "notaport" in one_error_line(scan(url))


def test_sqlite_file_of_another_application_is_refused_and_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "crm.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    line = one_error_line(scan(str(other)))
    assert "tables etcdsec did not create (customers, invoices)" in line
    assert tables(other) == ["customers", "invoices"]
    assert "made by another program" in one_error_line(etcdsec("report", "--db", str(other)))


def test_conflicting_scans_table_creates_nothing(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE scans (id INTEGER, what TEXT)")
    line = one_error_line(scan(str(other)))
    assert "table 'scans' that is not etcdsec's" in line
    assert tables(other) == ["scans"]  # no table created before the refusal
    assert "table 'scans' that is not etcdsec's" in one_error_line(etcdsec("report", "--db", str(other)))


def test_a_honeypot_database_still_takes_scans(tmp_path: Path) -> None:
    db = tmp_path / "hp.db"
    engine = open_engine(f"sqlite:///{db}")
    create_tables(engine)  # the honeypot's table, as `etcdsec honeypot --db` makes it
    engine.dispose()
    assert scan(str(db)).returncode == 0
    assert {"scans", "progress", "endpoints", "findings"} <= set(tables(db))


def _pg_tables(url: str) -> set[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')").fetchall()
    return {(a, b) for a, b in rows}


def test_postgresql_keeps_to_its_own_schema(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE public.scans (id INTEGER, what TEXT)")  # another application's
    assert "no scans or honeypot events" in etcdsec("report", "--db", pg_url).stderr  # reading creates nothing
    assert ("public", "scans") in _pg_tables(pg_url) and not any(s == PG_SCHEMA for s, _ in _pg_tables(pg_url))
    done = scan(pg_url)
    assert done.returncode == 0, done.stderr
    found = _pg_tables(pg_url)
    assert {(PG_SCHEMA, t) for t in ("scans", "progress", "endpoints", "findings")} <= found
    assert {t for s, t in found if s == "public"} == {"scans"}  # theirs, untouched
    report = etcdsec("report", "--db", pg_url, "--format", "json")
    assert report.returncode == 0, report.stderr


def test_postgresql_schema_with_foreign_tables_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute(f"CREATE SCHEMA {PG_SCHEMA}")
        conn.execute(f"CREATE TABLE {PG_SCHEMA}.customers (id INTEGER)")
    assert "tables etcdsec did not create (customers)" in one_error_line(scan(pg_url))
    assert _pg_tables(pg_url) == {(PG_SCHEMA, "customers")}


def test_honeypot_events_go_to_the_etcdsec_schema_too(pg_url: str) -> None:
    from etcdsec.events.store import EventStoreWriter

    writer = EventStoreWriter(pg_url, interval=0.05)
    writer({"timestamp": "2026-12-05T03:00:00Z", "eventid": "etcd.request", "src_ip": "127.0.0.9",
            "method": "GET", "path": "/version"})
    writer.close()
    assert writer.written == 1 and writer.errors == 0
    assert (PG_SCHEMA, "honeypot_events") in _pg_tables(pg_url)
    report = etcdsec("report", "--db", pg_url, "--format", "json")
    assert report.returncode == 0, report.stderr
    assert '"honeypot"' in report.stdout

"""The scan store against real SQLite files and a real PostgreSQL server."""

import sqlite3
import threading

import pytest
from sqlalchemy import event

from etcdsec.errors import StoreError
from etcdsec.model import Finding, ProbeResult
from etcdsec.scan.exclusions import build_exclusions
from etcdsec.scan.permutation import Permutation, Shard
from etcdsec.scan.stored import open_shard, stored_targets, target_set
from etcdsec.scan.targets import build_target_set
from etcdsec.store.engine import open_engine
from etcdsec.store.scans import EndpointRow, ScanStore


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "scan.db")
    return request.getfixturevalue("pg_url")


def targets():
    return build_target_set(["127.0.0.0/28"], (2379, 2380), build_exclusions())[0]


def result(ip, port, exposed=False):
    r = ProbeResult(target=f"{ip}:{port}", ip=ip, port=port, reachable=True, is_etcd=exposed,
                    version="3.5.1" if exposed else None, exposed=exposed, severity="critical" if exposed else "none")
    if exposed:
        r.findings.append(Finding("v3-read-open", "critical", "keys readable", "read 3 keys", "enable auth"))
    return r


def new_scan(store, name=None, shard_count=1, seed=5):
    return store.create_or_join(name=name, args={"argv": ["x"]}, targets=stored_targets(targets()), seed=seed,
                                shard_count=shard_count, options={})


def test_batches_round_trip_and_resume_cursor_survives(db):
    store = ScanStore(open_engine(db))
    store.ensure_schema()
    store.ensure_schema()  # idempotent
    scan = new_scan(store)
    assert scan.targets.size == 32
    prog = open_shard(store, scan, Shard(0, 1), steps=40)
    for step in range(7):
        prog.cursor.launch(step)
    for step in (0, 1, 3, 5, 6):
        prog.cursor.finish(step)
    prog.swept, prog.open, prog.etcd, prog.exposed = 3, 2, 1, 1
    store.write_batch(prog.row(), [EndpointRow(result("127.0.0.1", 2379, True), {"org": "Example", "asn": "AS64500"}),
                             EndpointRow(result("127.0.0.2", 2380))])
    # The same endpoint again (a retried batch) is not duplicated.
    store.write_batch(prog.row(), [EndpointRow(result("127.0.0.1", 2379, True))])

    again = open_shard(ScanStore(open_engine(db)), store.get_scan(scan.id), Shard(0, 1), steps=40)
    assert again.cursor.next_step == 7 and again.cursor.in_flight == {2, 4} and again.runs == 2
    assert again.cursor.start_step() == 2 and not again.cursor.is_done(4) and again.cursor.is_done(5)
    assert (again.swept, again.open, again.etcd, again.exposed) == (3, 2, 1, 1)
    got = list(store.endpoint_results(scan.id))
    assert [(r.ip, r.port, r.exposed) for r, _ in got] == [("127.0.0.1", 2379, True), ("127.0.0.2", 2380, False)]
    assert got[0][1] == {"org": "Example", "asn": "AS64500"}
    assert got[0][0].findings[0].id == "v3-read-open"
    assert [f["finding"] for f in store.finding_rows(scan.id)] == ["v3-read-open"]
    assert store.finish_shard(again.row())
    listed = store.list_scans()
    assert listed[0]["status"] == "finished" and listed[0]["counts"]["exposed"] == 1


def test_history_keeps_several_scans(db):
    store = ScanStore(open_engine(db))
    store.ensure_schema()
    first, second = new_scan(store), new_scan(store)
    assert second.id > first.id
    assert store.latest_scan_id() == second.id
    assert [s["id"] for s in store.list_scans()] == [first.id, second.id]


def test_concurrent_shards_join_one_scan_and_cover_it_once(db):
    """Four shard writers, each with its own engine (as separate machines would), at the same time."""
    ScanStore(open_engine(db)).ensure_schema()
    perm = Permutation(targets().size, 11)
    errors = []

    def shard_worker(k):
        try:
            store = ScanStore(open_engine(db))
            store.ensure_schema()
            scan = new_scan(store, name="study", shard_count=4, seed=11)
            shard = Shard(k, 4)
            prog = open_shard(store, scan, shard, perm.steps(shard))
            for step, index in perm.walk(shard):
                ip, port = target_set(scan).target(index)
                prog.cursor.launch(step)
                prog.cursor.finish(step)
                prog.swept += 1
                store.write_batch(prog.row(), [EndpointRow(result(ip, port))])
            store.finish_shard(prog.row())
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=shard_worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    store = ScanStore(open_engine(db))
    scans = store.list_scans()
    assert len(scans) == 1 and scans[0]["status"] == "finished" and scans[0]["counts"]["swept"] == 32
    pairs = [(r.ip, r.port) for r, _ in store.endpoint_results(scans[0]["id"])]
    assert len(pairs) == len(set(pairs)) == 32


def test_joining_with_other_targets_or_seed_is_refused(db):
    store = ScanStore(open_engine(db))
    store.ensure_schema()
    new_scan(store, name="s", shard_count=2, seed=1)
    with pytest.raises(StoreError, match="seed 1 and 2 shards"):
        new_scan(store, name="s", shard_count=2, seed=2)
    other = build_target_set(["127.0.0.0/29"], (2379,), [])[0]
    with pytest.raises(StoreError, match="different targets"):
        store.create_or_join(name="s", args={}, targets=stored_targets(other), seed=1, shard_count=2, options={})


def test_locked_sqlite_is_a_clear_error_and_keeps_earlier_batches(tmp_path):
    path = str(tmp_path / "scan.db")
    store = ScanStore(open_engine(path, busy_timeout=0.3))
    store.ensure_schema()
    scan = new_scan(store)
    prog = open_shard(store, scan, Shard(0, 1), 40)
    store.write_batch(prog.row(), [EndpointRow(result("127.0.0.1", 2379))])
    locker = sqlite3.connect(path)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="database is locked"):
            store.write_batch(prog.row(), [EndpointRow(result("127.0.0.2", 2379))])
    finally:
        locker.rollback()
        locker.close()
    assert [r.ip for r, _ in store.endpoint_results(scan.id)] == ["127.0.0.1"]


def test_full_disk_is_a_clear_error_and_keeps_earlier_batches(tmp_path):
    path = str(tmp_path / "scan.db")
    engine = open_engine(path)
    store = ScanStore(engine)
    store.ensure_schema()
    scan = new_scan(store)
    prog = open_shard(store, scan, Shard(0, 1), 40)
    store.write_batch(prog.row(), [EndpointRow(result("127.0.0.1", 2379))])
    engine.dispose()

    @event.listens_for(engine, "connect")
    def _cap(dbapi_conn, _record):  # SQLite's own "disk full": no page may be added past the cap
        pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    big = [EndpointRow(result(f"127.0.{i // 250}.{i % 250}", 2379)) for i in range(2000)]
    with pytest.raises(StoreError, match="full"):
        store.write_batch(prog.row(), big)
    engine.dispose()
    assert [r.ip for r, _ in ScanStore(open_engine(path)).endpoint_results(scan.id)] == ["127.0.0.1"]


def test_gone_database_is_a_clear_error(tmp_path, pg_server):
    with pytest.raises(StoreError, match="does not exist"):
        open_engine(str(tmp_path / "no" / "such" / "dir" / "x.db"))
    gone = pg_server.url("no_such_database")
    with pytest.raises(StoreError, match="no_such_database"):
        ScanStore(open_engine(gone)).ensure_schema()

"""Several processes writing one scan store: the run fence, the PostgreSQL shard lease, and SQLite
with BEGIN IMMEDIATE under real concurrent writer processes."""

import multiprocessing
import threading
import time

import pytest
from sqlalchemy import func, select

from etcdsec.errors import StoreError
from etcdsec.scan.exclusions import build_exclusions
from etcdsec.scan.permutation import Shard
from etcdsec.scan.stored import open_shard, stored_targets
from etcdsec.scan.targets import build_target_set
from etcdsec.store.engine import open_engine
from etcdsec.store.scans import ScanStore
from etcdsec.store.schema import endpoints, progress, scans
from etcdsec.store.shared import open_shared_engine, shard_lease
from tests.support.shared_writer_child import BATCHES, ROWS, row, write_shard

WRITERS = 4


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "scan.db")
    return request.getfixturevalue("pg_url")


def new_scan(store, shard_count):
    targets = build_target_set(["10.0.0.0/16"], (2379,), build_exclusions())[0]
    return store.create_or_join(name=None, args={}, targets=stored_targets(targets), seed=1,
                                shard_count=shard_count, options={})


def test_a_newer_run_fences_out_the_older_one(db):
    store = ScanStore(open_engine(db))
    store.ensure_schema()
    scan = new_scan(store, 1)
    old = open_shard(store, scan, Shard(0, 1), steps=100)
    old.cursor.launch(0)
    old.cursor.finish(0)
    store.write_batch(old.row(), [row(0, 1)])
    new = open_shard(store, scan, Shard(0, 1), steps=100)  # the task run again while the first run goes on
    old.cursor.launch(1)
    old.cursor.finish(1)
    with pytest.raises(StoreError, match="taken over by a newer run"):
        store.write_batch(old.row(), [row(0, 2)])
    with pytest.raises(StoreError, match="taken over"):
        store.finish_shard(old.row())
    # The old run's last batch rolled back whole: no endpoint without its cursor.
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(endpoints)).scalar() == 1
        assert conn.execute(select(progress.c.next_step)).scalar() == 1
    new.cursor.launch(1)
    new.cursor.finish(1)
    store.write_batch(new.row(), [row(0, 2)])
    assert store.finish_shard(new.row())


def test_shard_lease_makes_a_second_run_wait(pg_url):
    engine = open_shared_engine(pg_url)
    ScanStore(engine).ensure_schema()
    order = []
    with shard_lease(engine, 7, 3):
        def second():
            with shard_lease(engine, 7, 3):
                order.append("second")

        t = threading.Thread(target=second)
        t.start()
        time.sleep(1.0)
        order.append("first done")
    t.join(30)
    assert order == ["first done", "second"]
    with shard_lease(engine, 7, 3), pytest.raises(StoreError, match="still held by another run"), \
            shard_lease(engine, 7, 3, wait_seconds=0.5):
        pass
    with shard_lease(engine, 7, 4):  # another shard: no wait
        pass


def test_several_writer_processes_all_land(db):
    """Four processes write their shards at the same moment; every row and every cursor lands, and the
    last one to finish closes the scan (SQLite: one writer at a time, each waits its turn)."""
    store = ScanStore(open_engine(db))
    store.ensure_schema()
    scan = new_scan(store, WRITERS)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    procs = [ctx.Process(target=write_shard, args=(db, scan.id, WRITERS, k, barrier)) for k in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(endpoints)).scalar() == WRITERS * BATCHES * ROWS
        assert conn.execute(select(func.sum(progress.c.swept))).scalar() == WRITERS * BATCHES * ROWS
        assert conn.execute(select(scans.c.status)).scalar() == "finished"

"""A database that several processes write at once: the shard tasks of one distributed scan.

SQLite allows one writer at a time. Its default deferred transactions can fail outright (no wait)
when a transaction that began by reading then tries to write after another process wrote, so here
every transaction starts with BEGIN IMMEDIATE: it takes the write lock first and waits for it up to
the busy timeout. PostgreSQL needs nothing of the kind.

`shard_lease` (over `advisory_lease`, which the monitor's partitions take too) keeps two runs of
one shard from sweeping at once (a task retried while its first run
still goes on, on a worker the scheduler gave up on): a PostgreSQL advisory lock held on its own
connection, released by the server when that connection ends, however the process ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError

from etcdsec.errors import StoreError
from etcdsec.store.engine import open_engine
from etcdsec.store.scans import guard


def open_shared_engine(path_or_url: str, busy_timeout: float = 60.0) -> Engine:
    engine = open_engine(path_or_url, busy_timeout=busy_timeout)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _no_driver_transactions(dbapi_conn, _record):  # SQLAlchemy's BEGIN below, not pysqlite's
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def shard_lease(engine: Engine, scan_id: int, shard_index: int, wait_seconds: float = 3600.0) -> Iterator[None]:
    """Hold the (scan, shard) lease while the body runs; waits for a run that holds it to end."""
    key = (scan_id << 32) | shard_index  # scan ids start at 1: never the schema lock's key
    with advisory_lease(engine, key, f"shard {shard_index + 1} of scan {scan_id}", wait_seconds):
        yield


@contextmanager
def advisory_lease(engine: Engine, key: int, what: str, wait_seconds: float = 3600.0) -> Iterator[None]:
    """Hold PostgreSQL advisory lock `key` on a connection of its own while the body runs (nothing on
    SQLite: one machine, and its workers end with the command)."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with guard("taking the lease"):
        conn = engine.connect()
    try:
        with guard("taking the lease"):
            conn.execute(text(f"SET lock_timeout = {max(1, int(wait_seconds * 1000))}"))
            try:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            except OperationalError:
                raise StoreError(f"{what} is still held by another run after {wait_seconds:.0f}s") from None
            conn.commit()
        yield
    finally:
        conn.invalidate()  # close the session itself (not back to the pool): that drops the lock
        conn.close()

"""Events into SQLite or PostgreSQL (tables in `etcdsec.store.schema`), off the event loop.

A writer thread drains a short queue in batches (one transaction each). The queue holds at most
two batches: when it is full the emitter waits for the database (back-pressure: the sensor slows
to what the database takes) instead of piling events up in memory, where a crash (kill -9) would
lose them. So a crash loses at most the queue and the batch in flight, about `interval` of events.
A database that stops taking events (a lock held elsewhere, a server gone) is waited for once, up
to `block_s`; after that new events are counted as `dropped` until it writes again (the JSONL file
still has them).
"""

from __future__ import annotations

import functools
import json
import queue
import threading
from typing import Any

import orjson
from sqlalchemy import Engine, Integer, Table, insert
from sqlalchemy.exc import SQLAlchemyError

from etcdsec.errors import StoreError
from etcdsec.store.engine import open_engine
from etcdsec.store.schema import create_schema, honeypot_events

_STOP = object()
MAX_TEXT = 4096
BATCH = 500  # rows per transaction; two batches queue, so a crash loses at most three (and the event in hand)


Columns = tuple[tuple[str, int], ...]


@functools.cache
def table_columns(table: Table) -> Columns:
    """(name, text length bound or 0 for an integer) of every column an event fills; `id` is the
    row's own and `data` holds the whole event."""
    return tuple((c.name, 0 if isinstance(c.type, Integer) else min(getattr(c.type, "length", None) or MAX_TEXT,
                                                                      MAX_TEXT))
                 for c in table.columns if c.name not in ("id", "data"))


def event_row(event: dict[str, Any], columns: Columns) -> dict[str, Any]:
    """The pulled-out columns (integers only when they are ints, text cut to the column) and the event as JSON."""
    row: dict[str, Any] = {}
    for name, bound in columns:
        value = event.get(name)
        if not bound:
            row[name] = value if type(value) is int else None
        else:
            row[name] = None if value is None else str(value)[:bound]
    row["data"] = _data(event)
    return row


def _data(event: dict[str, Any]) -> str:
    """The whole event as JSON; orjson first (this runs for every event, in the writer thread that
    shares the interpreter lock with the sensor), json.dumps for what it cannot encode."""
    try:
        return orjson.dumps(event, default=str).decode()
    except TypeError:
        return json.dumps(event, separators=(",", ":"), default=str)


def row_for(table: Table, event: dict[str, Any]) -> dict[str, Any]:
    """The row of `table` that holds `event`."""
    return event_row(event, table_columns(table))


def create_tables(engine: Engine, table: Table = honeypot_events) -> None:
    """The event table only (a database that holds events need not hold scans), and only in a
    database that holds nothing but etcdsec's tables, as every etcdsec writer asks."""
    try:
        with engine.begin() as conn:
            create_schema(conn, tables=[table])
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot create table {table.name}: {exc.__class__.__name__}: {exc}".splitlines()[0]) from None


class EventStoreWriter:
    def __init__(self, path_or_url: str, batch: int = BATCH, interval: float = 0.25,
                 max_queue: int | None = None, table: Table = honeypot_events, block_s: float = 5.0) -> None:
        self.engine = open_engine(path_or_url)
        self.table = table
        self.columns = table_columns(table)
        create_tables(self.engine, table)
        self.batch, self.interval = batch, interval
        self.queue: queue.Queue[Any] = queue.Queue(max_queue or 2 * batch)
        self.block_s = block_s
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self.waits = 0  # events that waited for room (back-pressure)
        self._stuck = False  # a wait timed out: drop, not wait, until a batch is written again
        self.thread = threading.Thread(target=self._run, name=f"{table.name}-writer", daemon=True)
        self.thread.start()

    def __call__(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
            return
        except queue.Full:
            pass
        if not self._stuck:
            self.waits += 1
            try:
                self.queue.put(event, timeout=self.block_s)
                return
            except queue.Full:
                self._stuck = True
        self.dropped += 1

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is _STOP:
                return
            rows = [event_row(first, self.columns)]
            stop = False
            while len(rows) < self.batch:
                try:
                    item = self.queue.get(timeout=self.interval if len(rows) < 16 else 0.001)
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                rows.append(event_row(item, self.columns))
            self._write(rows)
            if stop:
                return

    def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(self.table), rows)
            self.written += len(rows)
            self._stuck = False
        except SQLAlchemyError:
            self.errors += 1  # the database went away: the JSONL file is the record of truth

    def close(self, timeout: float = 30.0) -> None:
        self.queue.put(_STOP)
        self.thread.join(timeout)
        self.engine.dispose()

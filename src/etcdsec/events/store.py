"""Events into SQLite or PostgreSQL (tables in `etcdsec.store.schema`), off the event loop.

A writer thread drains a bounded queue in batches, so a slow database never stalls the emitter;
when the queue is full new events are counted as `dropped` (the JSONL file still has them).
"""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

from sqlalchemy import Engine, Table, insert
from sqlalchemy.exc import SQLAlchemyError

from etcdsec.errors import StoreError
from etcdsec.store.engine import open_engine
from etcdsec.store.schema import honeypot_events, metadata

COLUMNS = ("timestamp", "eventid", "sensor", "session", "src_ip", "src_port", "dst_ip", "dst_port", "method",
           "path", "status", "user_agent", "grpc_method", "token")
_STOP = object()


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    row = {name: event.get(name) for name in COLUMNS}
    for name in ("method", "path", "user_agent", "grpc_method", "token"):
        if row[name] is not None:
            row[name] = str(row[name])[:4096]
    row["status"] = event.get("status") if isinstance(event.get("status"), int) else None
    row["data"] = json.dumps(event, separators=(",", ":"), default=str)
    return row


def create_tables(engine: Engine, table: Table = honeypot_events) -> None:
    """The event table only: a database that holds events need not hold scans."""
    try:
        metadata.create_all(engine, tables=[table])
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot create table {table.name}: {exc.__class__.__name__}: {exc}".splitlines()[0]) from None


class EventStoreWriter:
    def __init__(self, path_or_url: str, batch: int = 1000, interval: float = 0.25,
                 max_queue: int = 200_000, table: Table = honeypot_events) -> None:
        self.engine = open_engine(path_or_url)
        self.table = table
        create_tables(self.engine, table)
        self.batch, self.interval = batch, interval
        self.queue: queue.Queue[Any] = queue.Queue(max_queue)
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self.thread = threading.Thread(target=self._run, name=f"{table.name}-writer", daemon=True)
        self.thread.start()

    def __call__(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is _STOP:
                return
            rows = [event_row(first)]
            stop = False
            while len(rows) < self.batch:
                try:
                    item = self.queue.get(timeout=self.interval if len(rows) < 16 else 0.001)
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                rows.append(event_row(item))
            self._write(rows)
            if stop:
                return

    def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(self.table), rows)
            self.written += len(rows)
        except SQLAlchemyError:
            self.errors += 1  # the database went away: the JSONL file is the record of truth

    def close(self, timeout: float = 30.0) -> None:
        self.queue.put(_STOP)
        self.thread.join(timeout)
        self.engine.dispose()

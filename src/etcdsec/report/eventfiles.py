"""`--events FILE...`: JSON-lines event files (honeypot and monitor) loaded into a scratch SQLite
database, so the very queries that sum up a database's events sum up the files too, over every
line and in bounded memory however big the files are.

Every line is hostile until read: a line that is not a JSON object with a string `eventid` and
`timestamp`, or longer than MAX_LINE, is counted as broken and skipped; a field of the wrong type
is dropped (the whole event stays in `data`, re-encoded by us).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Engine, Table, create_engine, insert

from etcdsec.errors import UserError
from etcdsec.events.store import row_for
from etcdsec.report.honeypot import ev
from etcdsec.report.monitor import MONITOR_PREFIX, mon

MAX_LINE = 1 << 20  # the sensor's own lines are a few KiB; a longer one is not one of them
BATCH = 5000
INTEGER_COLUMNS = ("src_port", "dst_port", "status")


@dataclass
class FileCounts:
    path: str
    lines: int = 0
    broken: int = 0


@dataclass
class LoadedEvents:
    engine: Engine
    files: list[FileCounts] = field(default_factory=list)

    @property
    def broken(self) -> int:
        return sum(f.broken for f in self.files)

    def describe(self) -> dict[str, Any]:
        return {"files": [{"path": f.path, "lines": f.lines, "broken_lines": f.broken} for f in self.files],
                "broken_lines": self.broken}


@contextmanager
def loaded_events(paths: list[str]) -> Iterator[LoadedEvents]:
    """The events of `paths` in a scratch database that is deleted afterwards."""
    handles = []
    for path in paths:  # every file must open before any work is done: a typo is one clear error
        try:
            handles.append(open(path, "rb"))  # noqa: SIM115 (closed below)
        except OSError as exc:
            for h in handles:
                h.close()
            raise UserError(f"cannot read events file {path}: {exc.strerror or exc}") from None
    with tempfile.TemporaryDirectory(prefix="etcdsec-report-") as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'events.db'}")
        try:
            ev.create(engine)
            mon.create(engine)
            loaded = LoadedEvents(engine)
            for path, handle in zip(paths, handles, strict=True):
                with handle:
                    loaded.files.append(_load(engine, path, handle))
            yield loaded
        finally:
            for h in handles:
                h.close()
            engine.dispose()


def _load(engine: Engine, path: str, handle: IO[bytes]) -> FileCounts:
    counts = FileCounts(path)
    batches: dict[Table, list[dict[str, Any]]] = {ev: [], mon: []}
    with engine.begin() as conn:
        for line in _lines(handle, counts):
            parsed = parse_event_line(line)
            if parsed is None:
                counts.broken += 1
                continue
            table, row = parsed
            batch = batches[table]
            batch.append(row)
            if len(batch) >= BATCH:
                conn.execute(insert(table), batch)
                batch.clear()
        for table, batch in batches.items():
            if batch:
                conn.execute(insert(table), batch)
    return counts


def _lines(handle: IO[bytes], counts: FileCounts) -> Iterator[bytes]:
    """Lines of at most MAX_LINE bytes; a longer one is counted broken and skipped without holding it."""
    while True:
        line = handle.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            counts.lines += 1
            counts.broken += 1
            while line and not line.endswith(b"\n"):
                line = handle.readline(MAX_LINE + 1)
            continue
        if not line.strip():
            continue
        counts.lines += 1
        yield line


def parse_event_line(line: bytes) -> tuple[Table, dict[str, Any]] | None:
    """The table (the monitor's or the honeypot's, as the sensors write them) and row of one line,
    or None when the line is not an event."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("eventid"), str) \
            or not isinstance(event.get("timestamp"), str):
        return None
    table = mon if event["eventid"].startswith(MONITOR_PREFIX) else ev
    row = row_for(table, event)
    for name, value in row.items():
        if name in INTEGER_COLUMNS:
            row[name] = value if isinstance(value, int) and not isinstance(value, bool) \
                and -(1 << 62) < value < (1 << 62) else None
        elif name != "data" and value is not None and not isinstance(value, str):
            row[name] = None
        elif isinstance(value, str) and name != "data":
            row[name] = value[:4096]
    return table, row

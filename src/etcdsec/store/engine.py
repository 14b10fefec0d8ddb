"""Open a database from what the user typed: a file path (SQLite) or a URL (PostgreSQL, SQLite)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event

from etcdsec.errors import StoreError

DEFAULT_DB = "etcdsec.db"


def database_url(path_or_url: str) -> str:
    """`scan.db` -> `sqlite:///scan.db`; `postgresql://...` -> `postgresql+psycopg://...`."""
    text = path_or_url.strip()
    if not text:
        raise StoreError("empty database path")
    if text.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if "://" in text:
        return text
    parent = Path(text).expanduser().resolve().parent
    if not parent.is_dir():
        raise StoreError(f"database directory does not exist: {parent}")
    return f"sqlite:///{Path(text).expanduser()}"


def open_engine(path_or_url: str, busy_timeout: float = 30.0) -> Engine:
    """`busy_timeout`: seconds a SQLite writer waits for another writer's lock before failing."""
    url = database_url(path_or_url)
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": busy_timeout})

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):  # WAL: readers never block the writer
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

            return engine
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    except Exception as exc:  # bad URL, missing driver
        raise StoreError(f"cannot open database {path_or_url!r}: {exc}") from None

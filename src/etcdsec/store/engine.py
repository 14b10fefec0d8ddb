"""Open a database from what the user typed: a file path (SQLite) or a URL (PostgreSQL, SQLite).

On PostgreSQL etcdsec keeps to its own schema, `etcdsec` (PG_SCHEMA): every connection's
search_path is that schema alone, so etcdsec neither reads nor creates tables anywhere else in the
database. A writer creates the schema on first connection; a reader (`report`) never creates it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, make_url
from sqlalchemy.exc import SQLAlchemyError

from etcdsec.errors import StoreError

DEFAULT_DB = "etcdsec.db"
PG_SCHEMA = "etcdsec"
SCHEMA_LOCK = 0x65746364  # "etcd": PostgreSQL advisory lock serialising schema and table creation


def shown_database(path_or_url: str) -> str:
    """The database as printed to people: a path as given, a URL never with its password."""
    if "://" not in path_or_url:
        return path_or_url
    try:
        return make_url(database_url(path_or_url)).set(drivername="postgresql").render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: whoever opens it says what is wrong
        return "the database"


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


def open_engine(path_or_url: str, busy_timeout: float = 30.0, read_only: bool = False) -> Engine:
    """`busy_timeout`: seconds a SQLite writer waits for another writer's lock before failing.

    `read_only`: on PostgreSQL, do not create etcdsec's schema when it is missing.
    """
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
        engine = create_engine(url, pool_pre_ping=True,
                               connect_args={"connect_timeout": 10, "options": f"-c search_path={PG_SCHEMA}"})
        if engine.dialect.name == "postgresql" and not read_only:
            event.listen(engine, "connect", _create_pg_schema)
        return engine
    except Exception as exc:  # bad URL, missing driver
        raise StoreError(f"cannot open database {path_or_url!r}: {_first_line(exc)}") from None


def _create_pg_schema(dbapi_conn: Any, _record: Any) -> None:
    """etcdsec's schema, created once (checked first: CREATE needs a privilege that using it does not)."""
    with dbapi_conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (PG_SCHEMA,))
        if cur.fetchone() is None:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
    dbapi_conn.commit()


def table_names(engine: Engine) -> set[str]:
    """The tables etcdsec can see (its schema on PostgreSQL); StoreError saying why when the database
    cannot be read at all: not a database, a damaged file, a refused connection, a bad URL."""
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    except (SQLAlchemyError, OSError, ValueError) as exc:
        raise StoreError(f"cannot read database {engine.url.render_as_string(hide_password=True)}: "
                         f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__

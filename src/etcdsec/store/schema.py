"""Tables of the scan store. One schema for SQLite and PostgreSQL (SQLAlchemy Core).

scans      one row per scan (shards of one scan share it), with its arguments and target set
progress   one row per (scan, shard): the resume cursor and running counts
endpoints  one row per open (address, port) probed: indexed columns + the full ProbeResult JSON
findings   one row per finding of an endpoint, for queries like "every open v2 guest"
honeypot_events  one row per honeypot event (written by `etcdsec.events.store`)
monitor_observations  one row per probe of a watched target (`etcdsec monitor exposure`)
monitor_events  one row per monitor event (both modes; written by `etcdsec.events.store`)

`create_schema` makes them in one transaction, and only in a database that holds nothing else: a
SQLite file with other applications' tables, or a table of ours with other columns, is refused.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    text,
)

from etcdsec.errors import StoreError
from etcdsec.store.engine import SCHEMA_LOCK

SCHEMA_VERSION = 1

metadata = MetaData()

scans = Table(
    "scans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), unique=True),  # shards join a scan by name
    Column("started", DateTime(timezone=True), nullable=False),
    Column("finished", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),  # running | finished
    Column("args", Text, nullable=False),  # JSON: the command line that started it
    Column("targets", Text, nullable=False),  # JSON: TargetSet.to_json(), so resume needs no inputs
    Column("fingerprint", String(64), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("ports", String(200), nullable=False),
    Column("shard_count", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),  # (address, port) pairs in the target set
    Column("addresses", BigInteger, nullable=False),
    Column("options", Text, nullable=False),  # JSON: probe options (timeouts...) the shards share
    Column("counts", Text),  # JSON totals, written when the last shard finishes
    Column("schema_version", Integer, nullable=False, default=SCHEMA_VERSION),
)

progress = Table(
    "progress",
    metadata,
    Column("scan_id", Integer, ForeignKey("scans.id", ondelete="CASCADE"), primary_key=True),
    Column("shard_index", Integer, primary_key=True, autoincrement=False),
    Column("shard_count", Integer, nullable=False),
    Column("steps", BigInteger, nullable=False),  # permutation steps this shard owns
    Column("next_step", BigInteger, nullable=False),  # every step below it was launched
    Column("in_flight", Text, nullable=False),  # JSON list: launched steps not finished (redone on resume)
    Column("swept", BigInteger, nullable=False),  # (address, port) pairs tried
    Column("open", BigInteger, nullable=False),
    Column("etcd", BigInteger, nullable=False),
    Column("exposed", BigInteger, nullable=False),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
    Column("finished", DateTime(timezone=True)),
    Column("runs", Integer, nullable=False),  # 1 + times resumed
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("scan_id", Integer, ForeignKey("scans.id", ondelete="CASCADE"), nullable=False),
    Column("shard_index", Integer, nullable=False),
    Column("ip", String(45), nullable=False),
    Column("port", Integer, nullable=False),
    Column("probed_at", DateTime(timezone=True), nullable=False),
    Column("reachable", Boolean, nullable=False),
    Column("is_etcd", Boolean),
    Column("exposed", Boolean, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("severity_rank", SmallInteger, nullable=False),
    Column("version", String(64)),
    Column("cluster_id", String(64)),
    Column("scheme", String(8)),
    Column("client_cert_required", Boolean, nullable=False),
    Column("v3_auth", Boolean),
    Column("org", String(300)),
    Column("asn", String(32)),
    Column("meta", Text),  # JSON: import fields (Shodan org/asn/isp/location...)
    Column("result", Text, nullable=False),  # JSON: ProbeResult.to_dict()
    UniqueConstraint("scan_id", "ip", "port", name="uq_endpoint_per_scan"),
    Index("ix_endpoints_scan_etcd", "scan_id", "is_etcd"),
    Index("ix_endpoints_scan_exposed", "scan_id", "exposed", "severity_rank"),
    Index("ix_endpoints_ip", "ip"),
    Index("ix_endpoints_version", "version"),
)

findings = Table(
    "findings",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("scan_id", Integer, ForeignKey("scans.id", ondelete="CASCADE"), nullable=False),
    Column("ip", String(45), nullable=False),
    Column("port", Integer, nullable=False),
    Column("finding", String(100), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("title", Text, nullable=False),
    UniqueConstraint("scan_id", "ip", "port", "finding", name="uq_finding_per_endpoint"),
    Index("ix_findings_scan_finding", "scan_id", "finding"),
)

# One row per honeypot event; the columns reports group by are pulled out, everything else is in `data`.
honeypot_events = Table(
    "honeypot_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("timestamp", String(32), nullable=False, index=True),
    Column("eventid", String(64), nullable=False, index=True),
    Column("sensor", String(255)),
    Column("session", String(32), index=True),
    Column("src_ip", String(64), index=True),
    Column("src_port", Integer),
    Column("dst_ip", String(64)),
    Column("dst_port", Integer),
    Column("method", String(32)),
    Column("path", Text),
    Column("status", Integer),
    Column("user_agent", Text),
    Column("grpc_method", String(255)),
    Column("token", String(255)),
    Column("data", Text, nullable=False),
)

# One row per probe of a watched target. `baseline` marks the rows later ones are compared with
# (every reachable one, and an unreachable one once it counted as down): a restarted monitor
# takes the newest baseline row and the misses after it, so no change is lost across a restart.
monitor_observations = Table(
    "monitor_observations",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("target", String(300), nullable=False),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Column("reachable", Boolean, nullable=False),
    Column("exposed", Boolean, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("findings", Text, nullable=False),  # JSON list of finding ids, sorted
    Column("version", String(64)),
    Column("scheme", String(8)),
    Column("client_cert_required", Boolean, nullable=False),
    Column("v3_auth", Boolean),
    Column("cert_id", String(64)),  # sha256 of the certificate's subject, issuer, expiry and names
    Column("cert_not_after", String(40)),
    Column("cert_expiring", Boolean, nullable=False),
    Column("error", Text),
    Column("baseline", Boolean, nullable=False),
    Column("result", Text),  # JSON ProbeResult, kept on baseline rows that changed something
    Index("ix_monitor_observations_target", "target", "id"),
)

# Monitor events; the columns queries filter on are pulled out, the whole event is in `data`.
monitor_events = Table(
    "monitor_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("timestamp", String(32), nullable=False, index=True),
    Column("eventid", String(64), nullable=False, index=True),
    Column("sensor", String(255)),
    Column("target", String(300), index=True),
    Column("src_ip", String(64), index=True),
    Column("dst_ip", String(64)),
    Column("dst_port", Integer),
    Column("data", Text, nullable=False),
)

# --- monitor connections: the learnt baseline and the triage cards -----------------------------------
monitor_conn_baseline = Table(
    "monitor_conn_baseline",
    metadata,
    Column("src_ip", String(45), primary_key=True),
    Column("port", Integer, primary_key=True, autoincrement=False),
    Column("role", String(8), nullable=False),  # client | peer
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("processes", Text, nullable=False),  # JSON list of "name (user)" of local clients
)

monitor_conn_cards = Table(
    "monitor_conn_cards",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("src_ip", String(45), nullable=False),
    Column("endpoint", String(60), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("card", Text, nullable=False),  # JSON: the whole triage card
    UniqueConstraint("src_ip", "endpoint", "first_seen", name="uq_monitor_conn_card"),
)


# Tables etcdsec writes outside this module (none: every table is declared here).
OTHER_ETCDSEC_TABLES: frozenset[str] = frozenset()


def foreign_tables(names: set[str]) -> list[str]:
    """Tables etcdsec did not create (SQLite's own `sqlite_*` tables aside)."""
    ours = set(metadata.tables) | OTHER_ETCDSEC_TABLES
    return sorted(n for n in names if n not in ours and not n.startswith("sqlite_"))


def create_schema(conn: Connection, tables: list[Table] | None = None) -> None:
    """etcdsec's tables (all, or only `tables`), all or none, in a database holding nothing else
    (StoreError otherwise).

    SQLite runs DDL outside transactions unless one is begun explicitly: BEGIN IMMEDIATE makes the
    check and the CREATEs one transaction, and makes concurrent creators wait for each other.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK})
    problem = schema_problem(conn, allow_foreign=False)
    if problem:
        raise StoreError(problem)
    metadata.create_all(conn, tables=tables)


def schema_problem(conn: Connection, allow_foreign: bool = True) -> str | None:
    """Why this database is not one etcdsec may use: a table of ours with other columns, or (unless
    `allow_foreign`) tables etcdsec did not create. None when it is fine."""
    inspector = inspect(conn)
    names = set(inspector.get_table_names())
    foreign = foreign_tables(names)
    if foreign and not allow_foreign:
        shown = ", ".join(foreign[:10]) + (f" and {len(foreign) - 10} more" if len(foreign) > 10 else "")
        return (f"the database holds tables etcdsec did not create ({shown}); "
                "give --db a new file (or, on PostgreSQL, a database where etcdsec may use its own schema)")
    for name in sorted(names & set(metadata.tables)):
        have = {c["name"] for c in inspector.get_columns(name)}
        missing = [c.name for c in metadata.tables[name].columns if c.name not in have]
        if missing:
            return (f"the database has a table {name!r} that is not etcdsec's (no column "
                    f"{', '.join(missing[:5])}); give --db a new file")
    return None

"""Tables of the scan store. One schema for SQLite and PostgreSQL (SQLAlchemy Core).

scans      one row per scan (shards of one scan share it), with its arguments and target set
progress   one row per (scan, shard): the resume cursor and running counts
endpoints  one row per open (address, port) probed: indexed columns + the full ProbeResult JSON
findings   one row per finding of an endpoint, for queries like "every open v2 guest"
honeypot_events  one row per honeypot event (written by `etcdsec.events.store`)
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
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
)

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

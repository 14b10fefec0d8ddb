"""Write and read scans: create or join a scan, per-shard progress, batched endpoint writes.

Each batch (endpoints, their findings and the shard's resume cursor) is one transaction, so after a
crash the store and the cursor agree: what was written is never probed again, and nothing else is
taken as done. Inserts ignore rows already present, so two writers never duplicate an endpoint.

The store deals in plain values (a target set's JSON, a shard's index and count, its cursor as
`next_step` and `in_flight`): `scan/stored.py` builds the scan's own types from them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from etcdsec.errors import StoreError
from etcdsec.model import ProbeResult, Severity
from etcdsec.store.schema import create_schema, endpoints, findings, progress, scans


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text_ = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return text_


@contextmanager
def guard(action: str) -> Iterator[None]:
    """Database trouble (locked, gone, disk full, bad URL) becomes one clear StoreError line."""
    try:
        yield
    except StoreError:
        raise
    except (SQLAlchemyError, OSError) as exc:
        raise StoreError(f"database error while {action}: {_reason(exc)}") from None


@dataclass(frozen=True)
class StoredTargets:
    """What the store keeps of a scan's target set: its JSON and the figures read without it."""

    json: dict[str, Any]
    fingerprint: str  # same targets, same fingerprint: shards joining one scan must agree on it
    ports: tuple[int, ...]
    size: int  # (address, port) pairs
    address_count: int  # addresses in the ranges


@dataclass
class ScanInfo:
    id: int
    name: str | None
    seed: int
    shard_count: int
    targets: StoredTargets
    args: dict[str, Any]
    options: dict[str, Any]
    status: str
    started: dt.datetime
    finished: dt.datetime | None


@dataclass(frozen=True)
class ShardRow:
    """One shard's saved progress: the resume cursor (`next_step`, `in_flight`) and the counts."""

    scan_id: int
    shard_index: int  # 0-based
    shard_count: int
    steps: int
    next_step: int = 0
    in_flight: frozenset[int] = frozenset()
    swept: int = 0
    open: int = 0
    etcd: int = 0
    exposed: int = 0
    runs: int = 1  # the run that opened the shard: a write from an older run is refused
    finished: bool = False


@dataclass
class EndpointRow:
    result: ProbeResult
    meta: dict[str, Any] | None = None


class ScanStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    # --- schema ------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        with guard("creating the schema"), self.engine.begin() as conn:
            create_schema(conn)  # one transaction; refuses a database holding other tables

    def _insert(self, table: Any) -> Any:
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        return dialect_insert(table).on_conflict_do_nothing()

    # --- scans -------------------------------------------------------------------------------
    def create_or_join(self, *, name: str | None, args: dict[str, Any], targets: StoredTargets, seed: int,
                       shard_count: int, options: dict[str, Any]) -> ScanInfo:
        """A new scan, or the existing scan called `name` (then its targets and shards must match)."""
        if name is not None:
            existing = self.find_by_name(name)
            if existing is not None:
                return self._check_join(existing, targets, seed, shard_count)
        values = dict(
            name=name, started=now(), status="running", args=json.dumps(args), targets=json.dumps(targets.json),
            fingerprint=targets.fingerprint, seed=seed, ports=",".join(map(str, targets.ports)),
            shard_count=shard_count, size=targets.size, addresses=targets.address_count,
            options=json.dumps(options),
        )
        try:
            with guard("creating the scan"), self.engine.begin() as conn:
                scan_id = conn.execute(scans.insert().values(**values)).inserted_primary_key[0]  # type: ignore[index]
        except StoreError as exc:
            # Another shard created the same name first: join it.
            if name is not None and "unique" in str(exc).lower():
                existing = self.find_by_name(name)
                if existing is not None:
                    return self._check_join(existing, targets, seed, shard_count)
            raise
        info = self.get_scan(int(scan_id))
        assert info is not None
        return info

    def _check_join(self, info: ScanInfo, targets: StoredTargets, seed: int, shard_count: int) -> ScanInfo:
        if info.targets.fingerprint != targets.fingerprint:
            raise StoreError(f"scan {info.name!r} (id {info.id}) exists with different targets or ports")
        if info.seed != seed or info.shard_count != shard_count:
            raise StoreError(
                f"scan {info.name!r} (id {info.id}) exists with seed {info.seed} and {info.shard_count} shards; "
                f"this run has seed {seed} and {shard_count} shards"
            )
        return info

    def _scan_from_row(self, row: Any) -> ScanInfo:
        return ScanInfo(
            id=row.id, name=row.name, seed=row.seed, shard_count=row.shard_count,
            targets=_stored_targets(row), args=json.loads(row.args),
            options=json.loads(row.options), status=row.status, started=row.started, finished=row.finished,
        )

    def get_scan(self, scan_id: int) -> ScanInfo | None:
        with guard("reading the scan"), self.engine.connect() as conn:
            row = conn.execute(select(scans).where(scans.c.id == scan_id)).first()
        return self._scan_from_row(row) if row else None

    def find_by_name(self, name: str) -> ScanInfo | None:
        with guard("reading the scan"), self.engine.connect() as conn:
            row = conn.execute(select(scans).where(scans.c.name == name)).first()
        return self._scan_from_row(row) if row else None

    def latest_scan_id(self, unfinished_only: bool = False) -> int | None:
        query = select(func.max(scans.c.id))
        if unfinished_only:
            query = query.where(scans.c.status != "finished")
        with guard("reading scans"), self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def list_scans(self) -> list[dict[str, Any]]:
        with guard("listing scans"), self.engine.connect() as conn:
            rows = conn.execute(select(scans).order_by(scans.c.id)).all()
        return [
            {"id": r.id, "name": r.name, "started": r.started, "finished": r.finished, "status": r.status,
             "ports": r.ports, "addresses": r.addresses, "shards": r.shard_count,
             "counts": json.loads(r.counts) if r.counts else None}
            for r in rows
        ]

    # --- shards ------------------------------------------------------------------------------
    def open_shard(self, scan_id: int, shard_index: int, shard_count: int, steps: int) -> ShardRow:
        """This shard's progress: a fresh row, or the saved cursor of an earlier, interrupted run."""
        key = (progress.c.scan_id == scan_id) & (progress.c.shard_index == shard_index)
        with guard("opening the shard"), self.engine.begin() as conn:
            stamp = now()
            conn.execute(self._insert(progress).values(
                scan_id=scan_id, shard_index=shard_index, shard_count=shard_count, steps=steps, next_step=0,
                in_flight="[]", swept=0, open=0, etcd=0, exposed=0, started=stamp, updated=stamp, runs=0,
            ))
            conn.execute(update(progress).where(key).values(runs=progress.c.runs + 1, updated=stamp))
            row = conn.execute(select(progress).where(key)).one()
        return ShardRow(
            scan_id=scan_id, shard_index=shard_index, shard_count=shard_count, steps=row.steps,
            next_step=row.next_step, in_flight=frozenset(json.loads(row.in_flight)), swept=row.swept,
            open=row.open, etcd=row.etcd, exposed=row.exposed, runs=row.runs, finished=row.finished is not None,
        )

    def shard_finished(self, scan_id: int, shard_index: int) -> bool:
        key = (progress.c.scan_id == scan_id) & (progress.c.shard_index == shard_index)
        with guard("reading progress"), self.engine.connect() as conn:
            return conn.execute(select(progress.c.finished).where(key)).scalar() is not None

    def shard_states(self, scan_id: int) -> list[dict[str, Any]]:
        with guard("reading progress"), self.engine.connect() as conn:
            rows = conn.execute(select(progress).where(progress.c.scan_id == scan_id)
                                .order_by(progress.c.shard_index)).all()
        return [dict(r._mapping) for r in rows]

    # --- results -----------------------------------------------------------------------------
    def write_batch(self, prog: ShardRow, rows: list[EndpointRow]) -> None:
        """Endpoints, their findings and the shard's cursor, all in one transaction."""
        stamp = now()
        endpoint_values, finding_values = [], []
        for row in rows:
            r = row.result
            endpoint_values.append(_endpoint_values(prog, r, row.meta, stamp))
            for f in r.findings:
                finding_values.append(dict(scan_id=prog.scan_id, ip=r.ip or r.target, port=r.port or 0,
                                           finding=f.id, severity=f.severity, title=f.title))
        with guard("writing results"), self.engine.begin() as conn:
            if endpoint_values:
                conn.execute(self._insert(endpoints), endpoint_values)
            if finding_values:
                conn.execute(self._insert(findings), finding_values)
            self._save_progress(conn, prog, stamp)

    def _save_progress(self, conn: Connection, prog: ShardRow, stamp: dt.datetime) -> None:
        # `runs` fences the write: once a newer run has opened the shard (a task retried while the
        # old one still ran), the old run's batches roll back instead of moving the cursor.
        saved = conn.execute(
            update(progress)
            .where((progress.c.scan_id == prog.scan_id) & (progress.c.shard_index == prog.shard_index)
                   & (progress.c.runs == prog.runs))
            .values(next_step=prog.next_step, in_flight=json.dumps(sorted(prog.in_flight)),
                    swept=prog.swept, open=prog.open, etcd=prog.etcd, exposed=prog.exposed, updated=stamp,
                    finished=stamp if prog.finished else None)
        )
        if saved.rowcount == 0:
            shard = f"{prog.shard_index + 1}/{prog.shard_count}"
            raise StoreError(f"scan {prog.scan_id} shard {shard} was taken over by a newer run; this run stops")

    def finish_shard(self, prog: ShardRow) -> bool:
        """Mark the shard done; when every shard of the scan is, close the scan. True if it closed."""
        prog = replace(prog, finished=True)
        with guard("finishing the scan"), self.engine.begin() as conn:
            stamp = now()
            # Lock the scan row first: two shards finishing at once must not both miss the other's row.
            shard_count = conn.execute(
                select(scans.c.shard_count).where(scans.c.id == prog.scan_id).with_for_update()
            ).scalar_one()
            self._save_progress(conn, prog, stamp)
            done = conn.execute(
                select(func.count(), func.sum(progress.c.swept), func.sum(progress.c.open),
                       func.sum(progress.c.etcd), func.sum(progress.c.exposed))
                .where((progress.c.scan_id == prog.scan_id) & progress.c.finished.is_not(None))
            ).one()
            if done[0] < shard_count:
                return False
            counts = {"swept": int(done[1] or 0), "open": int(done[2] or 0), "etcd": int(done[3] or 0),
                      "exposed": int(done[4] or 0)}
            conn.execute(update(scans).where(scans.c.id == prog.scan_id)
                         .values(status="finished", finished=stamp, counts=json.dumps(counts)))
            return True

    def endpoints_after(self, scan_id: int, after_id: int, limit: int = 5000) -> list[tuple[int, int, str]]:
        """(row id, shard, result JSON) of stored endpoints with a larger id, in id order."""
        query = (select(endpoints.c.id, endpoints.c.shard_index, endpoints.c.result)
                 .where((endpoints.c.scan_id == scan_id) & (endpoints.c.id > after_id))
                 .order_by(endpoints.c.id).limit(limit))
        with guard("reading endpoints"), self.engine.connect() as conn:
            return [(r.id, r.shard_index, r.result) for r in conn.execute(query)]

    def endpoint_results(self, scan_id: int) -> Iterator[tuple[ProbeResult, dict[str, Any]]]:
        """Every stored endpoint of a scan, as results again (streamed, in address order)."""
        query = (select(endpoints.c.result, endpoints.c.meta).where(endpoints.c.scan_id == scan_id)
                 .order_by(endpoints.c.ip, endpoints.c.port))
        with guard("reading endpoints"), self.engine.connect() as conn:
            for raw, meta in conn.execution_options(stream_results=True, yield_per=1000).execute(query):
                yield ProbeResult.from_dict(json.loads(raw)), (json.loads(meta) if meta else {})

    def finding_rows(self, scan_id: int) -> list[dict[str, Any]]:
        query = (select(findings.c.ip, findings.c.port, findings.c.finding, findings.c.severity, findings.c.title)
                 .where(findings.c.scan_id == scan_id).order_by(findings.c.ip, findings.c.port, findings.c.finding))
        with guard("reading findings"), self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


def _stored_targets(row: Any) -> StoredTargets:
    raw = json.loads(row.targets)
    return StoredTargets(raw, row.fingerprint, tuple(raw["ports"]), row.size, row.addresses)


def _endpoint_values(prog: ShardRow, r: ProbeResult, meta: dict[str, Any] | None,
                     stamp: dt.datetime) -> dict[str, Any]:
    meta = meta or {}
    try:
        rank = int(Severity.parse(r.severity))
    except ValueError:
        rank = 0
    asn = meta.get("asn")
    return dict(
        scan_id=prog.scan_id, shard_index=prog.shard_index, ip=r.ip or r.target, port=r.port or 0,
        probed_at=stamp, reachable=r.reachable, is_etcd=r.is_etcd, exposed=r.exposed, severity=r.severity,
        severity_rank=rank, version=r.version, cluster_id=r.cluster_id, scheme=r.scheme,
        client_cert_required=r.client_cert_required, v3_auth=r.auth.v3_enabled,
        org=(str(meta["org"])[:300] if meta.get("org") else None), asn=str(asn)[:32] if asn else None,
        meta=json.dumps(meta) if meta else None, result=json.dumps(r.to_dict()),
    )


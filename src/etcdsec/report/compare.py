"""`--compare SCAN_ID`: what changed between an earlier scan and this one, endpoint by endpoint
(address, port), counted in the database: newly exposed, no longer exposed, etcd gone or new,
version changes. Examples are capped."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, select
from sqlalchemy.orm import aliased

from etcdsec.errors import UserError
from etcdsec.model import Severity
from etcdsec.store.scans import ScanStore, guard
from etcdsec.store.schema import endpoints

EXAMPLES = 50


def compare_scans(store: ScanStore, scan_id: int, earlier_id: int) -> dict[str, Any]:
    if earlier_id == scan_id:
        raise UserError(f"--compare {earlier_id} is the scan being reported; give an earlier scan's id")
    earlier, scan = store.get_scan(earlier_id), store.get_scan(scan_id)
    if earlier is None:
        raise UserError(f"no scan {earlier_id} in this database (etcdsec report --list shows them)")
    assert scan is not None
    with guard("comparing scans"), store.engine.connect() as conn:
        sides = {"newly_exposed": (scan_id, earlier_id, "exposed"),
                 "no_longer_exposed": (earlier_id, scan_id, "exposed"),
                 "new_etcd": (scan_id, earlier_id, "etcd"), "gone": (earlier_id, scan_id, "etcd")}
        counts: dict[str, int] = {}
        examples: dict[str, list[dict[str, Any]]] = {}
        for change, (side, other, what) in sides.items():
            counts[change], examples[change] = _only_on(conn, side, other, what)
        return {
            "earlier": {"id": earlier.id, "name": earlier.name, "started": str(earlier.started)},
            "same_targets": earlier.targets.fingerprint == scan.targets.fingerprint,
            "counts": counts,
            "version_changes": _version_changes(conn, scan_id, earlier_id),
            "examples": examples,
        }


def _only_on(conn: Connection, side: int, other: int, what: str) -> tuple[int, list[dict[str, Any]]]:
    """Endpoints that are etcd (or exposed etcd) in scan `side` and were not at the same (address, port)
    in scan `other`: their number and the most severe examples."""
    a, b = aliased(endpoints, name="a"), aliased(endpoints, name="b")
    joined = a.outerjoin(b, and_(b.c.scan_id == other, b.c.ip == a.c.ip, b.c.port == a.c.port))

    def has(t: Any) -> Any:
        base = t.c.reachable & t.c.is_etcd.is_(True)
        return base & t.c.exposed.is_(True) if what == "exposed" else base

    where = (a.c.scan_id == side) & has(a) & ~func.coalesce(has(b), False)
    count = int(conn.execute(select(func.count()).select_from(joined).where(where)).scalar_one())
    rows = conn.execute(select(a.c.ip, a.c.port, a.c.version, a.c.severity).select_from(joined).where(where)
                        .order_by(a.c.severity_rank.desc(), a.c.ip, a.c.port).limit(EXAMPLES))
    return count, [{"endpoint": f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}", "version": version,
                    "severity": severity if severity in Severity.__members__ else "none"}
                   for ip, port, version, severity in rows]


def _version_changes(conn: Connection, scan_id: int, earlier_id: int) -> list[dict[str, Any]]:
    """Endpoints etcd in both scans whose version differs, as (from, to, count), the most common first."""
    a, b = aliased(endpoints, name="a"), aliased(endpoints, name="b")
    rows = conn.execute(
        select(b.c.version, a.c.version, func.count())
        .select_from(a.join(b, and_(b.c.scan_id == earlier_id, b.c.ip == a.c.ip, b.c.port == a.c.port)))
        .where((a.c.scan_id == scan_id) & a.c.is_etcd.is_(True) & b.c.is_etcd.is_(True)
               & (func.coalesce(a.c.version, "") != func.coalesce(b.c.version, "")))
        .group_by(b.c.version, a.c.version)).all()
    ordered = sorted(rows, key=lambda r: (-r[2], str(r[0]), str(r[1])))[:EXAMPLES]
    return [{"from": old or "unknown", "to": new or "unknown", "count": n} for old, new, n in ordered]

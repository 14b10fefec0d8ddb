"""Sum up a scan from the store: totals, versions, organisations, member names, uptime, TLS and auth.

The JSON shape is a contract (docs/schema.md): keys `totals`, `versions`, `organizations`, `names`
at least, each a mapping to counts. The honeypot and monitor parts are added by report.assemble.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from etcdsec.asn import AsnLookup
from etcdsec.errors import UserError
from etcdsec.report.scan_sql import ScanFigures, top_counts
from etcdsec.scan.stored import target_set
from etcdsec.store.scans import ScanStore, guard


def build_report(store: ScanStore, scan_id: int | None = None, asn: AsnLookup | None = None) -> dict[str, Any]:
    """The scan's summary (every figure aggregated in the database), without the honeypot part."""
    if scan_id is None:
        try:
            scan_id = store.latest_scan_id()
        except UserError:  # no scan tables: a database only a honeypot wrote to
            scan_id = None
        if scan_id is None:
            return {}
    scan = store.get_scan(scan_id)
    if scan is None:
        raise UserError(f"no scan {scan_id} in this database")
    shards = store.shard_states(scan_id)
    with guard("summing up the scan"), store.engine.connect() as conn, ScanFigures(conn, scan_id) as figures:
        totals = figures.totals()
        orgs, asns = figures.organizations(asn)
        names, distinct_names, kube_names, kube_count = figures.names()
        uptime, oldest = figures.uptime()
        tls, auth = figures.posture()
        organizations, distinct_orgs = top_counts(orgs.items())
        asn_counts, distinct_asns = top_counts(asns.items())
        report: dict[str, Any] = {
            "scan": {
                "id": scan.id, "name": scan.name, "status": scan.status,
                "started": _iso(scan.started), "finished": _iso(scan.finished),
                "ports": list(scan.targets.ports), "shards": scan.shard_count, "seed": scan.seed,
                "args": scan.args, "shards_finished": sum(s["finished"] is not None for s in shards),
            },
            "totals": {
                "addresses": target_set(scan).distinct_addresses(),
                "pairs": scan.targets.size,
                "swept": sum(s["swept"] for s in shards),
                **totals,
            },
            "versions": figures.versions(),
            "organizations": organizations,
            "asns": asn_counts,
            "countries": figures.countries(),
            "names": names,
            "kubernetes_names": kube_names,
            "kubernetes_name_count": kube_count,
            "uptime": uptime,
            "oldest": oldest,
            "tls": tls,
            "auth": auth,
            "findings": figures.findings(),
            "endpoints": {"total": totals["etcd"], **figures.endpoint_table()},
        }
    truncated = {key: n for key, n, kept in (("names", distinct_names, names),
                                             ("organizations", distinct_orgs, organizations),
                                             ("asns", distinct_asns, asn_counts)) if n > len(kept)}
    if truncated:
        report["truncated"] = truncated
    return report


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()

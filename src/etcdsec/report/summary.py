"""Sum up a scan from the store: totals, versions, organisations, member names, uptime, TLS and auth.

The JSON shape is a contract (docs/schema.md): keys `totals`, `versions`, `organizations`, `names`
at least, each a mapping to counts.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
from collections import Counter
from typing import Any

from etcdsec.asn import AsnLookup
from etcdsec.errors import UserError
from etcdsec.model import Severity
from etcdsec.store.scans import ScanStore

# Member names that say "this etcd backs a Kubernetes control plane".
KUBE_NAME = re.compile(r"kube|k8s|master|control-?plane|apiserver|openshift|rancher|\brke2?\b", re.I)
UPTIME_BUCKETS = ((86400, "< 1 day"), (7 * 86400, "1-7 days"), (30 * 86400, "7-30 days"),
                  (365 * 86400, "30-365 days"), (None, "> 1 year"))
OLDEST_SHOWN = 10


def _uptime_bucket(seconds: int) -> str:
    for limit, label in UPTIME_BUCKETS:
        if limit is None or seconds < limit:
            return label
    return UPTIME_BUCKETS[-1][1]


def _count(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def build_report(store: ScanStore, scan_id: int | None = None, asn: AsnLookup | None = None) -> dict[str, Any]:
    if scan_id is None:
        try:
            scan_id = store.latest_scan_id()
        except UserError:  # no scan tables: a database only a honeypot wrote to
            scan_id = None
        if scan_id is None:
            honeypot = _honeypot(store)
            if honeypot is not None:  # a honeypot's database: its interactions are the report
                return {"honeypot": honeypot}
            raise UserError("no scans or honeypot events in this database yet (run etcdsec scan first)")
    scan = store.get_scan(scan_id)
    if scan is None:
        raise UserError(f"no scan {scan_id} in this database")
    shards = store.shard_states(scan_id)

    reachable = etcd = exposed = kube_data = 0
    severities: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    orgs: Counter[str] = Counter()
    asns: Counter[str] = Counter()
    findings: Counter[str] = Counter()
    names: dict[str, set[str]] = {}
    uptime: Counter[str] = Counter()
    oldest: list[dict[str, Any]] = []
    tls: Counter[str] = Counter()
    auth: Counter[str] = Counter()
    reachable_ips: set[str] = set()
    etcd_ips: set[str] = set()
    clusters: set[str] = set()
    for r, meta in store.endpoint_results(scan_id):
        if not r.reachable:
            continue
        reachable += 1
        reachable_ips.add(r.ip or r.target)
        if not r.is_etcd:
            continue
        etcd += 1
        etcd_ips.add(r.ip or r.target)
        if r.cluster_id:
            clusters.add(r.cluster_id)
        if r.exposed:
            exposed += 1
            severities[r.severity] += 1
        versions[r.version or "unknown"] += 1
        org, as_number = _organisation(r.ip, meta, asn)
        orgs[org] += 1
        if as_number:
            asns[as_number] += 1
        for f in r.findings:
            findings[f.id] += 1
        for m in r.members:
            if m.name:  # a member seen through several endpoints (client, peer port) counts once
                names.setdefault(m.name, set()).add(m.id or r.cluster_id or r.ip or r.target)
        kube_data += bool(r.data.kubernetes)
        if r.uptime_s is not None:
            uptime[_uptime_bucket(r.uptime_s)] += 1
            oldest.append({"endpoint": f"{r.ip}:{r.port}", "start_time": r.start_time, "uptime_s": r.uptime_s,
                           "version": r.version})
        tls["https" if r.scheme == "https" else "http"] += 1
        if r.client_cert_required:
            tls["client_cert_required"] += 1
        if r.tls is not None and r.tls.self_signed:
            tls["self_signed"] += 1
        if r.tls is not None and r.tls.expired:
            tls["expired"] += 1
        auth["v3_auth_on" if r.auth.v3_enabled else "v3_auth_off" if r.auth.v3_enabled is False
             else "v3_auth_unknown"] += 1
        if r.auth.v2_guest_open:
            auth["v2_guest_open"] += 1
        if r.access.read_v3:
            auth["anonymous_read_v3"] += 1
        if r.access.read_v2:
            auth["anonymous_read_v2"] += 1
        if r.access.write:
            auth["anonymous_write"] += 1

    name_counts = {name: len(where) for name, where in names.items()}
    oldest.sort(key=lambda o: -o["uptime_s"])
    by_severity = {s.name: severities[s.name] for s in sorted(Severity, reverse=True) if severities[s.name]}
    report: dict[str, Any] = {
        "scan": {
            "id": scan.id, "name": scan.name, "status": scan.status,
            "started": _iso(scan.started), "finished": _iso(scan.finished),
            "ports": list(scan.targets.ports), "shards": scan.shard_count, "seed": scan.seed,
        },
        "totals": {
            "addresses": scan.targets.distinct_addresses(),
            "pairs": scan.targets.size,
            "swept": sum(s["swept"] for s in shards),
            "reachable": reachable,
            "reachable_addresses": len(reachable_ips),
            "etcd": etcd,
            "etcd_addresses": len(etcd_ips),
            "clusters": len(clusters),
            "exposed": exposed,
            "kubernetes_data": kube_data,
            "exposed_by_severity": by_severity,
        },
        "versions": _count(versions),
        "organizations": _count(orgs),
        "asns": _count(asns),
        "names": dict(sorted(name_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "kubernetes_names": sorted(n for n in name_counts if KUBE_NAME.search(n)),
        "uptime": {label: uptime[label] for _, label in UPTIME_BUCKETS},
        "oldest": oldest[:OLDEST_SHOWN],
        "tls": _count(tls),
        "auth": _count(auth),
        "findings": _count(findings),
    }
    honeypot = _honeypot(store)
    if honeypot is not None:
        report["honeypot"] = honeypot
    return report


def _organisation(ip: str | None, meta: dict[str, Any], asn: AsnLookup | None) -> tuple[str, str | None]:
    """Shodan's fields when the target came from a Shodan export, else the user's ASN database."""
    if meta.get("org"):
        as_number = str(meta["asn"]) if meta.get("asn") else None
        return str(meta["org"]), as_number
    if asn is not None and ip:
        found = asn.lookup(ip)
        if found:
            return found[1] or found[0], found[0]
    return "unknown", None


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()


def _honeypot(store: ScanStore) -> dict[str, Any] | None:
    if importlib.util.find_spec("etcdsec.report.honeypot") is None:
        return None
    from etcdsec.report.honeypot import honeypot_summary

    return honeypot_summary(store.engine)

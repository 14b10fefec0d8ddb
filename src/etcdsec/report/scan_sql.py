"""A scan's figures, aggregated in the database (GROUP BY on SQLite and PostgreSQL).

Nothing here loads every endpoint: each query returns counts or a capped list, so a report of a
million-endpoint scan takes seconds and little memory. Orders are applied in Python on the small
grouped results, so SQLite and PostgreSQL (whose collations differ) give the same JSON.
Counts are over reachable endpoints identified as etcd unless a name says otherwise.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, Integer, and_, case, cast, func, select, text
from sqlalchemy.sql.elements import ColumnElement

from etcdsec.asn import AsnLookup
from etcdsec.model import Severity
from etcdsec.report.sqljson import JsonSql
from etcdsec.store.schema import endpoints, findings

# Member names that say "this etcd backs a Kubernetes control plane".
KUBE_NAME = re.compile(r"kube|k8s|master|control-?plane|apiserver|openshift|rancher|\brke2?\b", re.I)
UPTIME_BUCKETS = ((86400, "< 1 day"), (7 * 86400, "1-7 days"), (30 * 86400, "7-30 days"),
                  (365 * 86400, "30-365 days"), (None, "> 1 year"))
OLDEST_SHOWN = 10
TOP_KEYS = 1000  # distinct names/organizations kept in the JSON; the rest is counted in `truncated`
KUBE_NAMES_SHOWN = 100
ENDPOINT_ROWS = 2000  # the page's endpoint table: the most severe first
ENDPOINT_COLUMNS = ("endpoint", "version", "severity", "exposed", "tls", "v3_auth", "read", "write", "keys",
                    "secrets", "kubernetes", "name", "org")


def _uptime_bucket(seconds: int) -> str:
    return next(label for limit, label in UPTIME_BUCKETS if limit is None or seconds < limit)


def top_counts(pairs: Iterable[tuple[Any, int]], limit: int = TOP_KEYS) -> tuple[dict[str, int], int]:
    """The `limit` largest counts (ties by key) in order, and how many distinct keys there were.
    heapq.nsmallest keeps only `limit` pairs in memory however many stream past."""
    seen = 0

    def counted() -> Iterator[tuple[str, int]]:
        nonlocal seen
        for key, n in pairs:
            seen += 1
            yield str(key), int(n)

    kept = heapq.nsmallest(limit, counted(), key=lambda kv: (-kv[1], kv[0]))
    return dict(kept), seen


class ScanFigures:
    """The report's scan sections for one scan, each one or two queries."""

    def __init__(self, conn: Connection, scan_id: int) -> None:
        self.conn = conn
        self.scan_id = scan_id
        self.json = JsonSql(conn.dialect.name)
        e = endpoints.c
        self.etcd = and_(e.scan_id == scan_id, e.reachable, e.is_etcd.is_(True))
        self.doc = self.json.doc(e.result)

    def _count_when(self, condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    def totals(self) -> dict[str, Any]:
        e, j, doc = endpoints.c, self.json, self.doc
        reachable, reachable_ips = self.conn.execute(
            select(func.count(), func.count(func.distinct(e.ip)))
            .where((e.scan_id == self.scan_id) & e.reachable)).one()
        etcd, etcd_ips, clusters, exposed, kube = self.conn.execute(
            select(func.count(), func.count(func.distinct(e.ip)), func.count(func.distinct(e.cluster_id)),
                   self._count_when(e.exposed.is_(True)), self._count_when(j.flag(doc, "data", "kubernetes")))
            .where(self.etcd)).one()
        by_rank = dict(self.conn.execute(select(e.severity, func.count()).where(self.etcd & e.exposed)
                                         .group_by(e.severity)).all())
        by_severity = {s.name: by_rank[s.name] for s in sorted(Severity, reverse=True) if by_rank.get(s.name)}
        return {"reachable": reachable, "reachable_addresses": reachable_ips, "etcd": etcd,
                "etcd_addresses": etcd_ips, "clusters": clusters, "exposed": int(exposed),
                "kubernetes_data": int(kube), "exposed_by_severity": by_severity}

    def grouped(self, column: Any, where: Any = None) -> Iterator[tuple[Any, int]]:
        query = select(column, func.count()).where(self.etcd if where is None else self.etcd & where)
        yield from self.conn.execution_options(yield_per=5000).execute(query.group_by(column))

    def versions(self) -> dict[str, int]:
        counts, _ = top_counts(self.grouped(func.coalesce(endpoints.c.version, "unknown")))
        return counts

    def organizations(self, asn: AsnLookup | None) -> tuple[Counter[str], Counter[str]]:
        """Shodan's fields when the target came from a Shodan export, else the user's ASN database."""
        e = endpoints.c
        orgs: Counter[str] = Counter()
        asns: Counter[str] = Counter()
        for org, as_number, n in self.conn.execution_options(yield_per=5000).execute(
                select(e.org, e.asn, func.count()).where(self.etcd & e.org.is_not(None)).group_by(e.org, e.asn)):
            orgs[org] += n
            if as_number:
                asns[as_number] += n
        if asn is None:
            unknown = self.conn.execute(select(func.count()).where(self.etcd & e.org.is_(None))).scalar_one()
            if unknown:
                orgs["unknown"] += unknown
            return orgs, asns
        for ip, n in self.grouped(e.ip, e.org.is_(None)):
            found = asn.lookup(ip)
            if found:
                orgs[found[1] or found[0]] += n
                asns[found[0]] += n
            else:
                orgs["unknown"] += n
        return orgs, asns

    def countries(self) -> dict[str, int]:
        """From imported Shodan records (`location.country_code`); 'unknown' for the rest."""
        meta = self.json.doc(endpoints.c.meta)
        code = func.coalesce(self.json.text(meta, "location", "country_code"), "unknown")
        counts, _ = top_counts(self.grouped(code))
        return counts

    def names(self) -> tuple[dict[str, int], int, list[str], int]:
        """Member names (each member once, however many of its ports answered), and the Kubernetes-looking ones."""
        kube: list[str] = []
        kube_count = 0

        def stream() -> Iterator[tuple[str, int]]:
            nonlocal kube, kube_count
            for name, n in self.conn.execution_options(yield_per=5000).execute(
                    text(_NAMES_PG if self.json.pg else _NAMES_SQLITE), {"scan": self.scan_id}):
                if KUBE_NAME.search(str(name)):
                    kube_count += 1
                    kube.append(str(name))
                    if len(kube) > 4 * KUBE_NAMES_SHOWN:  # keep memory bounded: the first names in order
                        kube = sorted(kube)[:KUBE_NAMES_SHOWN]
                yield name, n

        counts, distinct = top_counts(stream())
        return counts, distinct, sorted(kube)[:KUBE_NAMES_SHOWN], kube_count

    def uptime(self) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """Endpoints per whole day of uptime (one JSON read per row), folded into the buckets; then the
        oldest, looked for only among endpoints up at least as many days as the 10th oldest."""
        e = endpoints.c
        up = self.json.number(self.doc, "uptime_s")
        days: dict[int, int] = {}
        for day, n in self.grouped(cast(up / 86400, Integer)):
            if day is not None:
                days[int(day)] = days.get(int(day), 0) + n
        buckets = dict.fromkeys((label for _, label in UPTIME_BUCKETS), 0)
        for day, n in days.items():
            buckets[_uptime_bucket(day * 86400)] += n
        threshold, seen = None, 0
        for day in sorted(days, reverse=True):
            seen += days[day]
            threshold = day
            if seen >= OLDEST_SHOWN:
                break
        oldest: list[dict[str, Any]] = []
        if threshold is not None:
            rows = self.conn.execute(
                select(e.ip, e.port, self.json.text(self.doc, "start_time"), up, e.version)
                .where(self.etcd & (up >= threshold * 86400)))
            ordered = sorted(rows, key=lambda r: (-int(r[3]), r[0], r[1]))[:OLDEST_SHOWN]
            oldest = [{"endpoint": f"{ip}:{port}", "start_time": start, "uptime_s": int(seconds), "version": version}
                      for ip, port, start, seconds, version in ordered]
        return buckets, oldest

    def posture(self) -> tuple[dict[str, int], dict[str, int]]:
        """TLS and auth, per API: one pass of conditional counts."""
        e, j, doc = endpoints.c, self.json, self.doc
        checks: dict[tuple[str, str], Any] = {
            ("tls", "https"): e.scheme == "https",
            ("tls", "http"): func.coalesce(e.scheme, "") != "https",
            ("tls", "client_cert_required"): e.client_cert_required.is_(True),
            ("tls", "self_signed"): j.flag(doc, "tls", "self_signed"),
            ("tls", "expired"): j.flag(doc, "tls", "expired"),
            ("auth", "v3_auth_on"): e.v3_auth.is_(True),
            ("auth", "v3_auth_off"): e.v3_auth.is_(False),
            ("auth", "v3_auth_unknown"): e.v3_auth.is_(None),
            ("auth", "v2_guest_open"): j.flag(doc, "auth", "v2_guest_open"),
            ("auth", "anonymous_read_v3"): j.flag(doc, "access", "read_v3"),
            ("auth", "anonymous_read_v2"): j.flag(doc, "access", "read_v2"),
            ("auth", "anonymous_write"): j.flag(doc, "access", "write"),
        }
        row = self.conn.execute(select(*(self._count_when(c) for c in checks.values())).where(self.etcd)).one()
        out: dict[str, Counter[str]] = {"tls": Counter(), "auth": Counter()}
        for (section, key), n in zip(checks, row, strict=True):
            if n:
                out[section][key] = int(n)
        return _ordered(out["tls"]), _ordered(out["auth"])

    def findings(self) -> dict[str, int]:
        e, f = endpoints.c, findings.c
        query = (select(f.finding, func.count()).select_from(findings.join(
            endpoints, (e.scan_id == f.scan_id) & (e.ip == f.ip) & (e.port == f.port)))
            .where(self.etcd).group_by(f.finding))
        counts, _ = top_counts(self.conn.execute(query))
        return counts

    def endpoint_table(self) -> dict[str, Any]:
        """The most severe endpoints first, capped: key names and counts only, never a value."""
        e, j, doc = endpoints.c, self.json, self.doc
        read = case((j.flag(doc, "access", "read_v3") & j.flag(doc, "access", "read_v2"), "v3/v2"),
                    (j.flag(doc, "access", "read_v3"), "v3"), (j.flag(doc, "access", "read_v2"), "v2"), else_="no")
        query = (select(e.ip, e.port, e.version, e.severity, e.exposed, e.scheme, e.client_cert_required, e.v3_auth,
                        read, j.flag(doc, "access", "write"), j.number(doc, "data", "key_count"),
                        j.number(doc, "data", "secret_keys"), j.flag(doc, "data", "kubernetes"),
                        j.text(doc, "members", "0", "name"), e.org)
                 .where(self.etcd).order_by(e.severity_rank.desc(), e.ip, e.port).limit(ENDPOINT_ROWS))
        rows = []
        for (ip, port, version, severity, exposed, scheme, mtls, v3_auth, reads, write, keys, secrets, kube,
             name, org) in self.conn.execute(query):
            host = f"[{ip}]" if ":" in ip else ip
            tls = ("https+cert" if mtls else "https") if scheme == "https" else "http"
            auth = "on" if v3_auth else "off" if v3_auth is False else "?"
            rows.append([f"{host}:{port}", version, severity, bool(exposed), tls, auth, reads, bool(write),
                         _int(keys), _int(secrets), bool(kube), name, org])
        return {"columns": list(ENDPOINT_COLUMNS), "rows": rows}


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _ordered(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


_NAMES_SQLITE = """
SELECT json_extract(m.value, '$.name') AS name,
       COUNT(DISTINCT COALESCE(NULLIF(json_extract(m.value, '$.id'), ''), NULLIF(e.cluster_id, ''), e.ip)) AS n
FROM endpoints AS e, json_each(e.result, '$.members') AS m
WHERE e.scan_id = :scan AND e.reachable AND e.is_etcd = 1 AND json_type(e.result, '$.members') = 'array'
  AND COALESCE(json_extract(m.value, '$.name'), '') != ''
GROUP BY 1
"""

_NAMES_PG = """
SELECT m ->> 'name' AS name,
       COUNT(DISTINCT COALESCE(NULLIF(m ->> 'id', ''), NULLIF(e.cluster_id, ''), e.ip)) AS n
FROM endpoints AS e
CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(CAST(e.result AS jsonb) -> 'members') = 'array'
                                             THEN CAST(e.result AS jsonb) -> 'members' ELSE '[]'::jsonb END) AS m
WHERE e.scan_id = :scan AND e.reachable AND e.is_etcd AND COALESCE(m ->> 'name', '') <> ''
GROUP BY 1
"""

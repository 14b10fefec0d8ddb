"""A scan's figures, aggregated in the database (GROUP BY on SQLite and PostgreSQL).

Nothing here loads every endpoint: each query returns counts or a capped list, so a report of a
million-endpoint scan takes seconds and little memory. The fields that live only in each stored
result's JSON are read once, in one pass, into a temporary table of plain columns (`facts`, one
row per etcd endpoint); every figure is then a GROUP BY or a conditional count over it. Orders are
applied in Python on the small grouped results, so SQLite and PostgreSQL (whose collations differ)
give the same JSON. Counts are over reachable endpoints identified as etcd unless a name says otherwise.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    and_,
    case,
    cast,
    func,
    select,
    text,
)
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


# One row per etcd endpoint of the scan being reported, for the length of one report.
facts = Table(
    "etcdsec_report_facts", MetaData(),
    Column("ip", Text), Column("port", Integer), Column("cluster_id", Text), Column("exposed", Boolean),
    Column("severity", Text), Column("severity_rank", SmallInteger), Column("version", Text), Column("org", Text),
    Column("asn", Text), Column("scheme", Text), Column("mtls", Boolean), Column("v3_auth", Boolean),
    Column("uptime", BigInteger), Column("start_time", Text), Column("kube", Boolean), Column("self_signed", Boolean),
    Column("expired", Boolean), Column("v2_guest_open", Boolean), Column("read_v3", Boolean),
    Column("read_v2", Boolean), Column("write", Boolean), Column("key_count", BigInteger),
    Column("secret_keys", BigInteger), Column("members", Text), Column("country", Text),
    prefixes=["TEMPORARY"],
)


class ScanFigures:
    """The report's scan sections for one scan: `with ScanFigures(conn, scan_id) as figures: ...`."""

    def __init__(self, conn: Connection, scan_id: int) -> None:
        self.conn = conn
        self.scan_id = scan_id
        self.json = JsonSql(conn.dialect.name)

    def __enter__(self) -> ScanFigures:
        e, j = endpoints.c, self.json
        doc, meta = j.doc(e.result), j.doc(e.meta)
        fields = {
            "ip": e.ip, "port": e.port, "cluster_id": e.cluster_id, "exposed": e.exposed, "severity": e.severity,
            "severity_rank": e.severity_rank, "version": e.version, "org": e.org, "asn": e.asn, "scheme": e.scheme,
            "mtls": e.client_cert_required, "v3_auth": e.v3_auth, "uptime": j.number(doc, "uptime_s"),
            "start_time": j.text(doc, "start_time"), "kube": j.flag(doc, "data", "kubernetes"),
            "self_signed": j.flag(doc, "tls", "self_signed"), "expired": j.flag(doc, "tls", "expired"),
            "v2_guest_open": j.flag(doc, "auth", "v2_guest_open"), "read_v3": j.flag(doc, "access", "read_v3"),
            "read_v2": j.flag(doc, "access", "read_v2"), "write": j.flag(doc, "access", "write"),
            "key_count": j.number(doc, "data", "key_count"), "secret_keys": j.number(doc, "data", "secret_keys"),
            "members": j.text(doc, "members"), "country": j.text(meta, "location", "country_code"),
        }
        etcd = and_(e.scan_id == self.scan_id, e.reachable, e.is_etcd.is_(True))
        facts.drop(self.conn, checkfirst=True)
        facts.create(self.conn)
        self.conn.execute(facts.insert().from_select(list(fields), select(*fields.values()).where(etcd)))
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        # After an error the transaction is rolled back, and the table with it (DDL is transactional
        # on both databases); a DROP then would only hide the error behind "transaction aborted".
        if exc_type is None:
            facts.drop(self.conn, checkfirst=True)

    def _count_when(self, condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    def totals(self) -> dict[str, Any]:
        e, f = endpoints.c, facts.c
        reachable, reachable_ips = self.conn.execute(
            select(func.count(), func.count(func.distinct(e.ip)))
            .where((e.scan_id == self.scan_id) & e.reachable)).one()
        etcd, etcd_ips, clusters, exposed, kube = self.conn.execute(
            select(func.count(), func.count(func.distinct(f.ip)), func.count(func.distinct(f.cluster_id)),
                   self._count_when(f.exposed.is_(True)), self._count_when(f.kube.is_(True)))).one()
        by_name = dict(self.conn.execute(select(f.severity, func.count()).where(f.exposed.is_(True))
                                         .group_by(f.severity)).all())
        by_severity = {s.name: by_name[s.name] for s in sorted(Severity, reverse=True) if by_name.get(s.name)}
        return {"reachable": reachable, "reachable_addresses": reachable_ips, "etcd": etcd,
                "etcd_addresses": etcd_ips, "clusters": clusters, "exposed": int(exposed),
                "kubernetes_data": int(kube), "exposed_by_severity": by_severity}

    def grouped(self, column: Any, where: Any = None) -> Iterator[tuple[Any, int]]:
        query = select(column, func.count())
        if where is not None:
            query = query.where(where)
        yield from self._stream(query.group_by(column))

    def _stream(self, query: Any) -> Any:
        """Rows a few thousand at a time. Per statement: Connection.execution_options would set it for
        every later statement on the connection, DDL included (a server-side cursor for DROP TABLE)."""
        return self.conn.execute(query.execution_options(yield_per=5000))

    def versions(self) -> dict[str, int]:
        counts, _ = top_counts(self.grouped(func.coalesce(facts.c.version, "unknown")))
        return counts

    def organizations(self, asn: AsnLookup | None) -> tuple[Counter[str], Counter[str]]:
        """Shodan's fields when the target came from a Shodan export, else the user's ASN database."""
        f = facts.c
        orgs: Counter[str] = Counter()
        asns: Counter[str] = Counter()
        for org, as_number, n in self._stream(
                select(f.org, f.asn, func.count()).where(f.org.is_not(None)).group_by(f.org, f.asn)):
            orgs[org] += n
            if as_number:
                asns[as_number] += n
        if asn is None:
            unknown = self.conn.execute(select(func.count()).where(f.org.is_(None))).scalar_one()
            if unknown:
                orgs["unknown"] += unknown
            return orgs, asns
        for ip, n in self.grouped(f.ip, f.org.is_(None)):
            found = asn.lookup(ip)
            if found:
                orgs[found[1] or found[0]] += n
                asns[found[0]] += n
            else:
                orgs["unknown"] += n
        return orgs, asns

    def countries(self) -> dict[str, int]:
        """From imported Shodan records (`location.country_code`); 'unknown' for the rest."""
        counts, _ = top_counts(self.grouped(func.coalesce(facts.c.country, "unknown")))
        return counts

    def names(self) -> tuple[dict[str, int], int, list[str], int]:
        """Member names (each member once, however many of its ports answered), and the Kubernetes-looking ones."""
        kube: list[str] = []
        kube_count = 0

        def stream() -> Iterator[tuple[str, int]]:
            nonlocal kube, kube_count
            for name, n in self._stream(text(_NAMES_PG if self.json.pg else _NAMES_SQLITE)):
                if KUBE_NAME.search(str(name)):
                    kube_count += 1
                    kube.append(str(name))
                    if len(kube) > 4 * KUBE_NAMES_SHOWN:  # keep memory bounded: the first names in order
                        kube = sorted(kube)[:KUBE_NAMES_SHOWN]
                yield name, n

        counts, distinct = top_counts(stream())
        return counts, distinct, sorted(kube)[:KUBE_NAMES_SHOWN], kube_count

    def uptime(self) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """Endpoints per whole day of uptime, folded into the buckets; and the longest running."""
        f = facts.c
        buckets = dict.fromkeys((label for _, label in UPTIME_BUCKETS), 0)
        for day, n in self.grouped(cast(f.uptime / 86400, Integer), f.uptime.is_not(None)):
            buckets[_uptime_bucket(int(day) * 86400)] += n
        oldest = [
            {"endpoint": f"{ip}:{port}", "start_time": start, "uptime_s": int(seconds), "version": version}
            for ip, port, start, seconds, version in self.conn.execute(
                select(f.ip, f.port, f.start_time, f.uptime, f.version).where(f.uptime.is_not(None))
                .order_by(f.uptime.desc(), f.ip, f.port).limit(OLDEST_SHOWN))
        ]
        return buckets, oldest

    def posture(self) -> tuple[dict[str, int], dict[str, int]]:
        """TLS and auth, per API: one pass of conditional counts."""
        f = facts.c
        checks: dict[tuple[str, str], Any] = {
            ("tls", "https"): f.scheme == "https",
            ("tls", "http"): func.coalesce(f.scheme, "") != "https",
            ("tls", "client_cert_required"): f.mtls.is_(True),
            ("tls", "self_signed"): f.self_signed.is_(True),
            ("tls", "expired"): f.expired.is_(True),
            ("auth", "v3_auth_on"): f.v3_auth.is_(True),
            ("auth", "v3_auth_off"): f.v3_auth.is_(False),
            ("auth", "v3_auth_unknown"): f.v3_auth.is_(None),
            ("auth", "v2_guest_open"): f.v2_guest_open.is_(True),
            ("auth", "anonymous_read_v3"): f.read_v3.is_(True),
            ("auth", "anonymous_read_v2"): f.read_v2.is_(True),
            ("auth", "anonymous_write"): f.write.is_(True),
        }
        row = self.conn.execute(select(*(self._count_when(c) for c in checks.values()))).one()
        out: dict[str, Counter[str]] = {"tls": Counter(), "auth": Counter()}
        for (section, key), n in zip(checks, row, strict=True):
            if n:
                out[section][key] = int(n)
        return _ordered(out["tls"]), _ordered(out["auth"])

    def findings(self) -> dict[str, int]:
        e, f = endpoints.c, findings.c
        etcd = and_(e.scan_id == self.scan_id, e.reachable, e.is_etcd.is_(True))
        query = (select(f.finding, func.count()).select_from(findings.join(
            endpoints, (e.scan_id == f.scan_id) & (e.ip == f.ip) & (e.port == f.port)))
            .where(etcd).group_by(f.finding))
        counts, _ = top_counts(self.conn.execute(query))
        return counts

    def endpoint_table(self) -> dict[str, Any]:
        """The most severe endpoints first, capped: key names and counts only, never a value."""
        f = facts.c
        query = (select(f.ip, f.port, f.version, f.severity, f.exposed, f.scheme, f.mtls, f.v3_auth, f.read_v3,
                        f.read_v2, f.write, f.key_count, f.secret_keys, f.kube, f.members, f.org)
                 .order_by(f.severity_rank.desc(), f.ip, f.port).limit(ENDPOINT_ROWS))
        rows = []
        for (ip, port, version, severity, exposed, scheme, mtls, v3_auth, read_v3, read_v2, write, keys, secrets,
             kube, members, org) in self.conn.execute(query):
            host = f"[{ip}]" if ":" in ip else ip
            tls = ("https+cert" if mtls else "https") if scheme == "https" else "http"
            auth = "on" if v3_auth else "off" if v3_auth is False else "?"
            reads = "v3/v2" if read_v3 and read_v2 else "v3" if read_v3 else "v2" if read_v2 else "no"
            rows.append([f"{host}:{port}", version, severity, bool(exposed), tls, auth, reads, bool(write),
                         _int(keys), _int(secrets), bool(kube), _first_name(members), org])
        return {"columns": list(ENDPOINT_COLUMNS), "rows": rows}


def _first_name(members: str | None) -> str | None:
    """The first member's name, from the members array as the store kept it (at most 2,000 of these)."""
    try:
        parsed = json.loads(members) if members else None
    except ValueError:
        return None
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict) and isinstance(parsed[0].get("name"), str):
        return parsed[0]["name"]
    return None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _ordered(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


_NAMES_SQLITE = """
SELECT json_extract(m.value, '$.name') AS name,
       COUNT(DISTINCT COALESCE(NULLIF(json_extract(m.value, '$.id'), ''), NULLIF(f.cluster_id, ''), f.ip)) AS n
FROM etcdsec_report_facts AS f, json_each(f.members) AS m
WHERE json_type(f.members) = 'array' AND COALESCE(json_extract(m.value, '$.name'), '') != ''
GROUP BY 1
"""

_NAMES_PG = """
SELECT m ->> 'name' AS name,
       COUNT(DISTINCT COALESCE(NULLIF(m ->> 'id', ''), NULLIF(f.cluster_id, ''), f.ip)) AS n
FROM etcdsec_report_facts AS f
CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(CAST(f.members AS jsonb)) = 'array'
                                             THEN CAST(f.members AS jsonb) ELSE '[]'::jsonb END) AS m
WHERE COALESCE(m ->> 'name', '') <> ''
GROUP BY 1
"""

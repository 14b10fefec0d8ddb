"""Synthetic scans for report tests and bench/report_bench.py: N stored etcd endpoints with known
figures, written straight into the store (rows only; no traffic is sent anywhere).

Every figure is a function of the endpoint's index, so a test knows the truth without the report.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from typing import Any

from etcdsec.model import Access, Auth, Data, Finding, Member, ProbeResult, Severity
from etcdsec.scan.permutation import Shard
from etcdsec.scan.ranges import AddrRange
from etcdsec.scan.stored import ShardProgress, open_shard, stored_targets
from etcdsec.scan.targets import TargetSet
from etcdsec.store.scans import ScanStore
from etcdsec.store.schema import endpoints, findings

VERSIONS = ("3.5.1", "3.4.23", "3.5.17", "3.3.27", "3.6.5", "2.3.8")
ORGS = tuple(f"Org {i:02d}" for i in range(14))
COUNTRIES = ("DE", "US", "CN", "FR", "NL", "SG", "BR", "JP", "IN", "KR", "GB", "RU")
FIRST = int(ipaddress.IPv4Address("127.16.0.0"))
PORTS = (2379, 2380)


def endpoint(i: int, version_offset: int = 0) -> tuple[ProbeResult, dict[str, Any]]:
    """The i-th endpoint: address FIRST + i//2, port 2379/2380 by parity."""
    ip = str(ipaddress.IPv4Address(FIRST + i // 2))
    exposed = i % 3 != 0
    version = VERSIONS[(i + version_offset) % len(VERSIONS)]
    kube = i % 5 == 0
    name = f"kube-master-{i // 2}" if kube else f"etcd-{i // 2}"
    found = []
    if exposed:
        found.append(Finding("ETCD-ANON-READ-V3", "critical", "Anyone can read every key through the v3 API", "", ""))
    if kube and exposed:
        found.append(Finding("ETCD-K8S-SECRETS", "critical", "Kubernetes Secrets are stored in this readable etcd",
                             "", ""))
    result = ProbeResult(
        target=f"{ip}:{PORTS[i % 2]}", ip=ip, port=PORTS[i % 2], reachable=True, is_etcd=True, scheme="http",
        role="client" if i % 2 == 0 else "peer", version=version, cluster_id=f"c{i // 2:x}",
        members=[Member(name=name, id=f"m{i // 2:x}")], uptime_s=(i % 400) * 86400 + 3600,
        start_time="2025-01-01T00:00:00Z", auth=Auth(v3_enabled=not exposed),
        access=Access(read_v3=exposed, read_v2=exposed and i % 4 == 1, write=False),
        data=Data(key_count=(120 if exposed else None), kubernetes=kube and exposed,
                  secret_keys=(7 if kube and exposed else None)),
        exposed=exposed, severity="critical" if exposed else "medium", findings=found,
    )
    meta = {"org": ORGS[i % len(ORGS)], "asn": f"AS{64500 + i % len(ORGS)}",
            "location": {"country_code": COUNTRIES[i % len(COUNTRIES)]}}
    return result, meta


def fill_scan(store: ScanStore, n: int, name: str, version_offset: int = 0, batch: int = 20_000) -> int:
    """A finished scan of `n` etcd endpoints; returns its id."""
    store.ensure_schema()
    addresses = (n + 1) // 2
    targets = TargetSet([AddrRange(4, FIRST, FIRST + max(addresses, 1) - 1)], PORTS)
    scan = store.create_or_join(name=name, args={"synthetic": n}, targets=stored_targets(targets), seed=1,
                                shard_count=1, options={})
    prog: ShardProgress = open_shard(store, scan, Shard(1, 1), targets.size)
    stamp = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    finding_rows: list[dict[str, Any]] = []
    with store.engine.begin() as conn:
        for i in range(n):
            result, meta = endpoint(i, version_offset)
            rows.append(dict(
                scan_id=scan.id, shard_index=0, ip=result.ip, port=result.port, probed_at=stamp, reachable=True,
                is_etcd=True, exposed=result.exposed, severity=result.severity,
                severity_rank=int(Severity.parse(result.severity)), version=result.version,
                cluster_id=result.cluster_id, scheme="http", client_cert_required=False,
                v3_auth=result.auth.v3_enabled, org=meta["org"], asn=meta["asn"], meta=json.dumps(meta),
                result=json.dumps(result.to_dict())))
            finding_rows.extend(dict(scan_id=scan.id, ip=result.ip, port=result.port, finding=f.id,
                                     severity=f.severity, title=f.title) for f in result.findings)
            if len(rows) >= batch:
                conn.execute(endpoints.insert(), rows)
                if finding_rows:
                    conn.execute(findings.insert(), finding_rows)
                rows.clear()
                finding_rows.clear()
        if rows:
            conn.execute(endpoints.insert(), rows)
        if finding_rows:
            conn.execute(findings.insert(), finding_rows)
    prog.swept = prog.open = prog.etcd = targets.size
    store.finish_shard(prog.row())
    return scan.id

"""The database does the summing: a synthetic scan with known figures, on SQLite and a real PostgreSQL,
gives the same report as counting the stored endpoints one by one in Python; --compare finds the
version changes and exposure changes between two scans."""

from __future__ import annotations

from collections import Counter

import pytest

from etcdsec.report.assemble import assemble
from etcdsec.report.compare import compare_scans
from etcdsec.report.scan_sql import KUBE_NAME, top_counts
from etcdsec.store.engine import open_engine
from etcdsec.store.scans import ScanStore
from tests.report.synthetic import endpoint, fill_scan

N = 1500


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> ScanStore:
    url = str(tmp_path / "s.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    return ScanStore(open_engine(url))


def by_hand(n: int) -> dict:
    """The figures counted the slow way, endpoint by endpoint, from what was stored."""
    results = [endpoint(i) for i in range(n)]
    versions: Counter[str] = Counter(r.version for r, _ in results)
    orgs: Counter[str] = Counter(m["org"] for _, m in results)
    names: dict[str, set[str]] = {}
    for r, _ in results:
        for m in r.members:
            names.setdefault(m.name, set()).add(m.id)
    return {"versions": versions, "organizations": orgs, "names": {k: len(v) for k, v in names.items()},
            "exposed": sum(r.exposed for r, _ in results),
            "read_v2": sum(bool(r.access.read_v2) for r, _ in results),
            "kube": sum(bool(r.data.kubernetes) for r, _ in results),
            "secrets": sum(any(f.id == "ETCD-K8S-SECRETS" for f in r.findings) for r, _ in results),
            "countries": Counter(m["location"]["country_code"] for _, m in results),
            "over_30_days": sum(r.uptime_s >= 30 * 86400 for r, _ in results)}


def test_sql_figures_equal_counting_by_hand(store) -> None:
    fill_scan(store, N, "synthetic")
    report = assemble(store)
    truth = by_hand(N)
    assert report["totals"]["etcd"] == N and report["totals"]["etcd_addresses"] == N // 2
    assert report["totals"]["exposed"] == truth["exposed"]
    assert report["totals"]["kubernetes_data"] == truth["kube"]
    assert report["versions"] == dict(sorted(truth["versions"].items(), key=lambda kv: (-kv[1], kv[0])))
    assert report["organizations"] == dict(sorted(truth["organizations"].items(), key=lambda kv: (-kv[1], kv[0])))
    assert report["countries"] == dict(sorted(truth["countries"].items(), key=lambda kv: (-kv[1], kv[0])))
    expected_names, distinct = top_counts(truth["names"].items())
    assert report["names"] == expected_names and distinct == len(truth["names"])
    kube = sorted(n for n in truth["names"] if KUBE_NAME.search(n))
    assert report["kubernetes_name_count"] == len(kube) and report["kubernetes_names"] == kube[:100]
    assert report["auth"]["anonymous_read_v2"] == truth["read_v2"]
    assert report["findings"]["ETCD-K8S-SECRETS"] == truth["secrets"]
    uptime = report["uptime"]
    assert uptime["30-365 days"] + uptime["> 1 year"] == truth["over_30_days"]
    assert sum(uptime.values()) == N
    assert report["oldest"][0]["uptime_s"] == max(endpoint(i)[0].uptime_s for i in range(N))
    rows = report["endpoints"]["rows"]
    assert report["endpoints"]["total"] == N and len(rows) == N  # under the cap: every endpoint
    assert [r[2] for r in rows[: truth["exposed"]]] == ["critical"] * truth["exposed"]  # the most severe first


def test_compare_two_scans(store) -> None:
    first = fill_scan(store, 600, "before", version_offset=1)
    second = fill_scan(store, 800, "after")  # 200 more endpoints, every version moved by one
    diff = compare_scans(store, second, first)
    assert diff["same_targets"] is False
    new = [endpoint(i) for i in range(600, 800)]
    assert diff["counts"] == {"newly_exposed": sum(r.exposed for r, _ in new), "no_longer_exposed": 0,
                              "new_etcd": 200, "gone": 0}
    changes = {(c["from"], c["to"]): c["count"] for c in diff["version_changes"]}
    assert sum(changes.values()) == 600
    assert changes[("3.4.23", "3.5.1")] == 100  # endpoint i ran VERSIONS[i+1] before, VERSIONS[i] now
    assert len(diff["examples"]["newly_exposed"]) == 50
    back = compare_scans(store, first, second)
    assert back["counts"]["gone"] == 200 and back["counts"]["new_etcd"] == 0

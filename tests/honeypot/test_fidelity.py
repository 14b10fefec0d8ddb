"""Differential fidelity against real etcd 3.4.23 and 3.5.1 (the corpora in tests/support/corpus/)."""

from __future__ import annotations

import pytest

from tests.support import fidelity


def test_corpus_is_large_and_covers_the_issue_categories() -> None:
    cases = fidelity.load_corpus()
    assert len(cases) >= 150
    ids = " ".join(c.id for c in cases)
    for needle in ("v2-", "gw-", "missing-host", "head", "garbage", "unclean", "auth", "patch", "nope"):
        assert needle in ids


def test_normalisation_masks_ids_but_not_structure() -> None:
    a = fidelity.normalised_body(b'{"header":{"cluster_id":"123","revision":"5"},"kvs":[{"key":"Zm9v"}]}', "127.0.0.2")
    b = fidelity.normalised_body(b'{"header":{"cluster_id":"999","revision":"77"},"kvs":[{"key":"Zm9v"}]}', "127.0.0.9")
    c = fidelity.normalised_body(b'{"header":{"cluster_id":"999","revision":"77"},"kvs":[{"key":"YmFy"}]}', "127.0.0.9")
    assert a == b and a != c


@pytest.fixture(scope="module")
def report() -> fidelity.Report:
    return fidelity.run(["3.3", "3.4", "3.5"])


@pytest.mark.parametrize("persona", ["3.3.25", "3.4.23", "3.5.1"])
def test_http_surface_matches_real_etcd(report, persona) -> None:
    """Every case, the v3 gateway's (`gw-*`) included, matches exactly."""
    rows = [o for o in report.outcomes if o.version == persona]
    assert len(rows) >= 300
    assert len([o for o in rows if not o.id.startswith("gw-")]) >= 200
    mismatched = [(o.id, o.diffs) for o in rows if not o.match]
    assert mismatched == []


@pytest.mark.parametrize("version", ["3.5", "3.3"])
def test_http_surface_over_tls_matches_real_etcd(version: str) -> None:
    """The same corpus over TLS (ALPN http/1.1) against etcd 3.5.1 and 3.3.25 with a server certificate;
    gateway answers over TLS carry the Grpc-Metadata-* headers of etcd's internal TLS hop (3.3's
    without CORS ones), and 3.3.25's Go 1.15 refuses an `HTTP/2.0` request line with a 400."""
    cases = [c for c in fidelity.load_corpus() if c.group == "http" and (not c.versions or version in c.versions)]
    report = fidelity.run([version], cases, tls=True)
    assert len(report.outcomes) == len(cases) >= 300
    assert [(o.id, o.diffs) for o in report.outcomes if not o.match] == []

"""The gRPC fidelity corpus: every call answered as real etcd 3.4.23 / 3.5.1 answer it.

Compares :status, header and trailer names, grpc-status, grpc-message and the decoded response
(ids and sizes normalised; revisions compared exactly) - see tests/support/fidelity_grpc.py.
"""

from __future__ import annotations

import pytest

from tests.support import fidelity_grpc


def test_corpus_is_large_and_well_formed() -> None:
    cases = fidelity_grpc.load_cases()
    assert len(cases) >= 120
    assert len({c.id for c in cases}) == len(cases)
    assert {c.grpc.split("/")[1] for c in cases} >= {"etcdserverpb.KV", "etcdserverpb.Watch", "etcdserverpb.Lease",
                                                     "etcdserverpb.Cluster", "etcdserverpb.Maintenance",
                                                     "etcdserverpb.Auth"}


@pytest.mark.parametrize("version", ["3.3", "3.4", "3.5"])
def test_grpc_fidelity_is_complete(version: str) -> None:
    outcomes = fidelity_grpc.run([version])
    diffs = [f"{o.id}: {' | '.join(o.diffs)}" for o in outcomes if not o.match]
    assert not diffs, "\n".join(diffs)
    assert fidelity_grpc.summary(outcomes)[fidelity_grpc.PERSONA_FOR[version]]["match"] == 100.0

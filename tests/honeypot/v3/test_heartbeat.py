"""A Kubernetes-shaped store keeps moving like a live control plane: lease renewals, compaction,
a revision that climbs with wall time and keeps climbing across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from etcdsec.honeypot.v3 import service
from etcdsec.honeypot.v3.heartbeat import MARKER
from etcdsec.honeypot.v3.state import V3State
from etcdsec.proto import etcd_v3_pb2 as pb
from tests.support import k8swire

from .conftest import make_ctx, session

K8S = [(MARKER, b'{"kind":"Namespace"}'), (b"/registry/secrets/prod/db", b"s3cr3t")]


class Wall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def rng(state: V3State, key: bytes, end: bytes = b"") -> pb.RangeResponse:
    resp = service.invoke(state, session(), service.METHODS["/etcdserverpb.KV/Range"],
                          pb.RangeRequest(key=key, range_end=end))
    assert isinstance(resp, pb.RangeResponse)
    return resp


def test_leases_renew_on_their_periods_and_watchers_see_it() -> None:
    ctx, _ = make_ctx(dataset=K8S, revision_base=1000)
    start = ctx.identity.start_time.timestamp()
    wall = Wall(start)
    state = V3State(ctx, wall_clock=wall)
    before = rng(state, b"/registry/leases/", b"/registry/leases0")
    assert [kv.key for kv in before.kvs] == [b"/registry/leases/kube-node-lease/etcd-test",
                                             b"/registry/leases/kube-system/kube-controller-manager",
                                             b"/registry/leases/kube-system/kube-scheduler"]
    stream = state.namespace(session()).hub.open(max_watchers=4)
    stream.handle(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"/registry/leases/kube-node-lease/",
                                                                       range_end=b"/registry/leases/kube-node-lease0")))
    wall.t += 10.0
    after = rng(state, b"/registry/leases/", b"/registry/leases0")
    assert after.header.revision - before.header.revision == 11  # 5 + 5 leader renewals + 1 node renewal
    api, kind, raw, _ = k8swire.envelope(after.kvs[0].value)  # stored as kube-apiserver stores a Lease
    assert (api, kind) == ("coordination.k8s.io/v1", "Lease")
    renew = k8swire.first(k8swire.first(raw, 2), 4)  # type: ignore[arg-type]  # spec.renewTime (MicroTime)
    assert isinstance(renew, bytes) and k8swire.first(renew, 1) == int(start + 10)
    assert after.kvs[0].version == 2 and after.kvs[1].version == 6
    events = [e for r in stream.pending for e in r.events]
    assert [e.kv.key for e in events] == [b"/registry/leases/kube-node-lease/etcd-test"]


def test_a_long_pause_is_caught_up_in_bounded_work_and_history_is_compacted() -> None:
    ctx, _ = make_ctx(dataset=K8S, revision_base=1000)
    wall = Wall(ctx.identity.start_time.timestamp())
    state = V3State(ctx, wall_clock=wall)
    rev0 = rng(state, MARKER).header.revision
    wall.t += 3600.0  # an hour without requests
    rev1 = rng(state, MARKER).header.revision
    assert rev1 - rev0 == int(3600 * 1.1)
    wall.t += 301.0
    rng(state, MARKER)
    store = state.namespace(session()).store
    assert rev1 <= store.compact_revision < store.revision


def test_the_revision_keeps_climbing_across_restarts() -> None:
    ctx, _ = make_ctx(dataset=K8S, revision_base=1000)
    ctx.identity.start_time = datetime.now(UTC) - timedelta(days=2)
    first = rng(V3State(ctx), MARKER).header.revision
    assert first > 1000 + 2 * 86400  # two days of ~1.1 writes/s
    later = V3State(ctx, wall_clock=Wall(datetime.now(UTC).timestamp() + 600))
    assert rng(later, MARKER).header.revision > first + 600


def test_no_heartbeat_without_a_kubernetes_dataset() -> None:
    ctx, _ = make_ctx(dataset=[(b"foo", b"bar")], revision_base=1)
    wall = Wall(ctx.identity.start_time.timestamp())
    state = V3State(ctx, wall_clock=wall)
    wall.t += 100
    assert rng(state, b"foo").header.revision == 2

"""The churn task's schedule with clocks under test control: events written on leases that age
out an hour later, bounded catch-up, and nothing logged as if an attacker had written it."""

from __future__ import annotations

from datetime import UTC, datetime

from etcdsec.honeypot.core.bait import kubernetes_bait
from etcdsec.honeypot.v3.churn import EVENT_TTL_S, JOB_EVERY_S, Churn
from etcdsec.honeypot.v3.mvcc import KeyRev
from etcdsec.honeypot.v3.state import Namespace, V3State
from tests.support import k8swire

from .conftest import make_ctx, session


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def events(ns: Namespace) -> list[KeyRev]:
    return ns.store.range(b"/registry/events/", b"/registry/events0")


def setup() -> tuple[V3State, Churn, Clock, Clock, list[dict[str, object]]]:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ctx, memory = make_ctx(dataset=kubernetes_bait("churn-seed", start).keys, revision_base=5000)
    ctx.identity.start_time = start
    wall, mono = Clock(start.timestamp() + 7200), Clock(1000.0)
    state = V3State(ctx, clock=mono, wall_clock=wall)
    return state, Churn(state), wall, mono, memory.events


def test_events_come_on_shared_leases_and_age_out_an_hour_later() -> None:
    state, churn, wall, mono, logged = setup()
    churn.tick()
    ns = state.live_namespaces()[0]
    first = events(ns)
    runs = int(EVENT_TTL_S // JOB_EVERY_S)
    assert runs * 9 <= len(first) <= (runs + 1) * 9  # the last hour's CronJob runs, backfilled
    for kv in first:
        api, kind, raw, _ = k8swire.envelope(kv.value)
        assert (api, kind) == ("v1", "Event")
        meta = k8swire.metadata(raw)
        assert k8swire.text(meta, k8swire.META_NAMESPACE) == "prod"
        assert kv.key.decode().endswith("/" + k8swire.text(meta, k8swire.META_NAME))
        lease = ns.lessor.get(kv.lease)
        assert lease is not None and lease.ttl == EVENT_TTL_S and 0 < lease.remaining(mono()) <= EVENT_TTL_S
    assert len({kv.lease for kv in first}) in (runs, runs + 1)  # one lease per run (reused within a minute)
    wall.t += 3700
    mono.t += 3700
    churn.tick()
    later = events(ns)
    assert not {kv.key for kv in first} & {kv.key for kv in later}  # the old ones expired with their leases
    assert runs * 9 <= len(later) <= (runs + 1) * 9
    assert logged == []  # the control plane's writes are not an attacker's


def test_a_tick_writes_only_what_fell_due_since_the_last() -> None:
    state, churn, wall, mono, _ = setup()
    churn.tick()
    ns = state.live_namespaces()[0]
    rev = ns.store.revision
    churn.tick()  # same instant: nothing new
    assert ns.store.revision == rev
    wall.t += JOB_EVERY_S
    mono.t += JOB_EVERY_S
    churn.tick()
    # 9 events of one run, 150 lease-leader renewals + 30 node renewals, capped at 30 by the heartbeat
    assert len(events(ns)) >= 9 and ns.store.revision > rev + 9


def test_a_keyspace_that_already_has_events_is_not_backfilled_twice() -> None:
    state, churn, wall, mono, _ = setup()
    churn.tick()
    ns = state.live_namespaces()[0]
    keys = {kv.key: kv.version for kv in events(ns)}
    rev = ns.store.revision
    # a restart with the keyspace kept (persistence): a new task finds the newest event and goes on from it
    Churn(state).tick()
    assert {kv.key: kv.version for kv in events(ns)} == keys
    assert ns.store.revision <= rev + 1  # at most the master lease's put
    # a client's event named far in the future does not silence the churn
    with ns.store.txn() as txn:
        txn.put(b"/registry/events/prod/x.ffffffffffffffff", b"junk", 0)
        txn.commit()
    later = Churn(state)
    later.tick()
    wall.t += JOB_EVERY_S
    mono.t += JOB_EVERY_S
    later.tick()
    fresh = {kv.key for kv in events(ns)} - set(keys) - {b"/registry/events/prod/x.ffffffffffffffff"}
    assert len(fresh) == 9  # the next run's events (the hour-old ones expired meanwhile)


def test_per_source_namespaces_get_the_same_events_encoded_once() -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ctx, memory = make_ctx(dataset=kubernetes_bait("churn-seed", start).keys, namespace_writes=True)
    ctx.identity.start_time = start
    state = V3State(ctx, clock=Clock(1000.0), wall_clock=Clock(start.timestamp() + 7200))
    a, b = state.namespace(session("127.0.0.2")), state.namespace(session("127.0.0.3"))
    churn = Churn(state)
    churn.tick()
    assert [kv.key for kv in events(a)] == [kv.key for kv in events(b)] and len(events(a)) > 90
    assert churn.schedule is not None and len(churn.schedule._encoded) == len(events(a))
    assert memory.events == []


def test_the_apiservers_master_lease_moves_to_a_new_etcd_lease_every_ten_seconds() -> None:
    state, churn, wall, mono, _ = setup()
    churn.tick()
    ns = state.live_namespaces()[0]
    (first,) = ns.store.range(b"/registry/masterleases/", b"/registry/masterleases0")
    assert first.key == b"/registry/masterleases/10.0.1.10"  # the member listens on loopback here
    api, kind, raw, _ = k8swire.envelope(first.value)
    assert (api, kind) == ("v1", "Endpoints")
    generation = k8swire.first(k8swire.metadata(raw), 7)
    lease = ns.lessor.get(first.lease)
    assert lease is not None and lease.ttl == 15 and lease.keys == {first.key}
    wall.t += 10
    mono.t += 10
    churn.tick()
    (second,) = ns.store.range(b"/registry/masterleases/", b"/registry/masterleases0")
    assert second.lease != first.lease and second.version == first.version + 1
    assert k8swire.first(k8swire.metadata(k8swire.envelope(second.value)[2]), 7) == generation + 1  # type: ignore[operator]
    old = ns.lessor.get(first.lease)
    assert old is None or not old.keys  # the old lease expires holding nothing: no revision

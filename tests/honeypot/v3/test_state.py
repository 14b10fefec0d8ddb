"""The v3 state machine on its own: leases expiring on a driven clock, namespaces, caps, bounded watches."""

from __future__ import annotations

import pytest

from etcdsec.honeypot.v3 import service
from etcdsec.honeypot.v3.errors import Code, V3Error
from etcdsec.honeypot.v3.state import MAX_NAMESPACES, V3State
from etcdsec.proto import etcd_v3_pb2 as pb

from .conftest import make_ctx, session


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def call(state: V3State, path: str, req: object, src: str = "127.0.0.1") -> object:
    return service.invoke(state, session(src), service.METHODS[path], req)


KV = "/etcdserverpb.KV/"
LEASE = "/etcdserverpb.Lease/"


def test_lease_expiry_deletes_keys_and_tells_watchers() -> None:
    ctx, _ = make_ctx(dataset=[(b"seed", b"1")])
    clock = Clock()
    state = V3State(ctx, clock=clock)
    grant = call(state, LEASE + "LeaseGrant", pb.LeaseGrantRequest(TTL=5))
    assert isinstance(grant, pb.LeaseGrantResponse) and grant.TTL == 5
    call(state, KV + "Put", pb.PutRequest(key=b"/lock", value=b"me", lease=grant.ID))
    ns = state.namespace(session())
    stream = ns.hub.open(max_watchers=8)
    stream.handle(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"/lock")))
    rev_before = ns.store.revision

    clock.now += 4
    ttl = call(state, LEASE + "LeaseTimeToLive", pb.LeaseTimeToLiveRequest(ID=grant.ID, keys=True))
    assert isinstance(ttl, pb.LeaseTimeToLiveResponse)
    assert (ttl.TTL, ttl.grantedTTL, list(ttl.keys)) == (1, 5, [b"/lock"])

    clock.now += 2  # past expiry: the next request revokes it
    got = call(state, KV + "Range", pb.RangeRequest(key=b"/lock"))
    assert isinstance(got, pb.RangeResponse) and got.count == 0
    assert ns.store.revision == rev_before + 1
    events = [e for r in stream.pending for e in r.events]
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in events] == [(pb.Event.DELETE, b"/lock", rev_before + 1)]
    expired = call(state, LEASE + "LeaseTimeToLive", pb.LeaseTimeToLiveRequest(ID=grant.ID))
    assert isinstance(expired, pb.LeaseTimeToLiveResponse) and expired.TTL == -1


def test_keepalive_renews_and_unknown_lease_gets_ttl_zero() -> None:
    ctx, _ = make_ctx()
    clock = Clock()
    state = V3State(ctx, clock=clock)
    grant = call(state, LEASE + "LeaseGrant", pb.LeaseGrantRequest(TTL=3))
    assert isinstance(grant, pb.LeaseGrantResponse)
    c = service.Call(state, state.namespace(session()), session(), ctx.persona)
    for _ in range(3):
        clock.now += 2
        assert service.keepalive_one(c, pb.LeaseKeepAliveRequest(ID=grant.ID)).TTL == 3
    assert service.keepalive_one(c, pb.LeaseKeepAliveRequest(ID=12345)).TTL == 0
    assert state.namespace(session()).lessor.get(grant.ID) is not None


def test_lease_ids_follow_etcds_generator() -> None:
    ctx, _ = make_ctx()
    state = V3State(ctx)
    ids = [call(state, LEASE + "LeaseGrant", pb.LeaseGrantRequest(TTL=60)).ID for _ in range(3)]  # type: ignore[attr-defined]
    # 16 low bits of the member id on top, with the sign bit cleared (lease ids are positive int64)
    assert all(i >> 48 == ctx.identity.member_id & 0x7FFF for i in ids)
    assert ids[1] == ids[0] + 1 and ids[2] == ids[1] + 1


def test_namespaced_writes_are_private_per_source() -> None:
    ctx, _ = make_ctx(dataset=[(b"/registry/a", b"seed")], namespace_writes=True, revision_base=500)
    state = V3State(ctx)
    call(state, KV + "Put", pb.PutRequest(key=b"/mine", value=b"x"), src="127.0.0.10")
    a = call(state, KV + "Range", pb.RangeRequest(key=b"/", range_end=b"0"), src="127.0.0.10")
    b = call(state, KV + "Range", pb.RangeRequest(key=b"/", range_end=b"0"), src="127.0.0.11")
    assert isinstance(a, pb.RangeResponse) and isinstance(b, pb.RangeResponse)
    assert [kv.key for kv in a.kvs] == [b"/mine", b"/registry/a"]
    assert [kv.key for kv in b.kvs] == [b"/registry/a"]
    assert (a.header.revision, b.header.revision) == (502, 501)


def test_shared_writes_are_seen_by_everyone() -> None:
    ctx, _ = make_ctx(namespace_writes=False)
    state = V3State(ctx)
    call(state, KV + "Put", pb.PutRequest(key=b"/shared", value=b"x"), src="127.0.0.10")
    got = call(state, KV + "Range", pb.RangeRequest(key=b"/shared"), src="127.0.0.11")
    assert isinstance(got, pb.RangeResponse) and got.count == 1


def test_namespaces_are_bounded_least_recently_used_first() -> None:
    ctx, _ = make_ctx(namespace_writes=True)
    state = V3State(ctx)
    for i in range(MAX_NAMESPACES + 20):
        state.namespace(session(f"10.0.{i // 250}.{i % 250}"))
    assert len(state._namespaces) == MAX_NAMESPACES


def test_key_cap_refuses_like_a_full_etcd_and_a_failed_txn_applies_nothing() -> None:
    ctx, _ = make_ctx(dataset=[(b"a", b"1")])
    ctx.limits.max_keys = 3
    state = V3State(ctx)
    call(state, KV + "Put", pb.PutRequest(key=b"b", value=b"2"))
    rev = state.namespace(session()).store.revision
    txn = pb.TxnRequest(success=[pb.RequestOp(request_put=pb.PutRequest(key=b"c", value=b"3")),
                                 pb.RequestOp(request_put=pb.PutRequest(key=b"d", value=b"4"))])
    with pytest.raises(V3Error) as err:
        call(state, KV + "Txn", txn)
    assert (err.value.code, err.value.message) == (Code.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")
    ns = state.namespace(session())
    assert ns.store.revision == rev and ns.store.get(b"c") is None and ns.store.live_keys == 2
    call(state, KV + "Put", pb.PutRequest(key=b"a", value=b"overwrite is fine"))


def test_byte_cap_counts_live_data_only() -> None:
    ctx, _ = make_ctx()
    ctx.limits.max_store_bytes = 1000
    state = V3State(ctx)
    for _ in range(50):  # rewriting one key does not accumulate
        call(state, KV + "Put", pb.PutRequest(key=b"k", value=b"v" * 600))
    with pytest.raises(V3Error):
        call(state, KV + "Put", pb.PutRequest(key=b"k2", value=b"v" * 600))


def test_history_reads_and_compaction() -> None:
    ctx, _ = make_ctx(revision_base=10)
    state = V3State(ctx)
    call(state, KV + "Put", pb.PutRequest(key=b"k", value=b"one"))  # rev 11
    call(state, KV + "Put", pb.PutRequest(key=b"k", value=b"two"))  # rev 12
    call(state, KV + "DeleteRange", pb.DeleteRangeRequest(key=b"k"))  # rev 13
    old = call(state, KV + "Range", pb.RangeRequest(key=b"k", revision=11))
    assert isinstance(old, pb.RangeResponse) and old.kvs[0].value == b"one" and old.header.revision == 13
    call(state, KV + "Compact", pb.CompactionRequest(revision=12))
    with pytest.raises(V3Error, match="compacted"):
        call(state, KV + "Range", pb.RangeRequest(key=b"k", revision=11))
    at12 = call(state, KV + "Range", pb.RangeRequest(key=b"k", revision=12))
    assert isinstance(at12, pb.RangeResponse) and at12.kvs[0].value == b"two"


def test_watch_queues_are_bounded_and_watchers_capped() -> None:
    ctx, _ = make_ctx()
    state = V3State(ctx)
    ns = state.namespace(session())
    stream = ns.hub.open(max_watchers=2, max_pending=10)
    for key in (b"a", b"b", b"c"):
        stream.handle(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=key)))
    created = list(stream.pending)
    assert [r.watch_id for r in created] == [0, 1, -1]
    assert created[2].canceled and created[2].cancel_reason == "etcdserver: too many requests"
    for i in range(100):  # a client that never reads
        call(state, KV + "Put", pb.PutRequest(key=b"a", value=str(i).encode()))
    assert len(stream.pending) == 10 and stream.dropped == 93
    stream.close()
    assert ns.hub.count == 0 and not ns.hub.streams


def test_a_seed_bigger_than_the_caps_is_cut_not_fatal() -> None:
    ctx, _ = make_ctx(dataset=[(f"/k{i:03}".encode(), b"v") for i in range(50)])
    ctx.limits.max_keys = 10
    state = V3State(ctx)
    got = call(state, KV + "Range", pb.RangeRequest(key=b"\x00", range_end=b"\x00", count_only=True))
    assert isinstance(got, pb.RangeResponse) and got.count == 10


def test_many_leases_expire_in_deadline_order() -> None:
    ctx, _ = make_ctx()
    clock = Clock()
    state = V3State(ctx, clock=clock)
    ns = state.namespace(session())
    for i in range(1, 201):
        ns.lessor.grant(i, 2 + i % 7, clock.now)
    ns.lessor.renew(1, clock.now + 1)  # lease 1 (ttl 3) renewed: now due at +4
    clock.now += 3.5
    state.namespace(session())
    left = set(ns.lessor.leases)
    assert 1 in left and all(2 + i % 7 > 3.5 for i in left if i != 1)
    assert len(left) == sum(1 for i in range(1, 201) if 2 + i % 7 > 3.5) + 1

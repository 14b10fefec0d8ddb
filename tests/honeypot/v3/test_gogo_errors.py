"""unmarshal_error remembers small payloads it accepted: a remembered answer is always the answer the
walk gives, and a payload it refused is never remembered as good."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from etcdsec.honeypot.v3.grpc import gogo_errors
from etcdsec.proto import etcd_v3_pb2 as pb

TYPES = [pb.RangeRequest.DESCRIPTOR, pb.PutRequest.DESCRIPTOR, pb.TxnRequest.DESCRIPTOR]
GOOD = pb.RangeRequest(key=b"/bench/key", range_end=b"/bench/kez", limit=5).SerializeToString()


def fresh(desc: object, data: bytes) -> str | None:
    saved = set(gogo_errors._accepted)
    gogo_errors._accepted.clear()
    try:
        return gogo_errors.unmarshal_error(desc, data)  # type: ignore[arg-type]
    finally:
        gogo_errors._accepted.clear()
        gogo_errors._accepted.update(saved)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(range(len(TYPES))),
                          st.one_of(st.binary(max_size=40), st.sampled_from([GOOD, GOOD[:-1], GOOD + b"\x08"]))),
                min_size=1, max_size=12))
def test_remembered_answers_are_the_walks_answers(calls: list[tuple[int, bytes]]) -> None:
    for which, data in calls * 2:  # every payload at least twice: once walked, once perhaps remembered
        assert gogo_errors.unmarshal_error(TYPES[which], data) == fresh(TYPES[which], data)


def test_a_payload_good_for_one_type_is_judged_anew_for_another() -> None:
    data = pb.LeaseGrantRequest(TTL=60).SerializeToString()
    grant, rng = pb.LeaseGrantRequest.DESCRIPTOR, pb.RangeRequest.DESCRIPTOR
    assert gogo_errors.unmarshal_error(grant, data) is None
    assert gogo_errors.unmarshal_error(grant, data) is None
    assert gogo_errors.unmarshal_error(rng, data) == fresh(rng, data)
    assert gogo_errors.unmarshal_error(rng, data) is not None  # field 1: TTL a varint, key bytes

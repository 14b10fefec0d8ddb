"""Calls a release never answers (3.3): held open and logged, answered from 3.4 on.

Measured on real etcd 3.3.25 (tests/honeypot/v3/test_grpc_fidelity.py, cases with `held_on`): a
MoveLeader to a non-member loops until the leader changes (no ErrBadLeaderTransferee before 3.4), and
Debian's grpc-go 1.27 never turns a unary body that ends early into a status.
"""

from __future__ import annotations

import os

import grpc
import pytest

from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.proto import etcd_v3_pb2 as pb
from tests.support.harness import BackgroundSensor

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")


def _move_leader(hp: BackgroundSensor, timeout: float) -> grpc.StatusCode | None:
    with grpc.insecure_channel(hp.addr) as channel:
        try:
            move = channel.unary_unary("/etcdserverpb.Maintenance/MoveLeader",
                                       request_serializer=pb.MoveLeaderRequest.SerializeToString,
                                       response_deserializer=pb.HeaderOnlyResponse.FromString)
            move(pb.MoveLeaderRequest(targetID=12345), timeout=timeout)
        except grpc.RpcError as err:
            return err.code()
    return None


@pytest.mark.parametrize(("persona", "code", "held"), [
    ("3.3.25", grpc.StatusCode.DEADLINE_EXCEEDED, True),
    ("3.3.27", grpc.StatusCode.DEADLINE_EXCEEDED, True),
    ("3.4.23", grpc.StatusCode.FAILED_PRECONDITION, False),
])
def test_move_leader_to_a_non_member(tmp_path, persona: str, code: grpc.StatusCode, held: bool) -> None:
    config = SensorConfig(persona=persona, state_file=tmp_path / "state.json")
    with BackgroundSensor(config) as hp:
        assert _move_leader(hp, 1.0) == code  # held: only the client's own deadline ends it
        calls = [e for e in hp.memory.events if e["eventid"].endswith("grpc.request")
                 and e.get("grpc_method") == "/etcdserverpb.Maintenance/MoveLeader"]
        assert len(calls) == 1, [sorted(e.items()) for e in calls]
        assert calls[0].get("unanswered", False) is held
        assert ("status" in calls[0]) is not held
        # the connection still serves other calls after a held one
        with grpc.insecure_channel(hp.addr) as channel:
            rng = channel.unary_unary("/etcdserverpb.KV/Range", request_serializer=pb.RangeRequest.SerializeToString,
                                      response_deserializer=pb.RangeResponse.FromString)
            assert rng(pb.RangeRequest(key=b"/no/such/key"), timeout=5).count == 0

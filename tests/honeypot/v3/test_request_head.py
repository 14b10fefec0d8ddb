"""A request's header block is worked out once (request_head) but judged on every call: a honeytoken
in repeated metadata is reported each time, and heads of different blocks never mix."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events

from etcdsec.honeypot.v3.grpc.request_head import content_subtype, request_head
from etcdsec.honeypot.v3.grpc.server import GrpcConnection, frame_message
from etcdsec.honeypot.v3.state import V3State
from etcdsec.proto import etcd_v3_pb2 as pb

from .conftest import make_ctx, session

TOKEN = "hpt-9f2c41d0a7"
RANGE = frame_message(pb.RangeRequest(key=b"foo").SerializeToString())


def call_headers(*metadata: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/etcdserverpb.KV/Range"),
            (b":authority", b"x"), (b"content-type", b"application/grpc"), (b"te", b"trailers"), *metadata]


def test_a_token_in_repeated_metadata_is_reported_on_every_call() -> None:
    ctx, memory = make_ctx(dataset=[(b"foo", b"bar")], tokens={TOKEN: "bait/token"})
    conn = GrpcConnection(ctx, V3State(ctx), session())
    conn.start()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    ended = 0
    for metadata in [(b"token", TOKEN.encode()), (b"token", TOKEN.encode()), (b"x-a", b"plain"),
                     (b"token", TOKEN.encode())]:
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, call_headers((b"user-agent", b"grpc-go/1.41"), metadata))
        client.send_data(sid, RANGE, end_stream=True)
        conn.receive(client.data_to_send())
        ended += sum(isinstance(ev, h2.events.StreamEnded) for ev in client.receive_data(conn.data_to_send()))
    assert ended == 4
    used = [e for e in memory.of("honeytoken.used") if e["where"] == "grpc-metadata"]
    assert [e["token"] for e in used] == ["bait/token"] * 3
    calls = memory.of("grpc.request")
    assert [c["status"] for c in calls] == [16, 16, 0, 16]  # an unknown token: UNAUTHENTICATED, as etcd
    assert {c["user_agent"] for c in calls} == {"grpc-go/1.41"}


def test_heads_follow_their_own_block() -> None:
    plain = request_head(call_headers((b"user-agent", b"a")))
    again = request_head(call_headers((b"user-agent", b"a")))
    other = request_head([*call_headers((b"user-agent", b"b"), (b"grpc-encoding", b"gzip")),
                          (b"content-type", b"application/grpc+proto")])  # the last of a repeated field counts
    odd = request_head([(b":method", b"POST"), (b":path", b"/x\xff"), (b"authorization", b"t\xe9")])
    assert again == plain and (plain.user_agent, plain.encoding, plain.subtype) == ("a", "", "")
    assert (other.user_agent, other.encoding, other.subtype) == ("b", "gzip", "proto")
    assert (odd.path, odd.token, odd.content_type, odd.subtype) == ("/x\\xff", "t\\xe9", "", None)
    assert odd.view == b"POST /x\\xff\nauthorization: t\xe9\n\n"
    assert [content_subtype(c) for c in ("application/grpc", "application/grpc+JSON", "application/grpc;x",
                                         "application/grpcx", "text/plain")] == ["", "json", "x", None, None]

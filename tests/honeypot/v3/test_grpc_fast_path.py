"""The gRPC fast path (a known request block opening a unary stream, its whole message in one DATA
frame, the Range answer kept for identical bytes) must answer exactly what the slow path answers.

A real sensor on loopback and a raw HTTP/2 client over a real socket: the client's HPACK encoder
repeats the same block for the same call, as grpc clients and h2load do, so every call after the
first two takes the fast path (asserted: `Unary` events are counted). Then everything the kept answer
depends on changes between two identical Ranges: a write, a lease expiry, auth, a compaction, the
source's namespace; and the shapes it must not take (a split message, a reset stream, another
block) must still be answered as h2 answers them.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest

from etcdsec.honeypot.v3.grpc import server as grpc_server
from etcdsec.honeypot.v3.grpc.messages import frame_message
from etcdsec.proto import etcd_v3_pb2 as pb
from etcdsec.testbed.addresses import free_loopback_ip
from tests.honeypot.test_shared_keyspace import SOURCES, by_worker
from tests.honeypot.test_workers import start, stop
from tests.support.harness import BackgroundSensor

from .conftest import real_sensor

RANGE, PUT = "/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put"
SEED = [("foo", "seed"), ("other", "o")]
MAX_READS = 200  # per call, each bounded by the socket timeout


class RawClient:
    """One HTTP/2 connection speaking gRPC frame by frame (h2 as the client's state machine)."""

    def __init__(self, hp: BackgroundSensor | str, source: str | None = None) -> None:
        address = (hp, 2379) if isinstance(hp, str) else (hp.ip, hp.port)
        self.sock = socket.create_connection(address, timeout=10,
                                             source_address=(source, 0) if source else None)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        self.sock.sendall(self.h2.data_to_send())

    def close(self) -> None:
        self.sock.close()

    def send(self, path: str, message: bytes, metadata: tuple[tuple[bytes, bytes], ...] = (),
             split: int | None = None, reset: bool = False) -> int:
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
                                   (b":authority", b"hp"), (b"content-type", b"application/grpc"),
                                   (b"te", b"trailers"), (b"user-agent", b"raw-test/1"), *metadata])
        body = frame_message(message)
        if split is None:
            self.h2.send_data(sid, body, end_stream=True)
        else:  # one message in two DATA frames
            self.h2.send_data(sid, body[:split])
            self.h2.send_data(sid, body[split:], end_stream=True)
        if reset:
            self.h2.reset_stream(sid)
        self.sock.sendall(self.h2.data_to_send())
        return sid

    def answer(self, sid: int) -> tuple[int, bytes, str]:
        """(grpc-status, the message, grpc-message) of stream `sid`."""
        data, fields = b"", {}
        for _ in range(MAX_READS):
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            ended = False
            for ev in self.h2.receive_data(chunk):
                if isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    data += ev.data
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.ResponseReceived | h2.events.TrailersReceived) and ev.stream_id == sid:
                    fields.update(dict(ev.headers))
                ended = ended or (isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid)
            self.sock.sendall(self.h2.data_to_send())
            if ended:
                return int(fields[b"grpc-status"]), data[5:], fields.get(b"grpc-message", b"").decode()
        raise AssertionError("no answer")

    def call(self, path: str, message: bytes, **kw: object) -> tuple[int, bytes, str]:
        return self.answer(self.send(path, message, **kw))  # type: ignore[arg-type]

    def range(self, key: bytes, metadata: tuple[tuple[bytes, bytes], ...] = (), **kw: object) -> pb.RangeResponse:
        status, data, text = self.call(RANGE, pb.RangeRequest(key=key, **kw).SerializeToString(),  # type: ignore[arg-type]
                                       metadata=metadata)
        assert status == 0, text
        return pb.RangeResponse.FromString(data)

    def put(self, key: bytes, value: bytes, lease: int = 0) -> pb.PutResponse:
        status, data, text = self.call(PUT, pb.PutRequest(key=key, value=value, lease=lease).SerializeToString())
        assert status == 0, text
        return pb.PutResponse.FromString(data)


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many calls ended on the fast path (Unary events) and how many Range answers were kept ones."""
    seen = {"unary": 0, "kept": 0}
    on_unary, answer = grpc_server.GrpcConnection._on_unary, grpc_server.GrpcConnection._answer
    lookup = grpc_server.RANGES.lookup

    def counted_unary(self: grpc_server.GrpcConnection, ev: object) -> None:
        seen["unary"] += 1
        on_unary(self, ev)  # type: ignore[arg-type]

    def counted_lookup(*args: object) -> object:
        found = lookup(*args)  # type: ignore[arg-type]
        seen["kept"] += found is not None
        return found

    monkeypatch.setattr(grpc_server.GrpcConnection, "_on_unary", counted_unary)
    monkeypatch.setattr(grpc_server.RANGES, "lookup", counted_lookup)
    assert answer is grpc_server.GrpcConnection._answer
    return seen


@pytest.fixture
def hp(tmp_path: Path) -> Iterator[BackgroundSensor]:
    with real_sensor("3.5.1", SEED, tmp_path) as sensor:
        yield sensor


@pytest.fixture
def client(hp: BackgroundSensor) -> Iterator[RawClient]:
    c = RawClient(hp)
    yield c
    c.close()


def test_identical_ranges_see_every_write_between_them(client: RawClient, fast: dict[str, int]) -> None:
    first = [client.range(b"foo") for _ in range(4)]
    assert all(r == first[0] for r in first) and first[0].kvs[0].value == b"seed"
    assert fast["unary"] >= 2 and fast["kept"] >= 2  # the path under test was taken
    put = client.put(b"foo", b"changed")
    after = client.range(b"foo")
    assert after.kvs[0].value == b"changed" and after.header.revision == put.header.revision
    assert after.kvs[0].mod_revision == put.header.revision > first[0].header.revision
    client.put(b"unrelated", b"x")  # any write moves the header's revision, so the answer changes
    again = client.range(b"foo")
    assert again.header.revision == after.header.revision + 1 and again.kvs == after.kvs
    assert client.range(b"other").kvs[0].value == b"o"  # other request bytes, another answer


def test_kept_answers_stay_within_their_namespace(tmp_path: Path, fast: dict[str, int]) -> None:
    with real_sensor("3.5.1", SEED, tmp_path, namespace_writes=True) as hp:
        mine, theirs = RawClient(hp), RawClient(hp, source=free_loopback_ip(()))
        try:
            for _ in range(3):
                assert theirs.range(b"foo").kvs[0].value == b"seed"
            mine.put(b"foo", b"mine")
            for _ in range(3):
                assert mine.range(b"foo").kvs[0].value == b"mine"
                assert theirs.range(b"foo").kvs[0].value == b"seed"
            assert fast["kept"] >= 4
        finally:
            mine.close()
            theirs.close()


def test_a_lease_expiry_changes_the_kept_answer(client: RawClient, fast: dict[str, int]) -> None:
    status, data, _ = client.call("/etcdserverpb.Lease/LeaseGrant", pb.LeaseGrantRequest(TTL=2).SerializeToString())
    assert status == 0
    client.put(b"leased", b"v", lease=pb.LeaseGrantResponse.FromString(data).ID)
    before = [client.range(b"leased") for _ in range(3)]
    assert before[-1].count == 1 and fast["kept"] >= 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the lessor revokes it within ~2 s (etcd's minimum TTL)
        now = client.range(b"leased")
        if now.count == 0:
            break
        time.sleep(0.2)
    assert now.count == 0 and not now.kvs and now.header.revision > before[-1].header.revision


def test_auth_turned_on_is_seen_by_an_identical_range(client: RawClient, fast: dict[str, int]) -> None:
    for _ in range(3):
        assert client.range(b"foo").kvs[0].value == b"seed"
    assert fast["kept"] >= 1
    for path, msg in [("/etcdserverpb.Auth/UserAdd", pb.AuthUserAddRequest(name="root", password="pw")),
                      ("/etcdserverpb.Auth/RoleAdd", pb.AuthRoleAddRequest(name="root")),
                      ("/etcdserverpb.Auth/UserGrantRole", pb.AuthUserGrantRoleRequest(user="root", role="root")),
                      ("/etcdserverpb.Auth/AuthEnable", pb.AuthEnableRequest())]:
        assert client.call(path, msg.SerializeToString())[0] == 0
    status, _, text = client.call(RANGE, pb.RangeRequest(key=b"foo").SerializeToString())
    assert (status, text) == (3, "etcdserver: user name is empty")  # etcd 3.5's InvalidArgument


def test_a_compaction_is_seen_by_an_identical_range(client: RawClient, fast: dict[str, int]) -> None:
    rev = client.put(b"foo", b"new").header.revision
    client.put(b"foo", b"newer")
    old = [client.range(b"foo", revision=rev) for _ in range(3)]
    assert old[-1].kvs[0].value == b"new" and fast["kept"] >= 1
    assert client.call("/etcdserverpb.KV/Compact", pb.CompactionRequest(revision=rev + 1).SerializeToString())[0] == 0
    status, _, text = client.call(RANGE, pb.RangeRequest(key=b"foo", revision=rev).SerializeToString())
    assert (status, text) == (11, "etcdserver: mvcc: required revision has been compacted")


def test_shapes_the_fast_path_does_not_take_are_answered_alike(client: RawClient, fast: dict[str, int]) -> None:
    want = client.range(b"foo")
    client.range(b"foo")
    request = pb.RangeRequest(key=b"foo").SerializeToString()
    for split in (1, 5, 7):  # the message cut inside its prefix, at its end, inside the body
        status, data, _ = client.call(RANGE, request, split=split)
        assert status == 0 and pb.RangeResponse.FromString(data) == want
    status, data, _ = client.call(RANGE, request, metadata=((b"x-other", b"1"),))  # another block
    assert status == 0 and pb.RangeResponse.FromString(data) == want
    status, _, text = client.call(RANGE, request + b"\xff")  # a bad message, in the fast shape
    assert status == 13 and text.startswith("grpc: error unmarshalling request")
    status, _, text = client.call(RANGE, b"\x01" + request[1:])  # a flag byte gzip would set, no gzip
    assert status != 0
    client.send(RANGE, request, reset=True)  # answered by nobody: the client reset it
    assert client.range(b"foo") == want  # and the connection goes on
    assert fast["unary"] >= 4


def test_fast_path_events_are_the_slow_paths(hp: BackgroundSensor, client: RawClient, fast: dict[str, int]) -> None:
    for _ in range(4):
        client.range(b"foo")
    client.call(RANGE, pb.RangeRequest(key=b"foo").SerializeToString(), split=7)  # the slow path's event
    events = [e for e in hp.memory.of("etcdsec.grpc.request") if e["grpc_method"] == RANGE]
    assert fast["kept"] >= 2 and len(events) == 5

    def line(event: dict[str, object]) -> list[tuple[str, object]]:
        return [(k, v) for k, v in event.items() if k not in ("timestamp", "session", "src_port")]

    assert all(line(e) == line(events[-1]) for e in events)
    assert list(events[0]) == list(events[-1])  # the same fields in the same order
    assert events[0]["request"] == {"key": "foo"} and events[0]["user_agent"] == "raw-test/1"


def test_honeytokens_are_found_on_every_fast_call(tmp_path: Path, fast: dict[str, int]) -> None:
    token = "AKIAFASTPATH0001"
    with real_sensor("3.5.1", SEED, tmp_path, tokens={token: "aws-key"}) as hp:
        c = RawClient(hp)
        try:
            for _ in range(4):  # the token in the kept Range's key, then in repeated metadata
                c.range(token.encode())
            for _ in range(4):
                c.range(b"foo", metadata=((b"x-key", token.encode()),))
        finally:
            c.close()
        used = [(e["where"], e["token"]) for e in hp.memory.of("honeytoken.used")]
    assert fast["kept"] >= 4 and fast["unary"] >= 4
    assert used == [("grpc", "aws-key")] * 4 + [("grpc-metadata", "aws-key")] * 4


def test_identical_ranges_through_both_workers_see_writes_through_the_other(tmp_path: Path) -> None:
    proc, ip, _events = start(tmp_path)  # --workers 2, one keyspace: worker 1 reads from its replica
    sources = by_worker(SOURCES)
    clients = [RawClient(ip, source=sources[0][0]), RawClient(ip, source=sources[1][0])]
    try:
        for writer, reader in ((0, 1), (1, 0)):
            for i in range(3):
                value = f"w{writer}-{i}".encode()
                rev = clients[writer].put(b"foo", value).header.revision
                for _ in range(3):  # the kept answer on the reader's worker must follow every write
                    got = clients[reader].range(b"foo")
                    assert (got.kvs[0].value, got.header.revision) == (value, rev)
    finally:
        for c in clients:
            c.close()
        assert stop(proc) == 0

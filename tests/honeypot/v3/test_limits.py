"""A flooding gRPC client is slowed down, and cannot make the sensor hold unbounded request bytes."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings

from etcdsec.honeypot.context import Limits
from etcdsec.honeypot.v3.grpc.server import MAX_CONN_INBOX, MAX_CONN_OUTBOX, GrpcConnection, frame_message
from etcdsec.honeypot.v3.state import V3State
from etcdsec.proto import etcd_v3_pb2 as pb

from .conftest import make_ctx, real_sensor, session

RANGE = frame_message(pb.RangeRequest(key=b"k").SerializeToString())
HEADERS = [(":method", "POST"), (":scheme", "http"), (":authority", "x"), (":path", "/etcdserverpb.KV/Range"),
           ("content-type", "application/grpc"), ("te", "trailers")]


def sequential_calls(ip: str, n: int, timeout: float = 30.0) -> list[str]:
    """n unary Range calls, one after another, on ONE h2c connection; their grpc-status values."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    statuses: list[str] = []
    with socket.create_connection((ip, 2379), timeout=timeout) as sock:
        sock.sendall(conn.data_to_send())
        for _ in range(n):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, HEADERS)
            conn.send_data(sid, RANGE, end_stream=True)
            sock.sendall(conn.data_to_send())
            done = False
            while not done:
                data = sock.recv(65536)
                assert data, "connection closed"
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    if isinstance(ev, h2.events.TrailersReceived | h2.events.ResponseReceived) and ev.stream_id == sid:
                        status = dict(ev.headers).get("grpc-status")
                        if status is not None:
                            statuses.append(status)
                            done = True
                sock.sendall(conn.data_to_send())
    return statuses


def test_a_source_over_its_rate_is_slowed_not_refused(tmp_path: Path) -> None:
    limits = Limits(rate_per_source=100.0, burst_per_source=10)
    with real_sensor("3.5.1", [("k", "v")], tmp_path, limits=limits) as hp:
        started = time.monotonic()
        statuses = sequential_calls(hp.ip, 60)
        elapsed = time.monotonic() - started
    assert statuses == ["0"] * 60  # every call answered...
    assert elapsed >= 0.4  # ...but 50 calls over the burst at 100/s cannot finish sooner


def test_partial_requests_are_capped_per_connection() -> None:
    ctx, memory = make_ctx()
    server = GrpcConnection(ctx, V3State(ctx), session())
    server.start()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    client.initiate_connection()
    client.receive_data(server.data_to_send())
    streams = []
    for _ in range(8):  # eight 2 MiB messages announced, none ever completed
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, [*HEADERS[:3], (":path", "/etcdserverpb.KV/Put"), *HEADERS[4:]])
        streams.append(sid)
    header = b"\x00" + (2 * 1024 * 1024 - 1).to_bytes(4, "big")
    sent = {sid: False for sid in streams}
    refused: set[int] = set()
    for i in range(400):
        for sid in streams[i % 8:] + streams[:i % 8]:  # round robin: all eight fill up together
            if sid in refused:
                continue
            window = min(client.local_flow_control_window(sid), 16384)
            if window <= 0:
                continue
            chunk = b"x" * window if sent[sid] else header + b"x" * (window - 5)
            sent[sid] = True
            try:
                client.send_data(sid, chunk)
            except h2.exceptions.StreamClosedError:
                refused.add(sid)
        server.receive(client.data_to_send())
        assert server.buffered_in() <= MAX_CONN_INBOX + 16384
        for ev in client.receive_data(server.data_to_send()):
            if isinstance(ev, h2.events.ResponseReceived) and dict(ev.headers).get("grpc-status") == "8":
                refused.add(ev.stream_id)
    assert refused  # at least one stream was cut off once the budget was spent
    # the cut streams are logged as RESOURCE_EXHAUSTED; the others completed their (garbage) message
    assert {e["status"] for e in memory.of("grpc.request")} == {8, 13}


def test_a_client_that_never_reads_is_disconnected_after_the_idle_time(tmp_path: Path) -> None:
    limits = Limits(rate_per_source=0, idle_timeout_s=1.0)
    with real_sensor("3.5.1", [("big", "x" * 200_000)], tmp_path, limits=limits) as hp:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        conn.increment_flow_control_window(2**31 - 1 - 65535)  # "send me everything"...
        big = frame_message(pb.RangeRequest(key=b"big").SerializeToString())
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((hp.ip, 2379))
            for _ in range(100):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, HEADERS)
                conn.send_data(sid, big, end_stream=True)
            sock.sendall(conn.data_to_send())  # ...and never read a byte
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not hp.memory.of("session.closed"):
                time.sleep(0.1)
        assert hp.memory.of("session.closed"), "the sensor still holds a connection nobody reads"


def test_answers_a_client_does_not_read_are_capped_per_connection() -> None:
    """A client that never opens its window: answers wait in the outbox until it holds 32 MiB, then
    further calls are refused (UNAVAILABLE) instead of growing it."""
    ctx, memory = make_ctx(dataset=[(b"big", b"x" * (1 << 20))])
    server = GrpcConnection(ctx, V3State(ctx), session())
    server.start()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    client.initiate_connection()
    client.receive_data(server.data_to_send())
    big = frame_message(pb.RangeRequest(key=b"big").SerializeToString())
    for _ in range(40):  # 40 answers of 1 MiB; the client's window lets 64 KiB of them out
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, HEADERS)
        client.send_data(sid, big, end_stream=True)
        server.receive(client.data_to_send())
        server.data_to_send()  # sent, never read: no WINDOW_UPDATE comes back
    assert MAX_CONN_OUTBOX < server.buffered_out() <= MAX_CONN_OUTBOX + (2 << 20)
    statuses = [e["status"] for e in memory.of("grpc.request")]
    assert statuses[:32] == [0] * 32 and set(statuses[33:]) == {14}  # 14: UNAVAILABLE

"""The gateway over WebSocket (etcd's grpc-websocket-proxy): same handshake and frames as real etcd."""

from __future__ import annotations

import json
import os
import socket
import struct
import time

import pytest

from etcdsec.honeypot.context import Identity
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.honeypot.wire import websocket
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.support.fidelity import normalise_json
from tests.support.harness import BackgroundSensor

from .conftest import raw_exchange

HANDSHAKE = (b"GET /v3/watch HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def client_frame(payload: bytes, opcode: int = websocket.TEXT) -> bytes:
    mask = os.urandom(4)
    head = bytes([0x80 | opcode, 0x80 | len(payload)]) if len(payload) < 126 else \
        bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", len(payload))
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def server_frames(data: bytes) -> list[bytes]:
    out = []
    while len(data) >= 2:
        n, pos = data[1] & 0x7F, 2
        if n == 126:
            n, pos = struct.unpack("!H", data[2:4])[0], 4
        out.append(data[pos:pos + n])
        data = data[pos + n:]
    return out


def session(ip: str, later_put: bool = False) -> tuple[bytes, list[dict]]:
    with socket.create_connection((ip, 2379), timeout=3) as sock:
        sock.sendall(HANDSHAKE)
        time.sleep(0.3)
        head = sock.recv(4096)
        sock.sendall(client_frame(b'{"create_request":{"key":"Zm9v"}}'))
        sock.sendall(client_frame(b'{"create_request":{"key":"YmFy","start_revision":"1"}}'))
        time.sleep(0.5)
        if later_put:  # a write on another connection, after a quiet spell: the watch reports it
            time.sleep(1.0)
            body = b'{"key":"Zm9v","value":"djE="}'
            answer = raw_exchange(ip, 2379, b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                  + str(len(body)).encode() + b"\r\n\r\n" + body)
            assert answer.startswith(b"HTTP/1.1 200 OK")
            time.sleep(0.5)
        sock.settimeout(0.5)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            pass
        return head, [normalise_json(json.loads(f), ip) for f in server_frames(data)]


def test_frame_codec_round_trip() -> None:
    parser = websocket.FrameParser(1000)
    frames = parser.feed(client_frame(b"hello") + client_frame(b"x" * 300)[:10])
    assert [(f.opcode, f.payload) for f in frames] == [(websocket.TEXT, b"hello")]
    with pytest.raises(websocket.FrameError, match="not masked"):
        websocket.FrameParser(100).feed(websocket.encode(b"server frame"))
    with pytest.raises(websocket.FrameError, match="too large"):
        websocket.FrameParser(10).feed(client_frame(b"x" * 11))
    assert websocket.accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 example


def test_watch_over_websocket_answers_like_etcd(tmp_path) -> None:
    seed, state = tmp_path / "seed.yaml", tmp_path / "state.json"
    seed.write_text("keys: {}\n")
    ident = Identity.create("etcd-test", [], [])
    ident.revision_base = 1  # empty and fresh, like the real one
    state.write_text(json.dumps(ident.to_dict()))
    with EtcdServer(EtcdConfig(version="3.5")) as real, \
            BackgroundSensor(SensorConfig(state_file=state, seed_file=seed)) as hp:
        real_head, real_frames = session(real.ip)
        hp_head, hp_frames = session(hp.ip)
        assert hp_head == real_head  # same accept key, same header order
        assert hp_frames == real_frames and len(real_frames) == 2
        assert hp.memory.of("websocket.message")[0]["body"] == '{"create_request":{"key":"Zm9v"}}'


def test_a_websocket_watch_stays_live_like_etcd(tmp_path) -> None:
    """etcd pushes later events on the WebSocket; the sensor too, past its idle timeout."""
    from etcdsec.honeypot.context import Limits

    seed, state = tmp_path / "seed.yaml", tmp_path / "state.json"
    seed.write_text("keys: {}\n")
    ident = Identity.create("etcd-test", [], [])
    ident.revision_base = 1
    state.write_text(json.dumps(ident.to_dict()))
    limits = Limits(idle_timeout_s=0.5)
    with EtcdServer(EtcdConfig(version="3.5")) as real, \
            BackgroundSensor(SensorConfig(state_file=state, seed_file=seed, limits=limits)) as hp:
        _, real_frames = session(real.ip, later_put=True)
        _, hp_frames = session(hp.ip, later_put=True)
    assert len(real_frames) == 3 and "events" in real_frames[2]["result"]
    assert hp_frames == real_frames

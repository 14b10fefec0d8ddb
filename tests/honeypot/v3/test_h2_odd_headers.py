"""HTTP/2 request header values that are not UTF-8: real etcd 3.4 and 3.5 (grpc-go) answer the call
as if nothing were odd; so does the sensor, and it logs the bytes readably (\\xNN)."""

from __future__ import annotations

import socket
import time

import h2.config
import h2.connection
import h2.events
import pytest

from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.proto import etcd_v3_pb2 as pb
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.support.harness import BackgroundSensor

ODD = [(b"x-odd", b"\xff\xfe"), (b"user-agent", b"caf\xe9-client/1")]


def range_call(ip: str, port: int) -> list[object]:
    """One KV.Range with odd metadata; what came back: status headers, message sizes, trailers."""
    config = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False,
                                       normalize_outbound_headers=False, validate_inbound_headers=False)
    client = h2.connection.H2Connection(config)
    client.initiate_connection()
    msg = pb.RangeRequest(key=b"foo").SerializeToString()
    client.send_headers(1, [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/etcdserverpb.KV/Range"),
                            (b":authority", b"x"), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
                            *ODD])
    client.send_data(1, b"\x00" + len(msg).to_bytes(4, "big") + msg, end_stream=True)
    seen: list[object] = []
    with socket.create_connection((ip, port), timeout=3) as sock:
        sock.sendall(client.data_to_send())
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and "end" not in seen:
            data = sock.recv(65536)
            if not data:
                seen.append("closed")
                break
            for ev in client.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    seen.append([(k, v) for k, v in ev.headers if k in (b":status", b"grpc-status")])
                elif isinstance(ev, h2.events.DataReceived):
                    seen.append("data")
                elif isinstance(ev, h2.events.StreamEnded):
                    seen.append("end")
                elif isinstance(ev, h2.events.StreamReset | h2.events.ConnectionTerminated):
                    seen.append(type(ev).__name__)
            sock.sendall(client.data_to_send())
    return seen


@pytest.mark.parametrize("version, persona", [("3.4", "3.4.23"), ("3.5", "3.5.1")])
def test_non_utf8_header_values_are_answered_like_etcd(version, persona) -> None:
    with EtcdServer(EtcdConfig(version=version)) as real:
        expected = range_call(real.ip, 2379)
    assert expected == [[(b":status", b"200")], "data", [(b"grpc-status", b"0")], "end"]
    with BackgroundSensor(SensorConfig(persona=persona, state_file=None)) as hp:
        assert range_call(hp.ip, 2379) == expected
        time.sleep(0.1)
        assert hp.memory.of("sensor.error") == [] and hp.memory.of("malformed") == []
        call = [e for e in hp.memory.of("grpc.request") if e["grpc_method"] == "/etcdserverpb.KV/Range"]
        assert call and call[0]["user_agent"] == "caf\\xe9-client/1" and call[0]["status"] == 0

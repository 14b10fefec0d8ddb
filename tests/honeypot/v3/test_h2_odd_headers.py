"""An HTTP/2 request header that is not UTF-8: recorded as malformed h2 with its bytes (the h2
library cannot decode it), never a sensor error."""

from __future__ import annotations

import socket
import time

import h2.config
import h2.connection

from etcdsec.honeypot.harness import BackgroundSensor
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.proto import etcd_v3_pb2 as pb


def test_non_utf8_header_value_is_logged_malformed() -> None:
    with BackgroundSensor(SensorConfig(persona="3.5.1", state_file=None)) as hp:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                           validate_outbound_headers=False, normalize_outbound_headers=False)
        client = h2.connection.H2Connection(config)
        client.initiate_connection()
        msg = pb.RangeRequest(key=b"foo").SerializeToString()
        client.send_headers(1, [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/etcdserverpb.KV/Range"),
                                (b":authority", b"x"), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
                                (b"x-odd", b"\xff\xfe")])
        client.send_data(1, b"\x00" + len(msg).to_bytes(4, "big") + msg, end_stream=True)
        with socket.create_connection((hp.ip, 2379), timeout=3) as sock:
            sock.sendall(client.data_to_send())
            time.sleep(0.3)
        time.sleep(0.2)
        assert hp.memory.of("sensor.error") == []
        malformed = hp.memory.of("malformed")
        assert [e["protocol"] for e in malformed] == ["h2"] and malformed[0]["error"] == "UnicodeDecodeError"
        assert malformed[0]["raw_len"] > 0

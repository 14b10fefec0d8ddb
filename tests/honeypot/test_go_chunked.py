"""Go's chunked body reader (wire/go_chunked.py), fed whole and byte by byte: what Go reads, h11
refuses (bare LF, blanks), and the errors Go's read ends with. Against real etcd: the smuggling
probes of tests/support/corpus/field.yaml."""

from __future__ import annotations

import pytest

from etcdsec.honeypot.wire.go_chunked import MAX_LINE, GoChunked


def _read(data: bytes, one_by_one: bool) -> tuple[GoChunked, bytes]:
    """The reader after `data`, and the bytes after the body (as the connection takes them back)."""
    reader = GoChunked()
    step = 1 if one_by_one else len(data) or 1
    for i in range(0, len(data), step):
        reader.feed(data[i:i + step])
        if reader.done or reader.error:
            return reader, reader.rest + data[i + step:]
    return reader, b""


@pytest.mark.parametrize("one_by_one", [False, True])
@pytest.mark.parametrize(("wire", "body", "rest"), [
    (b"2\r\n{}\r\n0\r\n\r\nGET / HTTP/1.1\r\n", b"{}", b"GET / HTTP/1.1\r\n"),
    (b"2;x=y\r\n{}\r\n0\n\r\nNEXT", b"{}", b"NEXT"),  # extension dropped, bare LF after the size
    (b"2 \t\r\n{}\r\n1\r\n!\r\n0\r\n\r\n", b"{}!", b""),  # blanks before the line end
    (b"A\r\n0123456789\r\n0\r\nX-T: 1\nY: 2\r\n\r\nNEXT", b"0123456789", b"NEXT"),  # a trailer
    (b"0\r\n\r\n", b"", b""),
])
def test_go_reads_what_h11_refuses(wire: bytes, body: bytes, rest: bytes, one_by_one: bool) -> None:
    reader, after = _read(wire, one_by_one)
    assert (reader.done, reader.error, bytes(reader.body), after) == (True, "", body, rest)


@pytest.mark.parametrize(("wire", "error"), [
    (b"2\r\n{}XX0\r\n\r\n", "malformed chunked encoding"),
    (b"00000000000000002\r\n{}\r\n0\r\n\r\n", "http chunk length too large"),
    (b"\r\n", "empty hex number for chunk length"),
    (b"2g\r\n", "invalid byte in chunk length"),
    (b"1" * MAX_LINE, "header line too long"),
])
def test_go_read_errors(wire: bytes, error: str) -> None:
    for one_by_one in (False, True):
        reader, _ = _read(wire, one_by_one)
        assert (reader.done, reader.error) == (False, error)


def test_incomplete_waits() -> None:
    reader, _ = _read(b"5\r\nab", False)
    assert not reader.done and not reader.error and bytes(reader.body) == b"ab" and reader.rest == b""


def test_sensor_caps_a_chunked_body_and_serves_what_follows_one() -> None:
    """On a sensor: a chunked body past the cap gets 413 and the end; a body sent a byte at a time,
    bare-LF framed, is answered and the pipelined request after it too."""
    import socket
    import time

    from etcdsec.honeypot.core.limits import Limits
    from etcdsec.honeypot.sensor import SensorConfig
    from tests.honeypot.conftest import raw_exchange
    from tests.support.harness import BackgroundSensor

    with BackgroundSensor(SensorConfig(persona="3.5.1", limits=Limits(max_request_bytes=1000))) as hp:
        head = b"POST /v3/kv/range HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        out = raw_exchange(hp.ip, 2379, head + (b"100\r\n" + b"x" * 256 + b"\r\n") * 5)  # 1280 bytes
        assert out.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
        wire = (b"POST /v3/kv/range HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"e;x\n{\"key\":\"Zm9v\"}\r\n0\n\r\nGET /version HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        with socket.create_connection((hp.ip, 2379), timeout=3) as sock:
            for i in range(len(wire)):  # bounded: one byte per send, about 140 sends
                sock.sendall(wire[i:i + 1])
            got, deadline = b"", time.monotonic() + 3
            while time.monotonic() < deadline and (chunk := sock.recv(65536)):
                got += chunk
        assert got.count(b"HTTP/1.1 200 OK\r\n") == 2 and got.endswith(b'"etcdcluster":"3.5.0"}')

"""A minimal, bounded gRPC unary client over HTTP/2: the h2 library does the protocol.

Enough to ask etcd's v3 API directly when its JSON gateway is switched off
(`--enable-grpc-gateway=false`): an attacker with etcdctl still gets in, so the prober must look.
"""

from __future__ import annotations

import asyncio
import ssl

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from etcdsec.net.http1 import USER_AGENT


class GrpcError(Exception):
    """The peer did not answer gRPC within the bounds."""


class GrpcChannel:
    """One HTTP/2 connection; calls run one after another on fresh streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: str,
                 scheme: str) -> None:
        self.reader, self.writer = reader, writer
        self.authority, self.scheme = authority, scheme
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.writer.write(self.h2.data_to_send())
        self.usable = True

    async def unary(self, path: str, message: bytes, metadata: list[tuple[str, str]] | None = None,
                    timeout: float = 4.0, max_bytes: int = 1 << 20) -> tuple[int, str, bytes]:
        """(grpc-status, grpc-message, response message bytes)."""
        if not self.usable:
            raise GrpcError("channel closed")
        try:
            async with asyncio.timeout(timeout):
                return await self._call(path, message, metadata or [], max_bytes)
        except TimeoutError:
            self.usable = False
            raise GrpcError(f"no complete gRPC answer to {path} within {timeout:g}s") from None
        except h2.exceptions.ProtocolError as exc:
            self.usable = False
            raise GrpcError(f"not HTTP/2: {exc}") from None
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            self.usable = False
            raise GrpcError(f"gRPC connection failed: {exc}") from None

    async def _call(self, path: str, message: bytes, metadata: list[tuple[str, str]],
                    max_bytes: int) -> tuple[int, str, bytes]:
        conn = self.h2
        sid = conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", self.scheme), (":path", path), (":authority", self.authority),
                   ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", USER_AGENT),
                   *metadata]
        conn.send_headers(sid, headers)
        conn.send_data(sid, b"\x00" + len(message).to_bytes(4, "big") + message, end_stream=True)
        self.writer.write(conn.data_to_send())
        await self.writer.drain()
        body = bytearray()
        status: int | None = None
        text = ""
        while True:
            data = await self.reader.read(65536)
            if not data:
                self.usable = False
                raise GrpcError("connection closed before a gRPC answer")
            if data.startswith(b"HTTP/"):  # an HTTP/1 server answering the preface: no frame will come
                self.usable = False
                raise GrpcError("the server answered HTTP/1, not HTTP/2")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived) \
                        and event.stream_id == sid:
                    fields = dict(event.headers)
                    if "grpc-status" in fields:
                        status = int(fields["grpc-status"]) if str(fields["grpc-status"]).isdigit() else 2
                        text = str(fields.get("grpc-message", ""))
                    elif isinstance(event, h2.events.ResponseReceived) and fields.get(":status") != "200":
                        raise GrpcError(f"HTTP/2 status {fields.get(':status')} instead of gRPC")
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, sid)
                    if len(body) > max_bytes:
                        self.usable = False
                        raise GrpcError(f"gRPC answer larger than {max_bytes} bytes")
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == sid:
                    raise GrpcError(f"stream reset (code {event.error_code})")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self.usable = False
                    if status is None:
                        raise GrpcError("HTTP/2 connection terminated by the server")
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == sid:
                    self.writer.write(conn.data_to_send())
                    if status is None:
                        raise GrpcError("gRPC answer without grpc-status")
                    return status, _percent_decode(text), _unframe(bytes(body))
            self.writer.write(conn.data_to_send())

    async def close(self) -> None:
        self.usable = False
        try:
            self.h2.close_connection()
            self.writer.write(self.h2.data_to_send())
            self.writer.close()
            async with asyncio.timeout(1):
                await self.writer.wait_closed()
        except (TimeoutError, OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass


def _unframe(body: bytes) -> bytes:
    """The first length-prefixed message (uncompressed) of a gRPC body."""
    if len(body) < 5:
        return b""
    if body[0] != 0:
        raise GrpcError("compressed gRPC messages are not supported")
    length = int.from_bytes(body[1:5], "big")
    return body[5:5 + length]


def _percent_decode(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)

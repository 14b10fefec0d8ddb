"""h2 as etcd's grpc-go transport behaves on a plain-text port: the handshake's first frame must be
a SETTINGS frame (`v3/grpc/handshake.py` decides), and a HEADERS frame on a stream id not above all before
it ends the connection (grpc-go takes every HEADERS for a new stream). Both close without a GOAWAY,
as measured against etcd 3.4.23 and 3.5.1 (docs/honeypot-fidelity.md)."""

from __future__ import annotations

from typing import Any

import h2.connection
import h2.exceptions

from etcdsec.honeypot.v3.grpc.handshake import first_frame_ok


class StreamIdReused(h2.exceptions.ProtocolError):
    """HEADERS on a stream id already used: grpc-go takes every HEADERS frame for a new stream and
    ends the connection at one not above all before it (etcd 3.4/3.5 on plain text close, no
    GOAWAY: measured)."""


class FirstFrameNotSettings(h2.exceptions.ProtocolError):
    """grpc-go's handshake refused the client's first frame (v3/grpc/handshake.py): closed, no GOAWAY."""


class GrpcGoH2(h2.connection.H2Connection):
    _early: bytes | None = b""  # the client's bytes until its first frame is whole (None: handshake done)

    def receive_data(self, data: bytes) -> list[Any]:
        if self._early is not None:
            self._early += data
            accepted = first_frame_ok(self._early)
            if accepted is None:
                return []
            if not accepted:
                raise FirstFrameNotSettings("first frame is not an acceptable SETTINGS frame")
            data, self._early = self._early, None
        return super().receive_data(data)

    def _receive_headers_frame(self, frame: Any) -> Any:
        if frame.stream_id <= self.highest_inbound_stream_id:
            raise StreamIdReused(f"stream id {frame.stream_id} reused")
        return super()._receive_headers_frame(frame)

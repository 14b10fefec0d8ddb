"""WebSocket framing (RFC 6455), sans-IO: etcd's gateway serves /v3/watch over WebSocket too.

Only what a server needs: the handshake accept key, a frame parser for client (masked) frames,
and an unmasked frame encoder.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


class FrameError(ValueError):
    pass


def accept_key(key: bytes) -> str:
    """The Sec-WebSocket-Accept for the key's bytes as sent (gorilla hashes the header's bytes)."""
    return base64.b64encode(hashlib.sha1(key.strip() + GUID).digest()).decode()  # SHA-1: RFC 6455


def handshake_response(key: bytes) -> bytes:
    """gorilla/websocket's 101, byte for byte as etcd sends it."""
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n")


def encode(payload: bytes, opcode: int = TEXT) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x80 | opcode, 127]) + struct.pack("!Q", n)
    return head + payload


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes


class FrameParser:
    """Feed bytes, take complete frames; messages over `max_payload` raise FrameError."""

    def __init__(self, max_payload: int) -> None:
        self.buf = bytearray()
        self.max_payload = max_payload

    def feed(self, data: bytes) -> list[Frame]:
        self.buf += data
        frames = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _next(self) -> Frame | None:
        b = self.buf
        if len(b) < 2:
            return None
        fin, opcode, masked, n = bool(b[0] & 0x80), b[0] & 0x0F, bool(b[1] & 0x80), b[1] & 0x7F
        pos = 2
        if n == 126:
            if len(b) < 4:
                return None
            n, pos = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, pos = struct.unpack("!Q", b[2:10])[0], 10
        if n > self.max_payload:
            raise FrameError("frame too large")
        if not masked:
            raise FrameError("client frame not masked")
        if len(b) < pos + 4 + n:
            return None
        mask = b[pos:pos + 4]
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(b[pos + 4:pos + 4 + n]))
        del b[:pos + 4 + n]
        return Frame(fin, opcode, data)

"""Frames between a worker and the keyspace owner (--workers N), sans-IO.

A frame is a 4-byte big-endian length and a msgpack array `[kind, id, *fields]`; bytes stay bytes
(protobuf requests and responses travel as they are). `id` is a request id for CALL/REPLY, so one
link can carry many operations in flight, and a watch stream id for the WATCH_* kinds. The decoder
takes bytes as they arrive and returns whole frames; a frame that is too long or not a well-formed
array of known shape raises `CodecError` (the link is then closed, never guessed at).
"""

from __future__ import annotations

from typing import Any

import msgpack

MAX_FRAME = 96 << 20  # above the biggest answer (a Range of a full 64 MiB store) with its framing

CALL = 1  # id, path, src_ip, token ("" = none), request bytes
REPLY = 2  # id, code (0 = ok), payload bytes | list of bytes (server stream) | error message
WATCH_OPEN = 3  # id, stream id, src_ip (answered by an empty REPLY)
WATCH_REQ = 4  # id, stream id, WatchRequest bytes (answered by an empty REPLY after its pushes)
WATCH_CLOSE = 5  # stream id
WATCH_PUSH = 6  # stream id, WatchResponse bytes
V2_HOLD = 7  # id, src_ip, v2 request (a held `wait=true`): REPLY with the head, then V2_CHUNKs, V2_END
V2_CHUNK = 8  # id of the V2_HOLD, body bytes (owner -> worker)
V2_END = 9  # id of the V2_HOLD: the body ended (owner -> worker) or the client left (worker -> owner)
REPL_SNAP = 10  # seq, the owner's v3 keyspace (a snapshot record) for the worker's replica
REPL = 11  # seq, one change record (owner -> worker, before the reply of the write that made it)
REPL_ASK = 12  # 0: a replica that dropped changes asks for a snapshot, and changes again (worker -> owner)
REPL_PAUSE = 13  # 0: a replica nobody reads from: no more changes until it asks (worker -> owner)

# kind -> the number of fields after the id, and their types
_SHAPES: dict[int, tuple[type | tuple[type, ...], ...]] = {
    CALL: (str, str, str, bytes),
    REPLY: (int, (bytes, list, str)),
    WATCH_OPEN: (int, str),
    WATCH_REQ: (int, bytes),
    WATCH_CLOSE: (),
    WATCH_PUSH: (bytes,),
    V2_HOLD: (str, bytes),
    V2_CHUNK: (bytes,),
    V2_END: (),
    REPL_SNAP: (bytes,),
    REPL: (bytes,),
    REPL_ASK: (),
    REPL_PAUSE: (),
}


class CodecError(Exception):
    """A frame that no worker or owner of ours would have sent."""


def encode(kind: int, ident: int, *fields: Any) -> bytes:
    body: bytes = msgpack.packb([kind, ident, *fields], use_bin_type=True)
    if len(body) > MAX_FRAME:
        raise CodecError(f"frame of {len(body)} bytes over the {MAX_FRAME} cap")
    return len(body).to_bytes(4, "big") + body


def _check(frame: object) -> tuple[Any, ...]:
    if not isinstance(frame, list) or len(frame) < 2:
        raise CodecError("frame is not [kind, id, ...]")
    kind, ident = frame[0], frame[1]
    shape = _SHAPES.get(kind) if isinstance(kind, int) else None
    if shape is None or not isinstance(ident, int) or len(frame) != 2 + len(shape):
        raise CodecError(f"unknown frame kind or shape: {str(kind)[:20]}")
    for value, want in zip(frame[2:], shape, strict=True):
        if not isinstance(value, want):
            raise CodecError(f"frame kind {kind}: field of type {type(value).__name__}")
    if kind == REPLY and isinstance(frame[3], list) and not all(isinstance(x, bytes) for x in frame[3]):
        raise CodecError("stream reply with a non-bytes part")
    return tuple(frame)


class FrameDecoder:
    """Bytes in, whole frames out; holds at most one partial frame."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        self._buf += data
        out: list[tuple[Any, ...]] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 4:
            length = int.from_bytes(buf[pos:pos + 4], "big")
            if length > self.max_frame:
                raise CodecError(f"frame of {length} bytes over the {self.max_frame} cap")
            if len(buf) - pos - 4 < length:
                break
            try:
                frame = msgpack.unpackb(bytes(buf[pos + 4:pos + 4 + length]), raw=False, use_list=True,
                                        strict_map_key=True)
            except (ValueError, TypeError, msgpack.UnpackException) as exc:
                raise CodecError(f"undecodable frame: {type(exc).__name__}") from None
            out.append(_check(frame))
            pos += 4 + length
        if pos:
            del buf[:pos]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)

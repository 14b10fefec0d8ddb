"""gRPC's message framing and what a message becomes in an event (sans-IO, no connection state)."""

from __future__ import annotations

import contextlib
import json
import struct
import zlib
from typing import Any
from urllib.parse import quote

import orjson
from google.protobuf.message import Message

from etcdsec.honeypot.v3.errors import Code, V3Error
from etcdsec.honeypot.v3.gateway import jsonpb

OK_TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]  # grpc-go always sends grpc-message


def frame_message(payload: bytes) -> bytes:
    """gRPC length-prefixed message: uncompressed flag + 4-byte big-endian length."""
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def loggable(msg: Message, limit: int) -> dict[str, Any]:
    """The request as a dict for events: bytes fields as text when they are UTF-8, bounded in size."""
    d = jsonpb.to_dict(msg, text_bytes=True)
    # json.dumps' text is at most twice orjson's compact bytes (one space per separator; escapes
    # alike), so a small request is known to fit without the slow encoder.
    with contextlib.suppress(TypeError):  # orjson.JSONEncodeError: let json decide
        if 2 * len(orjson.dumps(d)) <= limit:
            return d
    text = json.dumps(d, ensure_ascii=False)
    if len(text) > limit:
        return {"truncated": True, "json": text[:limit]}
    return d


def decompress(encoding: str, flag: int, payload: bytes, max_message: int) -> bytes:
    """A compressed message's bytes as grpc-go's recvAndDecompress gets them, or its error."""
    if flag != 1:
        raise V3Error(Code.INTERNAL, f"grpc: received unexpected payload format {flag}")
    if encoding in ("", "identity"):
        raise V3Error(Code.INTERNAL, "grpc: compressed flag set with identity or empty encoding")
    try:  # bounded: a gzip bomb stops at the message cap
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = d.decompress(payload, max_message + 1)
    except zlib.error as exc:
        raise V3Error(Code.INTERNAL, f"grpc: failed to decompress the received message {exc}") from None
    if len(out) > max_message:
        raise V3Error(Code.RESOURCE_EXHAUSTED, "grpc: received message after decompression larger than max "
                      f"({len(out)} vs. {max_message})")
    return out


def trailers_for(code: int, message: str) -> list[tuple[bytes, bytes]]:
    """grpc-go's trailers: grpc-message always (empty on success), percent-encoded as grpc-go does."""
    if code == Code.OK and not message:
        return OK_TRAILERS
    return [(b"grpc-status", str(int(code)).encode()),
            (b"grpc-message", quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~").encode() if message else b"")]

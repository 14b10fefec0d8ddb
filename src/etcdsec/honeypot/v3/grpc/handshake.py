"""grpc-go's server handshake on a plain-text port, sans-IO.

After the 24-byte client preface grpc-go reads one whole frame before anything else, and it must be
a SETTINGS frame that x/net/http2 parses; otherwise grpc-go closes the connection without a word
(its own SETTINGS already sent). Sources: grpc-go `internal/transport/http2_server.go`
(`newHTTP2Server`: "saw invalid preface type"), x/net/http2 `frame.go` (`ReadFrame`: a frame over
the read limit is refused before its payload is read; `parseSettingsFrame`). Measured against etcd
3.5.1 and 3.4.23 in docs/honeypot-fidelity.md ("First bytes").
"""

from __future__ import annotations

PREFACE_LEN = 24
FRAME_HEADER_LEN = 9
MAX_FRAME = 16384  # the MAX_FRAME_SIZE grpc-go announces, and the limit its framer reads with
MAX_WINDOW = (1 << 31) - 1
_SETTINGS, _ACK, _INITIAL_WINDOW_SIZE = 0x4, 0x1, 0x4


def first_frame_ok(data: bytes) -> bool | None:
    """Whether grpc-go accepts the client's first frame; None until it is whole.

    `data`: every byte the client sent, preface included (at most 24 + 9 + MAX_FRAME are looked at).
    """
    header = data[PREFACE_LEN:PREFACE_LEN + FRAME_HEADER_LEN]
    if len(header) < FRAME_HEADER_LEN:
        return None
    length = int.from_bytes(header[:3], "big")
    if length > MAX_FRAME:
        return False
    start = PREFACE_LEN + FRAME_HEADER_LEN
    if len(data) < start + length:
        return None
    kind, flags, stream = header[3], header[4], int.from_bytes(header[5:9], "big") & 0x7FFF_FFFF
    if kind != _SETTINGS or stream != 0:
        return False
    if flags & _ACK:
        return length == 0
    if length % 6:
        return False
    payload = data[start:start + length]
    return all(not (int.from_bytes(payload[i:i + 2], "big") == _INITIAL_WINDOW_SIZE
                    and int.from_bytes(payload[i + 2:i + 6], "big") > MAX_WINDOW)
               for i in range(0, length, 6))

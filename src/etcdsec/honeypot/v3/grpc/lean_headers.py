"""Which request header blocks the lean HTTP/2 path vouches for, without h2's validators.

gRPC clients send one shape: the four pseudo-headers first (POST), then lowercase metadata. A
block of exactly that shape is one h2 accepts too (`validate_inbound_headers`), and the lean path
serves it; anything else (host, connection headers, odd characters, a pseudo-header out of place) is
left to h2, which knows the rules. One content-length of plain digits is served too (h2load and
other generic HTTP/2 clients send it; `LeanH2` checks the body against it as h2 does); a second
one, or any other value, goes to h2. Stricter than h2, never looser: `tests/honeypot/v3/test_lean_h2.py`
checks that with hypothesis.
"""

from __future__ import annotations

import re

PSEUDO = frozenset({b":method", b":scheme", b":path", b":authority"})
# Fields h2 checks against other fields, or rejects outright.
_LEFT_TO_H2 = frozenset({b"host", b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding",
                         b"upgrade"})
CONTENT_LENGTH = b"content-length"
_MAX_LENGTH_DIGITS = 18  # h2 takes any 1*DIGIT; a longer one (beyond any body we accept) is left to it
_NAME = re.compile(rb"[a-z0-9!#$%&'*+.^_`|~-]+\Z")
# Visible bytes with inner spaces: no control byte, no surrounding whitespace.
_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff](?:[\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?\Z")
_MAX_KNOWN = 4096  # fields remembered, each at most _MAX_KNOWN_FIELD bytes: at most ~1 MiB held
_MAX_KNOWN_FIELD = 256
_known_fields: set[tuple[bytes, bytes]] = set()  # small regular fields already found good: metadata repeats


def _field_ok(name: bytes, value: bytes) -> bool:
    if name in _LEFT_TO_H2 or _NAME.match(name) is None or _VALUE.match(value) is None:
        return False
    if name == CONTENT_LENGTH:
        return value.isdigit() and len(value) <= _MAX_LENGTH_DIGITS
    return name != b"te" or value == b"trailers"


def vouch_request(headers: list[tuple[bytes, bytes]]) -> bool:
    """True for a gRPC-shaped request block: the lean path may serve it as h2 would."""
    seen: set[bytes] = set()
    regular = sized = False
    for name, value in headers:
        if name[:1] == b":":
            if regular or name not in PSEUDO or name in seen:
                return False
            seen.add(name)
            if not value or _VALUE.match(value) is None:
                return False
            continue
        regular = True
        if name == CONTENT_LENGTH:
            if sized:  # h2 compares repeated lengths: its judgement
                return False
            sized = True
        if (name, value) in _known_fields:
            continue
        if not _field_ok(name, value):
            return False
        if len(name) + len(value) > _MAX_KNOWN_FIELD:
            continue
        if len(_known_fields) >= _MAX_KNOWN:
            _known_fields.clear()
        _known_fields.add((name, value))
    if len(seen) != 4 and seen != {b":method", b":scheme", b":path"}:
        return False
    fields = dict(headers[:len(seen)])
    return fields[b":method"] == b"POST" and fields[b":path"][:1] == b"/" and fields[b":scheme"] in (b"http", b"https")

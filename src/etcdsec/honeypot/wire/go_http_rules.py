"""What Go's net/http server decides before any handler runs (etcd's cmux in front of it, which
decides whether the bytes reach it at all, is `cmuxsniff.py`).

Go's HTTP rules live here and only here: the Host and token character sets, the Connection tokens.
Pure functions over the raw bytes and h11's parse: refusals Go writes itself, the reason texts of
its `400 Bad Request`, and the request-line fixes h11 needs to accept what Go accepts. The fast
recogniser (`fasthead`) takes its constants from here.
"""

from __future__ import annotations

from typing import Any

import h11

from etcdsec.honeypot.wire import go_response

# httpguts.ValidHostHeader's bytes: letters, digits and these
HOST_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$%&'()*+,-.:;=[]_~"
# RFC 7230 tchar (httpguts.IsTokenRune): header names
TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# the ones Go's server hands straight to etcd's handlers (OPTIONS * is Go's own; CONNECT's target
# is an authority; PATCH and TRACE are rare enough for the careful path)
PLAIN_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE")


def escape_target(line: bytes) -> bytes:
    """Go accepts raw non-ASCII bytes in the request target, h11 does not: %-escape them first."""
    if all(ch < 0x7F for ch in line):
        return line
    parts = line.split(b" ")
    if len(parts) < 3:
        return line
    target = b"".join(b"%%%02X" % ch if ch >= 0x7F else bytes([ch]) for ch in b" ".join(parts[1:-1]))
    return parts[0] + b" " + target + b" " + parts[-1]


def header_items(headers: Any) -> list[tuple[bytes, bytes, bytes]]:
    """(name as sent, lower-cased name, value) for each header, in order."""
    full = getattr(headers, "_full_items", None)  # h11 keeps exactly this list
    if isinstance(full, list):
        return list(full)
    return [(k, k.lower(), v) for k, v in headers.raw_items()]


_VALID_HOST = frozenset(HOST_CHARS.encode())


def go_refusal(event: h11.Request, items: list[tuple[bytes, bytes, bytes]]) -> bytes | None:
    """What Go's server answers itself, before etcd's handlers, for a request h11 accepted."""
    host = next((v for _, k, v in items if k == b"host"), None)
    if host is not None and any(ch not in _VALID_HOST for ch in host):
        return go_response.go_bad_request("malformed Host header")
    if any(invalid_value(v) for _, _, v in items):  # h11 lets control bytes through, Go does not
        return go_response.go_bad_request("invalid header value")
    expect = next((v for _, k, v in items if k == b"expect"), None)
    if expect is not None and expect.lower() != b"100-continue":
        return go_response.expectation_failed()
    path = event.target.split(b"?", 1)[0]
    if b"%" in path and not _valid_escapes(path):
        return go_response.go_bad_request()
    return None


def _valid_escapes(path: bytes) -> bool:
    i = path.find(b"%")
    while i >= 0:
        pair = path[i + 1:i + 3]
        if len(pair) != 2 or any(ch not in b"0123456789abcdefABCDEF" for ch in pair):
            return False
        i = path.find(b"%", i + 3)
    return True


_TOKEN = frozenset(TOKEN_CHARS.encode())


def go_header_reason(raw: bytes) -> str:
    """The reason Go's textproto/net/http give for a bad header block ("" for a plain 400)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    for line in head:
        name, colon, _ = line.partition(b":")
        if colon and (not name or any(ch not in _TOKEN for ch in name)):
            return "invalid header name"
    for line in head:
        _, colon, value = line.partition(b":")
        if colon and invalid_value(value):
            return "invalid header value"
    return ""


def invalid_value(value: bytes) -> bool:
    """httpguts.ValidHeaderFieldValue refuses control bytes other than tab, and DEL."""
    return any((ch < 0x20 and ch != 0x09) or ch == 0x7F for ch in value)


def connection_tokens(value: bytes | None) -> set[bytes]:
    """The lower-cased tokens of a Connection header (b"keep-alive", b"close", b"upgrade")."""
    if not value:
        return set()
    return {t.strip().lower() for t in value.split(b",")}

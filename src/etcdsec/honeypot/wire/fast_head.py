"""A strict recogniser for the everyday HTTP/1.x request, so most requests skip h11 (sans-IO).

h11 stays the parser of record: `parse` accepts only requests whose every byte has one reading
(CRLF line ends, a known method, an origin-form ASCII target without escapes, token header names,
printable values, exactly one valid Host, at most one plain Content-Length, no Transfer-Encoding,
Expect or Upgrade). Anything else returns UNSURE and the connection hands its bytes to the h11
path, which owns every Go-exact refusal and error. A hypothesis test checks that whatever `parse`
accepts, h11 reads the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from etcdsec.honeypot.wire.go_http_rules import HOST_CHARS, PLAIN_METHODS, TOKEN_CHARS


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_MORE: Final = _Marker("NEED_MORE")  # a simple request so far; wait for more bytes
UNSURE: Final = _Marker("UNSURE")  # not the simple shape: let h11 and the Go rules decide

MAX_TARGET = 2048  # longer targets go the careful way (cmux and Go have line limits)
_METHODS = frozenset(PLAIN_METHODS)
# method SP origin-form target (printable ASCII, no '%' escapes, no '#') SP HTTP/1.0 or 1.1
_REQUEST_LINE = re.compile(rb"([A-Z]{3,6}) (/[\x21-\x22\x24\x26-\x7e]*) HTTP/1\.([01])")
_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\r\n"  # all a simple header block may hold
_TOKEN = re.compile(b"[" + re.escape(TOKEN_CHARS.encode()) + b"]+")
MAX_REMEMBERED_NAMES = 1024
# header names seen valid -> lower-cased: one dict lookup instead of a regex and lower() per header
_header_names: dict[bytes, bytes] = {}
_VALID_HOST = re.compile(b"[" + re.escape(HOST_CHARS.encode()) + b"]*")
_SPECIAL = frozenset((b"host", b"content-length", b"transfer-encoding", b"expect", b"upgrade"))


@dataclass(slots=True)
class Head:
    """One complete simple request: the head parsed, the body's place in the buffer known."""

    method: str
    target: str
    http10: bool
    items: list[tuple[bytes, bytes, bytes]]  # (name as sent, lower-cased name, value), in order, as h11 has them
    headers: list[tuple[bytes, bytes]]  # (lower-cased name, value), in order: Request.headers
    body_start: int
    end: int  # index just past the body: the bytes this request used

    def body(self, buf: bytes | bytearray) -> bytes:
        return bytes(buf[self.body_start:self.end])


# Heads read before, by their exact bytes: a client polling sends the same head again and again, and
# the same bytes always read the same way. Bounded in count and size; lists are copied out, never shared.
MAX_KEPT_HEADS = 512
MAX_KEPT_HEAD = 512  # bytes
_kept: dict[bytes, tuple[str, str, bool, list[tuple[bytes, bytes, bytes]], list[tuple[bytes, bytes]], int]] = {}


def parse(buf: bytes | bytearray, max_head: int, max_headers: int, max_body: int) -> Head | _Marker:
    """A complete simple request at the start of `buf`, NEED_MORE, or UNSURE."""
    head_end = buf.find(b"\r\n\r\n", 0, min(max_head, MAX_KEPT_HEAD) + 4)
    if head_end > 0:
        kept = _kept.get(bytes(buf[:head_end + 4]))
        if kept is not None:
            method, target, http10, items, headers, length = kept
            end = head_end + 4 + length
            if len(items) > max_headers or length > max_body:
                return UNSURE
            if len(buf) < end:
                return NEED_MORE
            return Head(method, target, http10, list(items), list(headers), head_end + 4, end)
    head = _parse(buf, max_head, max_headers, max_body)
    if isinstance(head, Head) and head.body_start <= MAX_KEPT_HEAD:
        if len(_kept) >= MAX_KEPT_HEADS:
            _kept.clear()
        _kept[bytes(buf[:head.body_start])] = (head.method, head.target, head.http10, list(head.items),
                                                list(head.headers), head.end - head.body_start)
    return head


def _parse(buf: bytes | bytearray, max_head: int, max_headers: int, max_body: int) -> Head | _Marker:
    line_end = buf.find(b"\r\n", 0, MAX_TARGET + 32)
    if line_end < 0:
        if b"\n" in buf or len(buf) > MAX_TARGET + 32:
            return UNSURE
        return NEED_MORE if _could_be_request_line(buf) else UNSURE
    line = _REQUEST_LINE.fullmatch(buf, 0, line_end)
    if line is None or line.group(1) not in _METHODS:
        return UNSURE
    head_end = buf.find(b"\r\n\r\n", line_end, max_head + 4)
    if head_end < 0:
        return UNSURE if len(buf) > max_head or b"\n\n" in buf or b"\r\n\n" in buf else NEED_MORE
    items: list[tuple[bytes, bytes, bytes]] = []
    headers: list[tuple[bytes, bytes]] = []
    host = length = None
    if head_end > line_end:
        block = bytes(buf[line_end + 2:head_end])
        if block.translate(None, _PRINTABLE):
            return UNSURE  # control or non-ASCII bytes: h11 and Go decide
        lines = block.split(b"\r\n")
        if block.count(b"\r") >= len(lines) or block.count(b"\n") >= len(lines):
            return UNSURE  # a bare CR or LF
        for line_text in lines:
            name, colon, value = line_text.partition(b":")
            lower = _header_names.get(name) if colon else None
            if lower is None:
                if not colon or _TOKEN.fullmatch(name) is None:
                    return UNSURE  # obs-fold (leading space), a bad name, no colon
                lower = _remember_name(name)
            value = value.strip(b" \t")
            if lower in _SPECIAL:
                if lower == b"host":
                    if host is not None or _VALID_HOST.fullmatch(value) is None:
                        return UNSURE
                    host = value
                elif lower == b"content-length":
                    if length is not None or not value.isdigit() or len(value) > 10 or \
                            (value[0] == 0x30 and len(value) > 1):  # a leading "0"
                        return UNSURE
                    length = int(value)
                else:
                    return UNSURE  # Transfer-Encoding, Expect, Upgrade: Go's rules apply
            items.append((name, lower, value))
            headers.append((lower, value))
    if host is None or len(items) > max_headers:
        return UNSURE
    body_start = head_end + 4
    end = body_start + (length or 0)
    if (length or 0) > max_body:
        return UNSURE  # the careful path answers 413 as Go does
    if len(buf) < end:
        return NEED_MORE
    method, target, minor = line.groups()
    return Head(method.decode(), target.decode(), minor == b"0", items, headers, body_start, end)


_LINE_PREFIX = re.compile(rb"[A-Z]{0,6}(?: (?:/[\x21-\x22\x24\x26-\x7e]*"
                          rb"(?: (?:H(?:T(?:T(?:P(?:/(?:1(?:\.(?:[01]\r?)?)?)?)?)?)?)?)?)?)?)?")


def _remember_name(name: bytes) -> bytes:
    lower = name.lower()
    if len(_header_names) < MAX_REMEMBERED_NAMES:  # bounded: random names from a scanner stop here
        _header_names[name] = lower
    return lower


def _could_be_request_line(buf: bytes | bytearray) -> bool:
    """Whether an unfinished first line can still become a simple request line."""
    return _LINE_PREFIX.fullmatch(buf) is not None

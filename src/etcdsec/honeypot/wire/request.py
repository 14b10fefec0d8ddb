"""A parsed HTTP request as the handlers see it, and the one view honeytokens are searched in.

Header names and values stay the bytes the client sent (names lower-cased), from the readers to the
handlers and the honeytoken view: they are decoded once, latin-1 as Go keeps them, only where text is
needed (an event, a JSON body, an address). Method and target are text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote


@dataclass
class Request:
    method: str
    target: str  # raw request target, e.g. "/v2/keys/a?recursive=true"
    headers: list[tuple[bytes, bytes]]  # names lower-cased, in the order sent; bytes as sent
    body: bytes = b""
    http10: bool = False
    body_error: str = ""  # Go's read of the body failed with this (chunk framing); `body`: what came before
    path: str = field(init=False)
    raw_path: str = field(init=False)
    query: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        # not urlsplit: "//x" is a path here, not a network location
        raw, _, query = self.target.partition("?")
        if "://" in raw:  # absolute-form target (proxies): keep only the path
            raw = "/" + raw.split("://", 1)[1].partition("/")[2]
        self.raw_path = raw or "/"
        self.path = unquote(self.raw_path)
        self.query = _parse_query(query.partition("#")[0]) if query else {}

    def header(self, name: bytes) -> bytes | None:
        """The first value of the header `name` (lower-case bytes), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def form_reads_body(self) -> bool:
        """Whether Go's ParseForm reads the body: an urlencoded POST, PUT or PATCH."""
        ctype = (self.header(b"content-type") or b"").split(b";")[0].strip().lower()
        return self.method in ("POST", "PUT", "PATCH") and ctype == b"application/x-www-form-urlencoded"

    def form(self) -> dict[str, list[str]]:
        """Go's r.Form: query values, plus an urlencoded body for POST/PUT/PATCH (body values first)."""
        values: dict[str, list[str]] = {}
        if self.form_reads_body():
            for k, v in _parse_query(self.body.decode("utf-8", "replace")).items():
                values.setdefault(k, []).extend(v)
        for k, v in self.query.items():
            values.setdefault(k, []).extend(v)
        return values


def token_view(method: str, target: str, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> bytes:
    """The one view of a request that honeytokens are searched in, the same for every path
    (HTTP/1 fast or h11, h2 plain, gRPC): `METHOD target`, then a line `name: value` for every
    header in order (names as sent; h2's are lower-case, its pseudo-headers are left out: they are
    method and target), an empty line, and the body (a gRPC stream's messages are searched one by
    one as they arrive, after its headers with an empty body). Bytes as from the wire."""
    line = method + " " + target + "\n"
    try:
        head = line.encode("latin-1")
    except UnicodeEncodeError:  # a gRPC path decoded as UTF-8
        head = line.encode("latin-1", "replace")
    head += b"\n".join(map(b": ".join, headers)) + b"\n\n"  # map: no loop in Python
    return head + body if body else head


def _parse_query(text: str) -> dict[str, list[str]]:
    """parse_qs(text, keep_blank_values=True); plain `a=1&b=2` (no escapes) is split directly."""
    if "%" in text or "+" in text:
        return parse_qs(text, keep_blank_values=True)
    values: dict[str, list[str]] = {}
    for pair in text.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            values.setdefault(name, []).append(value)
    return values

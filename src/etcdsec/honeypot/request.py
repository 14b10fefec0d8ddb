"""A parsed HTTP request as the handlers see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote


@dataclass
class Request:
    method: str
    target: str  # raw request target, e.g. "/v2/keys/a?recursive=true"
    headers: list[tuple[str, str]]  # names lower-cased, in the order sent
    body: bytes = b""
    http10: bool = False
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

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def form(self) -> dict[str, list[str]]:
        """Go's r.Form: query values, plus an urlencoded body for POST/PUT/PATCH (body values first)."""
        values: dict[str, list[str]] = {}
        ctype = (self.header("content-type") or "").split(";")[0].strip().lower()
        if self.method in ("POST", "PUT", "PATCH") and ctype == "application/x-www-form-urlencoded":
            for k, v in _parse_query(self.body.decode("utf-8", "replace")).items():
                values.setdefault(k, []).extend(v)
        for k, v in self.query.items():
            values.setdefault(k, []).extend(v)
        return values


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

"""How a request or message body is put into an event: text when UTF-8, else base64; bounded."""

from __future__ import annotations

import base64
import time
from typing import Any


def body_fields(body: bytes, limit: int) -> dict[str, Any]:
    """An event's view of a body: text when it is UTF-8, else base64; always bounded."""
    if not body:
        return {}
    cut = body[:limit]
    out: dict[str, Any] = {"body_len": len(body)}
    try:
        out["body"] = cut.decode("utf-8")
    except UnicodeDecodeError:
        out["body_b64"] = base64.b64encode(cut).decode()
    if len(body) > limit:
        out["body_truncated"] = True
    return out


def request_event_fields(method: str, target: str, http_version: str, items: list[tuple[bytes, bytes, bytes]],
                         status: int, tls: bool, body: bytes, limit: int,
                         started: float | None = None) -> dict[str, Any]:
    """The fields of an `http.request` event; `items` are (name as sent, lower-cased name, value) as
    received. This is where header bytes become text, once: latin-1, as Go keeps a header's bytes."""
    headers: list[tuple[str, str]] = []
    fields: dict[str, Any] = {"method": method, "path": target, "http_version": http_version, "headers": headers}
    for name, lower, value in items:
        text = value.decode("latin-1")
        headers.append((name.decode("latin-1"), text))  # a pair: written as a two-item JSON array
        if lower == b"user-agent" and "user_agent" not in fields:
            fields["user_agent"] = text
    fields["status"] = status
    if tls:
        fields["tls"] = True
    if started is not None:
        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    if body:
        fields.update(body_fields(body, limit))
    return fields  # no None values: the sink can take the dict as it is

"""How a request or message body is put into an event: text when UTF-8, else base64; bounded."""

from __future__ import annotations

import base64
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

"""JSON exactly as Go's encoding/json writes it (compact, HTML-escaped, Encoder adds a newline)."""

from __future__ import annotations

import json
from typing import Any


def go_json(obj: Any, newline: bool = False) -> bytes:
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return (text + ("\n" if newline else "")).encode()


def go_duration(seconds: float) -> str:
    """time.Duration.String(): `12.048829951s`, `3m4.5s`, `2h0m1s`."""
    ns = int(seconds * 1e9)
    if ns < 1_000_000_000:
        return f"{ns / 1e6:g}ms" if ns >= 1_000_000 else f"{ns}ns"
    hours, rem = divmod(ns, 3_600_000_000_000)
    minutes, rem = divmod(rem, 60_000_000_000)
    secs = f"{rem / 1e9:.9f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"

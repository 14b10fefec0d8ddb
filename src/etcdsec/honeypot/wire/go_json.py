"""JSON exactly as Go's encoding/json writes it (compact, HTML-escaped, Encoder adds a newline)."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# What Go escapes that orjson writes raw: HTML characters and the JavaScript line separators.
_GO_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"),
               ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))
# Go before 1.22 (every etcd release it imitates) writes \b and \f as \u0008 and \u000c; an escape is
# one only after an even run of backslashes.
_SHORT_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\([bf])")


def go_json(obj: Any, newline: bool = False) -> bytes:
    try:
        out = orjson.dumps(obj)  # compact UTF-8, as json.dumps(separators, ensure_ascii=False), 10x faster
    except TypeError:  # integers past 64 bits and other things orjson refuses
        out = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    for raw, escaped in _GO_ESCAPES:
        if raw in out:
            out = out.replace(raw, escaped)
    if b"\\b" in out or b"\\f" in out:
        out = _SHORT_ESCAPE.sub(lambda m: m.group(1) + (b"\\u0008" if m.group(2) == b"b" else b"\\u000c"), out)
    return out + b"\n" if newline else out


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

"""Text from the wire made visible: control characters (C0, DEL, C1) and bidirectional overrides
are shown as `\\xNN` / `\\uNNNN` instead of acting on the page (a hidden right-to-left override
could make `gpj.exe` read as `exe.jpg`). HTML escaping itself is Jinja's autoescape."""

from __future__ import annotations

import re

_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def _show(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object) -> str:
    """str(value) with every control character spelled out (tab and newline included in labels)."""
    text = "" if value is None else str(value)
    return _INVISIBLE.sub(_show, text).replace("\t", "\\t").replace("\n", "\\n")


def chart_label(value: object) -> str:
    """A label matplotlib draws as written: `$` would start mathtext (and a bad formula raises)."""
    return visible(value).replace("$", r"\$")

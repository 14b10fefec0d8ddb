"""What the audit prints of a value it read: cut to a bounded length, and visible in a terminal.

Audited files may be hostile. A value is cut in every format (text, JSON, SARIF) so a 700-byte file
cannot print megabytes; in text, control characters are shown as escapes so a value cannot clear
the screen, set the window title or start a forged line. JSON and SARIF keep the (cut) string exact.
"""

from __future__ import annotations

import re

MAX_SHOWN_CHARS = 1000  # per printed string: a title, one evidence line, one setting value

# C0 controls except none, DEL, C1 controls, and the bidirectional overrides (Trojan Source).
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clip(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters cut]"


def visible(text: str) -> str:
    """Control characters as `\\xNN` / `\\uNNNN` escapes."""
    return _INVISIBLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)

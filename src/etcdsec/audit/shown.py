"""What the audit prints of a value it read: cut to a bounded length, and visible in a terminal.

Audited files may be hostile. A value is cut in every format (text, JSON, SARIF) so a 700-byte file
cannot print megabytes. Making control characters visible in text is `etcdsec.output.visible`'s job
(the one place for it); JSON and SARIF keep the (cut) string exact.
"""

from __future__ import annotations

MAX_SHOWN_CHARS = 1000  # per printed string: a title, one evidence line, one setting value


def clip(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters cut]"

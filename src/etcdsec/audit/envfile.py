"""Environment files as systemd's EnvironmentFile= and shell `.`-sourcing read them: KEY=value per line."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

_ASSIGN = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


@dataclass(frozen=True)
class EnvLine:
    key: str
    value: str
    line: int


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if not raw:
        return ""
    try:
        words = shlex.split(raw, comments=True)
    except ValueError:  # unbalanced quote: systemd keeps the text as written
        return raw.strip("\"'")
    return " ".join(words)


def parse_env_file(text: str) -> list[EnvLine]:
    """Assignments in file order; comments, blank lines and non-assignments are skipped.

    A trailing backslash continues the value on the next line, as systemd allows.
    """
    out: list[EnvLine] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i
        line = lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + lines[i]
        i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        match = _ASSIGN.match(stripped)
        if match:
            out.append(EnvLine(match.group(1), _unquote(match.group(2)), start + 1))
    return out


def looks_like_env_file(text: str) -> bool:
    """True when every meaningful line is a KEY=value assignment (and there is at least one)."""
    stripped = (ln.strip() for ln in text.splitlines())
    meaningful = [ln for ln in stripped if ln and not ln.startswith(("#", ";"))]
    return bool(meaningful) and all(_ASSIGN.match(ln) for ln in meaningful)

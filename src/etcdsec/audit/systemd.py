"""systemd service units as systemd reads them: unit, drop-ins, Environment=, EnvironmentFile=, ExecStart=."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from etcdsec.audit.model import resolve_under

# Lowest to highest priority: a file in a later directory replaces one of the same name in an earlier one.
UNIT_DIRS = ("usr/lib/systemd/system", "lib/systemd/system", "run/systemd/system", "etc/systemd/system")


@dataclass(frozen=True)
class Located:
    value: str
    path: Path
    line: int


@dataclass
class Unit:
    name: str
    files: list[Path] = field(default_factory=list)  # main file first, then drop-ins in order
    environment: list[tuple[str, Located]] = field(default_factory=list)  # (KEY, value at file:line)
    environment_files: list[tuple[str, bool, Located]] = field(default_factory=list)  # (path, optional)
    exec_start: Located | None = None
    user: str | None = None
    working_directory: str | None = None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not pending:
            start = number
            if line.lstrip().startswith(("#", ";")):
                continue
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        out.append((start, " ".join(p.strip() for p in pending)))
        pending = []
    if pending:
        out.append((start, " ".join(p.strip() for p in pending)))
    return out


def expand_specifiers(text: str, unit_name: str) -> str:
    """%p, %N, %n, %i, %% — the specifiers seen in etcd units (e.g. EnvironmentFile=-/etc/default/%p)."""
    base = unit_name.rsplit(".", 1)[0]
    prefix, _, instance = base.partition("@")
    table = {"p": prefix, "N": base, "n": unit_name, "i": instance, "%": "%"}
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "%" and i + 1 < len(text) and text[i + 1] in table:
            out.append(table[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def apply_unit_file(unit: Unit, path: Path, text: str) -> None:
    """Fold one unit file or drop-in into `unit` (empty assignments reset lists, as in systemd)."""
    unit.files.append(path)
    section = ""
    for line_no, line in _logical_lines(text):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        if section != "Service" or "=" not in stripped:
            continue
        key, value = (part.strip() for part in stripped.split("=", 1))
        value = expand_specifiers(value, unit.name)
        here = Located(value, path, line_no)
        if key == "Environment":
            if not value:
                unit.environment.clear()
                continue
            try:
                words = shlex.split(value)
            except ValueError:
                words = value.split()
            for word in words:
                name, sep, val = word.partition("=")
                if sep:
                    unit.environment.append((name, Located(val, path, line_no)))
        elif key == "EnvironmentFile":
            if not value:
                unit.environment_files.clear()
                continue
            optional = value.startswith("-")
            unit.environment_files.append((value.lstrip("-"), optional, here))
        elif key == "ExecStart":
            unit.exec_start = here if value else None
        elif key == "User":
            unit.user = value or None
        elif key == "WorkingDirectory":
            unit.working_directory = value.lstrip("-") or None


def unit_files(root: Path, name: str) -> list[Path]:
    """The main file of unit `name` under `root` plus its drop-ins, in the order systemd applies them.

    Symlinked units (aliases, `systemctl link`) are followed inside `root`, not on this machine."""
    main: Path | None = None
    for directory in UNIT_DIRS:
        candidate = resolve_under(root, f"{directory}/{name}")
        if candidate.is_file():
            main = candidate
    dropins: dict[str, Path] = {}
    for directory in UNIT_DIRS:
        folder = root / directory / f"{name}.d"
        if folder.is_dir():
            for conf in folder.glob("*.conf"):
                dropins[conf.name] = resolve_under(root, str(conf.relative_to(root)))
    return ([main] if main else []) + [dropins[k] for k in sorted(dropins)]


def service_names(root: Path) -> list[str]:
    names: set[str] = set()
    for directory in UNIT_DIRS:
        folder = root / directory
        if folder.is_dir():
            names.update(p.name for p in folder.glob("*.service") if p.is_file() or p.is_symlink())
    return sorted(names)


def exec_words(exec_start: str, env: dict[str, str]) -> list[tuple[str, str | None]]:
    """ExecStart= split into words with $VAR (split on whitespace) and ${VAR} (one word) expanded.

    Each word comes with the variable it was expanded from (None for words written in ExecStart=).
    """
    command = exec_start.lstrip("-@:+!")
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    out: list[tuple[str, str | None]] = []
    for word in words:
        if word.startswith("$") and not word.startswith("${") and word[1:].isidentifier():
            out.extend((w, word[1:]) for w in env.get(word[1:], "").split())
            continue
        source = None
        for key, value in env.items():
            if "${" + key + "}" in word:
                word, source = word.replace("${" + key + "}", value), key
        out.append((word, source))
    return out

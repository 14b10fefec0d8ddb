"""What the audit passes around: where a value came from, resolved instances, findings, sources read."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def host_path(path: str, mounts: list[tuple[str, str]]) -> str:
    """Translate a path seen inside a container to the host path, through its hostPath mounts."""
    best: tuple[str, str] | None = None
    for inside, outside in mounts:
        covers = path == inside or path.startswith(inside.rstrip("/") + "/")
        if covers and (best is None or len(inside) > len(best[0])):
            best = (inside, outside)
    if best is None:
        return path
    rest = path[len(best[0]):].lstrip("/")
    return f"{best[1]}/{rest}" if rest else best[1]


MAX_SYMLINK_HOPS = 40  # as Linux's ELOOP limit


def resolve_under(root: Path, relative: str) -> Path:
    """`root/relative`, following symlinks the way the audited host would: an absolute link target
    starts again at `root`, never at this machine's `/`. Unresolvable parts are left as they are."""
    if root == Path("/"):
        return Path("/") / relative.lstrip("/")
    parts = [p for p in Path(relative.lstrip("/")).parts]
    current = root
    hops = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if candidate.is_symlink() and hops < MAX_SYMLINK_HOPS:
            hops += 1
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            parts = list(Path(target.lstrip("/")).parts) + parts
            continue
        current = candidate
    return current


def real_path(root: Path, path: str, mounts: list[tuple[str, str]] | None = None) -> Path:
    """Where a path named in a configuration is on the audited filesystem.

    Container paths are first mapped to host paths through hostPath mounts; absolute host paths then
    resolve under `root` (a copied host tree, or `/proc/PID/root`); relative ones are taken from `root`.
    """
    return resolve_under(root, host_path(path, mounts or []))


@dataclass(frozen=True)
class Origin:
    """Where a value was read: `file:line`, or a live process (`pid 42 argv`)."""

    path: str | None = None
    line: int | None = None
    process: str | None = None

    def __str__(self) -> str:
        if self.path is None:
            return self.process or "?"
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where} ({self.process})" if self.process else where


@dataclass(frozen=True)
class Setting:
    """One etcd/kube-apiserver option as a program will see it (name is the flag name, no dashes)."""

    name: str
    value: str
    origin: Origin
    via: str  # "flag", "env", "config-file", "default"
    raw: str | None = None  # the words as written, when they differ from name=value (bare flags)

    def describe(self) -> str:
        if self.raw:
            return self.raw
        if self.via == "env":
            spelled = "ETCD_" + self.name.upper().replace("-", "_")
        elif self.via in ("config-file", "default"):
            spelled = self.name
        else:
            spelled = f"--{self.name}"
        return f"{spelled}={self.value}"


@dataclass
class Ignored:
    """A setting that is written down but has no effect, and why."""

    setting: Setting
    reason: str


@dataclass
class EtcdInstance:
    """One etcd member as configured: its effective settings after etcd's own precedence rules."""

    label: str
    origin: Origin
    root: Path  # host paths in settings resolve under this directory
    settings: dict[str, Setting] = field(default_factory=dict)
    config_file: Origin | None = None  # set when --config-file replaced flags and env
    ignored: list[Ignored] = field(default_factory=list)
    refuses_to_start: list[str] = field(default_factory=list)
    mounts: list[tuple[str, str]] = field(default_factory=list)  # (container path, host path)
    incomplete: str | None = None  # why the effective settings could not be known
    live_pid: int | None = None
    planned: bool = False  # rendered from a kubeadm config: the files it names may not exist yet

    def real_path(self, path: str) -> Path:
        return real_path(self.root, path, self.mounts)

    def get(self, name: str) -> Setting | None:
        return self.settings.get(name)

    def value(self, name: str, default: str = "") -> str:
        setting = self.settings.get(name)
        return setting.value if setting is not None else default


@dataclass
class ApiServerInstance:
    """One kube-apiserver as configured (flags only)."""

    label: str
    origin: Origin
    root: Path
    flags: dict[str, Setting] = field(default_factory=dict)
    mounts: list[tuple[str, str]] = field(default_factory=list)
    live_pid: int | None = None
    planned: bool = False

    def real_path(self, path: str) -> Path:
        return real_path(self.root, path, self.mounts)

    def get(self, name: str) -> Setting | None:
        return self.flags.get(name)


@dataclass
class Source:
    """A file or process the audit read (or tried to read)."""

    path: str
    kind: str
    status: str = "read"  # "read", "unreadable", "unparsable", "missing", "absent-optional", "unrecognised"
    detail: str = ""
    real: Path | None = field(default=None, repr=False, compare=False)  # the file on this machine

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "status": self.status, "detail": self.detail}


@dataclass
class AuditFinding:
    id: str
    severity: str
    title: str
    evidence: list[str]
    remediation: str
    cis: list[str]
    subject: str  # which instance or file the finding is about

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "title": self.title, "evidence": self.evidence,
                "remediation": self.remediation, "cis": self.cis, "subject": self.subject}

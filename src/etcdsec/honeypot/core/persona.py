"""One etcd version's outward behaviour (`personas/<name>.json`): what a layer asks to answer as that version."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from etcdsec.errors import UserError


@dataclass(frozen=True)
class Persona:
    """One etcd version's outward behaviour, loaded from `personas/<name>.json`."""

    name: str  # "3.5.1"
    version: str  # what /version reports as etcdserver
    cluster_version: str  # what /version reports as etcdcluster
    v2_enabled: bool  # v2 keys API served on the client port
    # Gateway prefixes this version serves; each maps to the canonical "/v3" it is rewritten to.
    v3_prefixes_served: tuple[str, ...]
    has_auth_status: bool  # /v3/auth/status and Auth.AuthStatus exist (3.5+)
    health_body: str  # exact /health body
    grpc_enabled: bool = True  # 2.3 has no v3 at all
    go_version: str = "go1.16.3"
    git_sha: str = ""
    # Anything else a layer wants to read from the persona file (documented in docs/honeypot.md).
    extra: dict[str, Any] = field(default_factory=dict)
    # (major, minor) of `version`, parsed once here: the v3 side compares it on every call.
    major_minor: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        major, minor = self.version.split(".")[:2]
        object.__setattr__(self, "major_minor", (int(major), int(minor)))  # frozen: set once, here

    def v3_path(self, path: str) -> str | None:
        """`/v3beta/kv/range` -> `/v3/kv/range` when this persona serves `/v3beta`; else None."""
        for prefix in self.v3_prefixes_served:
            if path == prefix or path.startswith(prefix + "/"):
                return "/v3" + path[len(prefix):]
        return None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Persona:
        known = {f.name for f in dataclasses.fields(cls) if f.init and f.name != "extra"}
        fields = {k: v for k, v in data.items() if k in known}
        fields["v3_prefixes_served"] = tuple(fields.get("v3_prefixes_served", ()))
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**fields, extra=extra)


def go_release(go_version: str) -> tuple[int, int]:
    """`go1.7.6` -> (1, 7); an unreadable version counts as a current one."""
    parts = go_version.removeprefix("go").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (1, 99)


def persona_names() -> list[str]:
    files = resources.files("etcdsec.honeypot").joinpath("personas")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".json"))


def load_persona(name: str) -> Persona:
    """A persona by version name; "3.5" or "3.4" pick the newest matching file."""
    names = persona_names()
    match = name if name in names else next((n for n in reversed(names) if n.startswith(name + ".")), None)
    if match is None:
        raise UserError(f"unknown persona {name!r} (known: {', '.join(names)})")
    text = resources.files("etcdsec.honeypot").joinpath("personas", f"{match}.json").read_text()
    return Persona.from_dict(json.loads(text))

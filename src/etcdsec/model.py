"""The one result model that flows from probe to scan, store, report and monitor.

Field names are a public contract (JSON output, database rows, scripts): keep them.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    none = 0
    info = 1
    low = 2
    medium = 3
    high = 4
    critical = 5

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().lower()]
        except KeyError:
            names = ", ".join(s.name for s in cls)
            raise ValueError(f"unknown severity {text!r} (expected one of: {names})") from None


@dataclass
class Finding:
    id: str
    severity: str
    title: str
    evidence: str
    remediation: str
    practice: str = ""


@dataclass
class TLSInfo:
    version: str | None = None
    cipher: str | None = None
    subject: str | None = None
    issuer: str | None = None
    sans: list[str] = field(default_factory=list)
    not_after: str | None = None
    self_signed: bool | None = None
    expired: bool | None = None


@dataclass
class Member:
    name: str | None
    id: str | None
    peer_urls: list[str] = field(default_factory=list)
    client_urls: list[str] = field(default_factory=list)


@dataclass
class Apis:
    v2: bool | None = None
    v3_prefix: str | None = None  # the JSON gateway's prefix
    grpc: bool | None = None  # v3 gRPC answered directly (probed when no gateway answers)


@dataclass
class Auth:
    v3_enabled: bool | None = None
    v2_enabled: bool | None = None
    v2_guest_open: bool | None = None


@dataclass
class Access:
    read_v2: bool | None = None
    read_v3: bool | None = None
    write: bool | None = None


@dataclass
class Data:
    key_count: int | None = None
    kubernetes: bool | None = None
    secret_keys: int | None = None
    top_prefixes: dict[str, int] = field(default_factory=dict)


@dataclass
class Leaks:
    debug_vars: bool = False
    cmdline_flags: list[str] = field(default_factory=list)
    metrics: bool = False
    pprof: bool = False
    peer_api: bool = False
    health: bool = False


@dataclass
class ProbeResult:
    target: str
    ip: str | None = None
    port: int | None = None
    reachable: bool = False
    error: str | None = None
    duration_ms: int = 0
    scheme: str | None = None
    tls: TLSInfo | None = None
    client_cert_required: bool = False
    is_etcd: bool | None = None
    role: str | None = None
    version: str | None = None
    cluster_version: str | None = None
    storage_version: str | None = None
    cluster_id: str | None = None
    member_id: str | None = None
    members: list[Member] = field(default_factory=list)
    leader: str | None = None
    start_time: str | None = None
    uptime_s: int | None = None
    db_size: int | None = None
    apis: Apis = field(default_factory=Apis)
    auth: Auth = field(default_factory=Auth)
    access: Access = field(default_factory=Access)
    data: Data = field(default_factory=Data)
    leaks: Leaks = field(default_factory=Leaks)
    exposed: bool = False
    severity: str = "none"
    findings: list[Finding] = field(default_factory=list)
    # Set when the probe ran with the owner's credentials (--user/--cert): `access` is then theirs.
    credentials: str | None = None
    # True when etcd refused those credentials: `access` is then what anonymous access gives.
    credentials_rejected: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ProbeResult:
        """Rebuild a result from its JSON form (the store and `report` read results back)."""
        data = dict(raw)
        if data.get("tls") is not None:
            data["tls"] = TLSInfo(**data["tls"])
        data["members"] = [Member(**m) for m in data.get("members") or []]
        data["apis"] = Apis(**(data.get("apis") or {}))
        data["auth"] = Auth(**(data.get("auth") or {}))
        data["access"] = Access(**(data.get("access") or {}))
        data["data"] = Data(**(data.get("data") or {}))
        data["leaks"] = Leaks(**(data.get("leaks") or {}))
        data["findings"] = [Finding(**f) for f in data.get("findings") or []]
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

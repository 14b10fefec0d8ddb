"""One observation of a watched target: the facts of a probe result that the monitor compares."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from etcdsec.model import ProbeResult, Severity


@dataclass(frozen=True)
class Observation:
    target: str  # as the user gave it
    observed_at: dt.datetime
    reachable: bool
    exposed: bool
    severity: str
    findings: tuple[str, ...]  # finding ids, sorted
    version: str | None = None
    scheme: str | None = None
    client_cert_required: bool = False
    v3_auth: bool | None = None
    cert_id: str | None = None
    cert_not_after: str | None = None
    cert_expiring: bool = False  # within --cert-warn days of expiry when observed
    error: str | None = None

    @property
    def rank(self) -> int:
        return int(Severity.parse(self.severity)) if self.severity in Severity.__members__ else 0

    def summary(self) -> dict[str, object]:
        """The event's `before`/`after` object (the interface contract's fields first)."""
        return {"reachable": self.reachable, "exposed": self.exposed, "severity": self.severity,
                "findings": list(self.findings), "version": self.version, "scheme": self.scheme,
                "client_cert_required": self.client_cert_required, "v3_auth": self.v3_auth,
                "cert_not_after": self.cert_not_after, "cert_expiring": self.cert_expiring,
                "error": self.error, "observed_at": self.observed_at.isoformat()}

    @classmethod
    def from_summary(cls, target: str, d: Mapping[str, Any]) -> Observation:
        """Back from an event's `before`/`after` (the certificate's id is not in it: None)."""
        return cls(target=target, observed_at=dt.datetime.fromisoformat(d["observed_at"]),
                   reachable=bool(d["reachable"]), exposed=bool(d["exposed"]), severity=str(d["severity"]),
                   findings=tuple(d["findings"]), version=d.get("version"), scheme=d.get("scheme"),
                   client_cert_required=bool(d.get("client_cert_required")), v3_auth=d.get("v3_auth"),
                   cert_not_after=d.get("cert_not_after"), cert_expiring=bool(d.get("cert_expiring")),
                   error=d.get("error"))


def certificate_id(result: ProbeResult) -> str | None:
    """Stands for the server certificate: a new certificate changes its expiry, names or issuer."""
    tls = result.tls
    if tls is None or tls.not_after is None:
        return None
    ident = json.dumps([tls.subject, tls.issuer, tls.not_after, sorted(tls.sans)], separators=(",", ":"))
    return hashlib.sha256(ident.encode()).hexdigest()


def expiring(not_after: str | None, now: dt.datetime, warn_days: float) -> bool:
    if not not_after or warn_days <= 0:
        return False
    try:
        end = dt.datetime.fromisoformat(not_after)
    except ValueError:
        return False
    if end.tzinfo is None:
        end = end.replace(tzinfo=dt.UTC)
    return end - now <= dt.timedelta(days=warn_days)


def observe(target: str, result: ProbeResult, now: dt.datetime, warn_days: float) -> Observation:
    not_after = result.tls.not_after if result.tls else None
    return Observation(
        target=target, observed_at=now, reachable=result.reachable, exposed=result.exposed,
        severity=result.severity, findings=tuple(sorted({f.id for f in result.findings})),
        version=result.version, scheme=result.scheme, client_cert_required=result.client_cert_required,
        v3_auth=result.auth.v3_enabled, cert_id=certificate_id(result), cert_not_after=not_after,
        cert_expiring=expiring(not_after, now, warn_days), error=(result.error or None) and result.error[:300],
    )

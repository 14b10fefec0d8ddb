"""What every check gets and gives: the audit context, a Hit, and helpers to quote evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from etcdsec.audit.collector import Collector
from etcdsec.audit.etcdflags import DEFAULTS
from etcdsec.audit.model import ApiServerInstance, EtcdInstance
from etcdsec.audit.urls import ListenURL, parse_urls


@dataclass(frozen=True)
class Hit:
    severity: str
    title: str
    evidence: list[str]
    subject: str | None = None  # defaults to the instance's label


@dataclass
class AuditContext:
    collector: Collector
    live_host: bool  # owners are only meaningful on the real machine, not in a copied tree
    probes: list[Any] = field(default_factory=list)  # etcdsec.model.ProbeResult for --endpoint


def quote(inst: EtcdInstance, name: str) -> str:
    setting = inst.get(name)
    if setting is not None:
        return f"{setting.origin}: {setting.describe()}"
    default = DEFAULTS.get(name)
    shown = f" (default {default})" if default else ""
    return f"{inst.origin}: {name} not set{shown}"


def api_quote(api: ApiServerInstance, name: str) -> str:
    setting = api.get(name)
    return f"{setting.origin}: {setting.describe()}" if setting else f"{api.origin}: --{name} not set"


def client_urls(inst: EtcdInstance) -> list[ListenURL]:
    urls = parse_urls(inst.value("listen-client-urls", DEFAULTS["listen-client-urls"]))
    return urls + parse_urls(inst.value("listen-client-http-urls"))


def peer_urls(inst: EtcdInstance) -> list[ListenURL]:
    return parse_urls(inst.value("listen-peer-urls", DEFAULTS["listen-peer-urls"]))


def client_evidence(inst: EtcdInstance) -> list[str]:
    out = [quote(inst, "listen-client-urls")]
    if inst.get("listen-client-http-urls"):
        out.append(quote(inst, "listen-client-http-urls"))
    return out


def reach_severity(urls: list[ListenURL], remote: str, local: str) -> str:
    return remote if any(u.remote for u in urls) else local

"""Checks on kube-apiserver's use of etcd: client TLS, encryption of Secrets at rest, audit logging."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml

from etcdsec.audit import encryption
from etcdsec.audit.checks.base import AuditContext, Hit
from etcdsec.audit.model import ApiServerInstance
from etcdsec.audit.urls import parse_urls
from etcdsec.audit.yamllines import load_all, yaml_problem


def _api_evidence(api: ApiServerInstance, name: str) -> str:
    setting = api.get(name)
    return f"{setting.origin}: {setting.describe()}" if setting else f"{api.origin}: --{name} not set"


def check_k8s_etcd_client(api: ApiServerInstance, ctx: AuditContext) -> Iterator[Hit]:
    servers = parse_urls(api.flags["etcd-servers"].value) if api.get("etcd-servers") else []
    plain = [u.text for u in servers if u.plain]
    if plain:
        yield Hit(
            "critical",
            f"kube-apiserver talks to etcd over plain HTTP: {', '.join(plain)}",
            [_api_evidence(api, "etcd-servers")],
        )
    missing = [n for n in ("etcd-certfile", "etcd-keyfile", "etcd-cafile") if not api.get(n)]
    if missing:
        yield Hit(
            "high",
            f"kube-apiserver has no {', '.join('--' + m for m in missing)} for etcd",
            [_api_evidence(api, m) for m in missing],
        )


def check_k8s_encryption(api: ApiServerInstance, ctx: AuditContext) -> Iterator[Hit]:
    flag = api.get("encryption-provider-config")
    if flag is None:
        yield Hit(
            "high",
            "no --encryption-provider-config: Secrets are stored in etcd in plaintext",
            [_api_evidence(api, "encryption-provider-config")],
        )
        return
    evidence = [f"{flag.origin}: {flag.describe()}"]
    yield from _encryption_file(ctx, api.real_path(flag.value), evidence, api.label, planned=api.planned)


def _encryption_file(
    ctx: AuditContext, path: Path, evidence: list[str], subject: str, planned: bool = False
) -> Iterator[Hit]:
    text = ctx.collector.read_text(path, "encryption provider config", optional=planned)
    if text is None:
        if planned:  # a configuration audited before deployment: the file may come later
            yield Hit(
                "info",
                f"encryption provider config {ctx.collector.show(path)} not found here: its providers were not checked",
                evidence,
                subject,
            )
        return  # otherwise reported as an unreadable source
    shown = ctx.collector.show(path)
    try:
        docs = load_all(text)
    except yaml.YAMLError as exc:
        ctx.collector.unparsable(path, yaml_problem(exc))
        return
    verdict = encryption.secrets_verdict(docs[0] if docs else None)
    if verdict.severity is not None:
        where = f"{shown}:{verdict.line}" if verdict.line else shown
        yield Hit(verdict.severity, verdict.title, [where, *evidence], subject)


def check_encryption_files(ctx: AuditContext) -> Iterator[Hit]:
    for path in ctx.collector.encryption_files:
        yield from _encryption_file(ctx, path, [], ctx.collector.show(path))


def check_k8s_audit_log(api: ApiServerInstance, ctx: AuditContext) -> Iterator[Hit]:
    missing = []
    if not api.get("audit-policy-file"):
        missing.append("audit-policy-file")
    if not api.get("audit-log-path") and not api.get("audit-webhook-config-file"):
        missing.append("audit-log-path")
    if missing:
        yield Hit(
            "medium",
            f"kube-apiserver has no {' / '.join('--' + m for m in missing)}: etcd keeps no "
            "request log, so nothing records who read Secrets",
            [_api_evidence(api, m) for m in missing],
        )
    elif api.get("audit-log-path"):
        rotation = [n for n in ("audit-log-maxage", "audit-log-maxbackup", "audit-log-maxsize") if not api.get(n)]
        if rotation:
            yield Hit(
                "low",
                f"audit log rotation not set: {', '.join('--' + r for r in rotation)}",
                [_api_evidence(api, r) for r in rotation],
            )

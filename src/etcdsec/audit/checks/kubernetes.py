"""Checks on kube-apiserver's use of etcd that need code: plain-HTTP etcd servers, encryption of Secrets at rest.

Its flag-only checks (client certificate files, audit logging) are data in rules.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml

from etcdsec.audit import encryption
from etcdsec.audit.checks.base import AuditContext, Hit, api_quote
from etcdsec.audit.model import ApiServerInstance
from etcdsec.audit.urls import parse_urls
from etcdsec.audit.yamllines import load_all, yaml_problem


def check_k8s_etcd_servers(api: ApiServerInstance, ctx: AuditContext) -> Iterator[Hit]:
    servers = parse_urls(api.flags["etcd-servers"].value) if api.get("etcd-servers") else []
    plain = [u.text for u in servers if u.plain]
    if plain:
        yield Hit(
            "critical",
            f"kube-apiserver talks to etcd over plain HTTP: {', '.join(plain)}",
            [api_quote(api, "etcd-servers")],
        )


def check_k8s_encryption(api: ApiServerInstance, ctx: AuditContext) -> Iterator[Hit]:
    flag = api.get("encryption-provider-config")
    if flag is None:
        yield Hit(
            "high",
            "no --encryption-provider-config: Secrets are stored in etcd in plaintext",
            [api_quote(api, "encryption-provider-config")],
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

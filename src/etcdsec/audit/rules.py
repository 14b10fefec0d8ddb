"""The audit rules: their facts from rules.yaml, bound to the code checks named there, and run.

A check gets one instance (or the whole audit, for `audit` scope) and yields `Hit`s; the rule
supplies the rest of the finding. Flag-only checks are data, run by checks/flags.py. Severities
scale with reach: plain HTTP on loopback is a local problem, on a routable address it is the whole
cluster's data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from etcdsec.audit.checks.base import AuditContext, Hit
from etcdsec.audit.checks.etcd import (
    check_auth_token,
    check_auto_tls,
    check_cipher_suites,
    check_client_cert_auth,
    check_client_tls,
    check_ignored,
    check_listen_exposed,
    check_metrics,
    check_peer_auto_tls,
    check_peer_cert_auth,
    check_peer_tls,
    check_refuses,
)
from etcdsec.audit.checks.files import check_data_dir, check_file_perms, check_sources, check_unique_ca
from etcdsec.audit.checks.flags import CONDITIONS, run_flag_test
from etcdsec.audit.checks.kubernetes import check_encryption_files, check_k8s_encryption, check_k8s_etcd_servers
from etcdsec.audit.checks.live import check_rbac
from etcdsec.audit.ruledata import Check, CodeCheck, RuleFacts, parse_rules, shipped_text

__all__ = ["CODE_CHECKS", "AuditContext", "Hit", "RuleFacts", "rule_ids", "rules", "run_rules"]

# What rules.yaml's `code:` names mean. Checks of `audit` scope take only the context.
CODE_CHECKS: dict[str, Callable[..., Iterator[Hit]]] = {
    "client_tls": check_client_tls,
    "client_cert_auth": check_client_cert_auth,
    "auto_tls": check_auto_tls,
    "peer_tls": check_peer_tls,
    "peer_cert_auth": check_peer_cert_auth,
    "peer_auto_tls": check_peer_auto_tls,
    "unique_ca": check_unique_ca,
    "listen_exposed": check_listen_exposed,
    "metrics": check_metrics,
    "auth_token": check_auth_token,
    "cipher_suites": check_cipher_suites,
    "file_perms": check_file_perms,
    "data_dir": check_data_dir,
    "k8s_etcd_servers": check_k8s_etcd_servers,
    "k8s_encryption": check_k8s_encryption,
    "encryption_files": check_encryption_files,
    "rbac": check_rbac,
    "ignored": check_ignored,
    "refuses": check_refuses,
    "sources": check_sources,
}


@cache
def rules() -> tuple[RuleFacts, ...]:
    """The shipped rules, read and checked once per process (RuleDataError if the data is wrong)."""
    return parse_rules(shipped_text(), CODE_CHECKS, CONDITIONS)


def rule_ids() -> tuple[str, ...]:
    return tuple(r.id for r in rules())


def _hits(check: Check, subject: Any, ctx: AuditContext) -> Iterator[Hit]:
    if isinstance(check, CodeCheck):
        fn = CODE_CHECKS[check.name]
        return fn(ctx) if check.scope == "audit" else fn(subject, ctx)
    return run_flag_test(check, subject, ctx)


def run_rules(ctx: AuditContext) -> list[tuple[RuleFacts, Check, Hit, str]]:
    """Every (rule, check, hit, subject), rules in `order` (file modes and unreadable sources last)."""
    out: list[tuple[RuleFacts, Check, Hit, str]] = []
    for rule in sorted(rules(), key=lambda r: r.order):
        for check in rule.checks:
            if check.scope == "etcd":
                for inst in ctx.collector.etcd:
                    if inst.incomplete and not rule.on_incomplete:
                        continue
                    out += [(rule, check, hit, hit.subject or inst.label) for hit in _hits(check, inst, ctx)]
            elif check.scope == "apiserver":
                for api in ctx.collector.apiservers:
                    out += [(rule, check, hit, hit.subject or api.label) for hit in _hits(check, api, ctx)]
            else:
                out += [(rule, check, hit, hit.subject or "host") for hit in _hits(check, None, ctx)]
    return out

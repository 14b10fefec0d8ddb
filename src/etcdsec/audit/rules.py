"""The audit rules, as a table: id, title, CIS references, remediation, and the check that applies it.

A check gets one instance (or the whole audit, for cross-instance rules) and yields `Hit`s; the rule
supplies the rest of the finding. Severities scale with reach: plain HTTP on loopback is a local
problem, on a routable address it is the whole cluster's data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from etcdsec.audit.checks.base import AuditContext, Hit
from etcdsec.audit.checks.etcd import (
    check_auth_token,
    check_auto_tls,
    check_client_cert_auth,
    check_client_tls,
    check_cors,
    check_ignored,
    check_listen_exposed,
    check_metrics,
    check_peer_auto_tls,
    check_peer_cert_auth,
    check_peer_tls,
    check_pprof,
    check_refuses,
    check_tls_params,
    check_v2,
)
from etcdsec.audit.checks.files import check_data_dir, check_file_perms, check_sources, check_unique_ca
from etcdsec.audit.checks.kubernetes import (
    check_encryption_files,
    check_k8s_audit_log,
    check_k8s_encryption,
    check_k8s_etcd_client,
)
from etcdsec.audit.checks.live import check_rbac

__all__ = ["RULES", "RULE_IDS", "AuditContext", "Hit", "Rule", "run_rules"]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    cis: tuple[str, ...]
    remediation: str
    scope: str  # "etcd", "apiserver", "audit"
    check: Callable[..., Iterator[Hit]]



RULES: tuple[Rule, ...] = (
    Rule(
        "ETCD-CLIENT-TLS",
        "client TLS",
        ("2.1",),
        "Set --cert-file and --key-file and make every --listen-client-urls entry https://.",
        "etcd",
        check_client_tls,
    ),
    Rule(
        "ETCD-CLIENT-CERT-AUTH",
        "client certificate authentication",
        ("2.2",),
        "Set --client-cert-auth=true and --trusted-ca-file to the etcd client CA.",
        "etcd",
        check_client_cert_auth,
    ),
    Rule(
        "ETCD-AUTO-TLS",
        "auto-tls off",
        ("2.3",),
        "Remove --auto-tls (ETCD_AUTO_TLS, client-transport-security.auto-tls); use CA-signed certificates.",
        "etcd",
        check_auto_tls,
    ),
    Rule(
        "ETCD-PEER-TLS",
        "peer TLS",
        ("2.4",),
        "Set --peer-cert-file and --peer-key-file and make every --listen-peer-urls entry https://.",
        "etcd",
        check_peer_tls,
    ),
    Rule(
        "ETCD-PEER-CERT-AUTH",
        "peer certificate authentication",
        ("2.5",),
        "Set --peer-client-cert-auth=true and --peer-trusted-ca-file.",
        "etcd",
        check_peer_cert_auth,
    ),
    Rule(
        "ETCD-PEER-AUTO-TLS",
        "peer-auto-tls off",
        ("2.6",),
        "Remove --peer-auto-tls; use CA-signed peer certificates.",
        "etcd",
        check_peer_auto_tls,
    ),
    Rule(
        "ETCD-UNIQUE-CA",
        "etcd CA differs from the Kubernetes CA",
        ("2.7",),
        "Give etcd its own CA (kubeadm: /etc/kubernetes/pki/etcd/ca.crt) and trust only it in --trusted-ca-file.",
        "audit",
        check_unique_ca,
    ),
    Rule(
        "ETCD-LISTEN-EXPOSED",
        "no plain-HTTP client URL off loopback",
        (),
        "Listen on https:// only, or bind plain http:// to 127.0.0.1; firewall 2379/2380.",
        "etcd",
        check_listen_exposed,
    ),
    Rule(
        "ETCD-METRICS-EXPOSED",
        "metrics on loopback or https",
        (),
        "Bind --listen-metrics-urls to http://127.0.0.1:PORT or use https://.",
        "etcd",
        check_metrics,
    ),
    Rule("ETCD-PPROF", "pprof off", (), "Remove --enable-pprof.", "etcd", check_pprof),
    Rule("ETCD-V2-API", "v2 API off", (), "Set --enable-v2=false (migrate v2 data first).", "etcd", check_v2),
    Rule(
        "ETCD-AUTH-TOKEN",
        "jwt tokens when RBAC is used",
        (),
        "Use --auth-token=jwt,pub-key=...,priv-key=...,sign-method=RS256,ttl=10m.",
        "etcd",
        check_auth_token,
    ),
    Rule(
        "ETCD-TLS-PARAMS",
        "TLS 1.2+ and AEAD cipher suites",
        (),
        "Set --tls-min-version=TLS1.2 (or TLS1.3) and list only ECDHE AEAD suites in --cipher-suites.",
        "etcd",
        check_tls_params,
    ),
    Rule(
        "ETCD-CORS",
        "CORS and host whitelist not '*' on plain HTTP",
        (),
        "Use https, or set --cors and --host-whitelist to the exact origins and host names.",
        "etcd",
        check_cors,
    ),
    Rule(
        "ETCD-FILE-PERMS",
        "configuration and key files 600 or stricter",
        ("1.1.7", "1.1.8"),
        "chmod 600 the file and chown root:root.",
        "audit",
        check_file_perms,
    ),
    Rule(
        "ETCD-DATA-DIR",
        "data directory 700 or stricter, owned by etcd",
        ("1.1.11", "1.1.12"),
        "chmod 700 the data directory; chown etcd:etcd where etcd runs as that user.",
        "etcd",
        check_data_dir,
    ),
    Rule(
        "K8S-ETCD-CLIENT",
        "kube-apiserver uses TLS client certificates for etcd",
        ("1.2.23", "1.2.26"),
        "Set --etcd-certfile, --etcd-keyfile, --etcd-cafile and https:// --etcd-servers.",
        "apiserver",
        check_k8s_etcd_client,
    ),
    Rule(
        "K8S-ENCRYPTION",
        "Secrets encrypted at rest",
        ("1.2.27", "1.2.28"),
        "Set --encryption-provider-config with kms (v2) or secretbox FIRST for secrets, "
        "then rewrite all Secrets "
        "(kubectl get secrets -A -o json | kubectl replace -f -).",
        "apiserver",
        check_k8s_encryption,
    ),
    Rule(
        "K8S-ENCRYPTION",
        "Secrets encrypted at rest",
        ("1.2.27", "1.2.28"),
        "Put kms (v2) or secretbox FIRST in the providers for secrets.",
        "audit",
        check_encryption_files,
    ),
    Rule(
        "K8S-AUDIT-LOG",
        "kube-apiserver audit policy and log",
        ("1.2.16", "1.2.17", "1.2.18", "1.2.19"),
        "Set --audit-policy-file (Secrets at Metadata level) and --audit-log-path with maxage/maxbackup/maxsize.",
        "apiserver",
        check_k8s_audit_log,
    ),
    Rule(
        "ETCD-RBAC",
        "v3 auth enabled or client-certificate-only access (live)",
        (),
        "Require client certificates, or `etcdctl user add root && etcdctl auth enable`.",
        "audit",
        check_rbac,
    ),
    Rule(
        "ETCD-IGNORED-SETTING",
        "settings that etcd ignores",
        (),
        "Put the setting where etcd reads it (config file key, or drop --config-file), or delete it.",
        "etcd",
        check_ignored,
    ),
    Rule(
        "ETCD-INVALID-CONFIG",
        "configuration etcd accepts",
        (),
        "Fix the flag or variable named.",
        "etcd",
        check_refuses,
    ),
    Rule(
        "AUDIT-SOURCE",
        "every source read",
        (),
        "Make the file readable to the audit (run as root) or fix its syntax, then audit again.",
        "audit",
        check_sources,
    ),
)

RULE_IDS = tuple(dict.fromkeys(r.id for r in RULES))


def run_rules(ctx: AuditContext) -> list[tuple[Rule, Hit, str]]:
    """Every (rule, hit, subject). AUDIT-SOURCE runs last so it sees files the other rules tried to read."""
    out: list[tuple[Rule, Hit, str]] = []
    # File modes and unreadable sources are judged once every other rule has opened its files.
    late = {"ETCD-FILE-PERMS": 1, "AUDIT-SOURCE": 2}
    for rule in sorted(RULES, key=lambda r: late.get(r.id, 0)):
        if rule.scope == "etcd":
            for inst in ctx.collector.etcd:
                if inst.incomplete and rule.id not in ("ETCD-IGNORED-SETTING", "ETCD-INVALID-CONFIG"):
                    continue
                out += [(rule, hit, hit.subject or inst.label) for hit in rule.check(inst, ctx)]
        elif rule.scope == "apiserver":
            for api in ctx.collector.apiservers:
                out += [(rule, hit, hit.subject or api.label) for hit in rule.check(api, ctx)]
        else:
            out += [(rule, hit, hit.subject or "host") for hit in rule.check(ctx)]
    return out

"""Checks on one etcd member that need code: TLS, certificate auth, exposure, tokens (flag-only ones are data)."""

from __future__ import annotations

from collections.abc import Iterator

from etcdsec.audit.checks.base import (
    AuditContext,
    Hit,
    client_evidence,
    client_urls,
    peer_urls,
    quote,
    reach_severity,
)
from etcdsec.audit.checks.live import probe_matches
from etcdsec.audit.etcdflags import DEFAULTS, is_true
from etcdsec.audit.model import EtcdInstance, Setting
from etcdsec.audit.urls import ListenURL, parse_urls


def _tls_checks(
    inst: EtcdInstance, urls: list[ListenURL], prefix: str, what: str, remote: str, local: str
) -> Iterator[Hit]:
    cert, key = inst.get(f"{prefix}cert-file"), inst.get(f"{prefix}key-file")
    plain = [u for u in urls if u.plain]
    evidence = client_evidence(inst) if prefix == "" else [quote(inst, "listen-peer-urls")]
    if plain:
        where = ", ".join(f"{u.text} ({u.reach})" for u in plain)
        yield Hit(reach_severity(plain, remote, local), f"{what} traffic is plain HTTP: {where}", evidence)
    if any(u.scheme == "https" for u in urls) and not (cert and key) and not is_true(inst.value(f"{prefix}auto-tls")):
        missing = " and ".join(f"{prefix}{n}-file" for n, s in (("cert", cert), ("key", key)) if not s)
        yield Hit(
            "high",
            f"https {what} URL but {missing} not set (etcd cannot serve TLS)",
            [*evidence, quote(inst, f"{prefix}cert-file")],
        )


def _cert_auth(
    inst: EtcdInstance, urls: list[ListenURL], prefix: str, what: str, remote: str, local: str
) -> Iterator[Hit]:
    flag = "peer-client-cert-auth" if prefix else "client-cert-auth"
    ca_name = f"{prefix}trusted-ca-file"
    on, ca = is_true(inst.value(flag)), inst.get(ca_name)
    plain = [u for u in urls if u.scheme in ("http", "unix")]
    secure = [u for u in urls if u.scheme in ("https", "unixs")]
    url_evidence = client_evidence(inst) if not prefix else [quote(inst, "listen-peer-urls")]
    if plain:
        yield Hit(
            reach_severity(plain, remote, local),
            f"plain {what} URL(s) {', '.join(u.text for u in plain)} cannot ask for a certificate: "
            "anyone who connects is served",
            url_evidence,
        )
    if not secure:
        return
    if ca and not on:
        yield Hit(
            "info",
            f"{what} certificates are verified only because {ca_name} is set (etcd 3.4+); "
            f"etcd 3.3 and older would not ask for them",
            [quote(inst, ca_name), quote(inst, flag)],
        )
    elif on and not ca:
        yield Hit(
            "high",
            f"{flag} is on without {ca_name}: any certificate signed by a system-trusted CA is accepted",
            [quote(inst, flag), quote(inst, ca_name)],
        )
    elif not on and not ca:
        yield Hit(
            reach_severity(secure, remote, local),
            f"{what}s on {', '.join(u.text for u in secure)} are not asked for a certificate",
            [quote(inst, flag), quote(inst, ca_name)],
        )


def _auto_tls(inst: EtcdInstance, prefix: str, what: str) -> Iterator[Hit]:
    name = f"{prefix}auto-tls"
    setting = inst.get(name)
    if setting is None or not is_true(setting.value):
        return
    bare = f" (a bare {setting.raw.split()[0]} means true)" if setting.raw and "bare" in setting.raw else ""
    if inst.get(f"{prefix}cert-file") and inst.get(f"{prefix}key-file"):
        yield Hit(
            "low",
            f"{name}{bare} is set but unused ({prefix}cert-file is given); remove it",
            [quote(inst, name)],
        )
    else:
        yield Hit(
            "high",
            f"{name} is on{bare}: a self-signed {what} certificate gives encryption without authentication",
            [quote(inst, name)],
        )


# --- etcd checks ------------------------------------------------------------------------------------
def check_client_tls(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    yield from _tls_checks(inst, client_urls(inst), "", "client", "critical", "medium")


def check_client_cert_auth(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    yield from _cert_auth(inst, client_urls(inst), "", "client", "critical", "medium")


def check_auto_tls(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    yield from _auto_tls(inst, "", "client")


def check_peer_tls(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    yield from _tls_checks(inst, peer_urls(inst), "peer-", "peer", "critical", "low")


def check_peer_cert_auth(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    yield from _cert_auth(inst, peer_urls(inst), "peer-", "peer", "critical", "low")


def check_peer_auto_tls(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    yield from _auto_tls(inst, "peer-", "peer")


def check_listen_exposed(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    urls = client_urls(inst)
    secure = [u.text for u in urls if not u.plain]
    for url in urls:
        if not (url.plain and url.remote):
            continue
        where = {
            "wildcard": "on every interface",
            "public": "on a public address",
            "private": "on a routable private address",
            "name": "on a host name",
        }[url.reach]
        also = f" (alongside {', '.join(secure)}: one plain URL is enough)" if secure else ""
        severity = "high" if url.reach == "private" else "critical"
        yield Hit(severity, f"plain-HTTP client URL {url.text} listens {where}{also}", client_evidence(inst))


def check_metrics(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    for url in parse_urls(inst.value("listen-metrics-urls")):
        if url.plain and url.remote:
            yield Hit(
                "medium",
                f"metrics URL {url.text} is plain HTTP off loopback: /metrics and /health are not covered by RBAC",
                [quote(inst, "listen-metrics-urls")],
            )


def _client_certs_enforced(inst: EtcdInstance) -> bool:
    urls = client_urls(inst)
    secure = all(u.scheme in ("https", "unixs") for u in urls)
    return secure and bool(inst.get("trusted-ca-file"))


def check_auth_token(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    token = inst.value("auth-token", DEFAULTS["auth-token"])
    if not token.startswith("simple"):
        return
    rbac_on = any(p.auth.v3_enabled for p in ctx.probes if probe_matches(p, inst))
    if rbac_on:
        yield Hit(
            "medium",
            "v3 auth is enabled with simple tokens: they are not meant for production; use jwt",
            [quote(inst, "auth-token")],
        )
    elif not _client_certs_enforced(inst):
        yield Hit(
            "low",
            "auth-token is simple: if RBAC protects this etcd, use jwt tokens",
            [quote(inst, "auth-token")],
        )


def check_cipher_suites(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    suites = [s.strip() for s in inst.value("cipher-suites").split(",") if s.strip()]
    weak = [s for s in suites if not ("GCM" in s or "CHACHA20" in s)]
    if weak:
        yield Hit("medium", f"non-AEAD cipher suites allowed: {', '.join(weak)}", [quote(inst, "cipher-suites")])


def _spelled(setting: Setting) -> str:
    return f"--{setting.name}" if setting.raw else setting.describe().split("=")[0]


def check_ignored(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    if inst.ignored:
        names = ", ".join(dict.fromkeys(_spelled(i.setting) for i in inst.ignored))
        evidence = [f"{i.setting.origin}: {i.setting.describe()} — {i.reason}" for i in inst.ignored]
        yield Hit("low", f"{len(inst.ignored)} setting(s) have no effect: {names}", evidence)


def check_refuses(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    for problem in inst.refuses_to_start:
        yield Hit("medium", f"etcd would refuse to start: {problem}", [str(inst.origin)])

"""The audit rules, as a table: id, title, CIS references, remediation, and the check that applies it.

A check gets one instance (or the whole audit, for cross-instance rules) and yields `Hit`s; the rule
supplies the rest of the finding. Severities scale with reach: plain HTTP on loopback is a local
problem, on a routable address it is the whole cluster's data.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from etcdsec.audit import encryption
from etcdsec.audit.etcdflags import DEFAULTS, is_true
from etcdsec.audit.model import ApiServerInstance, EtcdInstance, Setting
from etcdsec.audit.sources import Collector
from etcdsec.audit.urls import ListenURL, parse_urls
from etcdsec.audit.yamllines import load_all


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


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    cis: tuple[str, ...]
    remediation: str
    scope: str  # "etcd", "apiserver", "audit"
    check: Callable[..., Iterator[Hit]]


# --- helpers ----------------------------------------------------------------------------------------
def _evidence(inst: EtcdInstance, name: str) -> str:
    setting = inst.get(name)
    if setting is not None:
        return f"{setting.origin}: {setting.describe()}"
    default = DEFAULTS.get(name)
    shown = f" (default {default})" if default else ""
    return f"{inst.origin}: {name} not set{shown}"


def _client_urls(inst: EtcdInstance) -> list[ListenURL]:
    urls = parse_urls(inst.value("listen-client-urls", DEFAULTS["listen-client-urls"]))
    return urls + parse_urls(inst.value("listen-client-http-urls"))


def _peer_urls(inst: EtcdInstance) -> list[ListenURL]:
    return parse_urls(inst.value("listen-peer-urls", DEFAULTS["listen-peer-urls"]))


def _client_evidence(inst: EtcdInstance) -> list[str]:
    out = [_evidence(inst, "listen-client-urls")]
    if inst.get("listen-client-http-urls"):
        out.append(_evidence(inst, "listen-client-http-urls"))
    return out


def _reach_severity(urls: list[ListenURL], remote: str, local: str) -> str:
    return remote if any(u.remote for u in urls) else local


def _tls_checks(
    inst: EtcdInstance, urls: list[ListenURL], prefix: str, what: str, remote: str, local: str
) -> Iterator[Hit]:
    cert, key = inst.get(f"{prefix}cert-file"), inst.get(f"{prefix}key-file")
    plain = [u for u in urls if u.plain]
    evidence = _client_evidence(inst) if prefix == "" else [_evidence(inst, "listen-peer-urls")]
    if plain:
        where = ", ".join(f"{u.text} ({u.reach})" for u in plain)
        yield Hit(_reach_severity(plain, remote, local), f"{what} traffic is plain HTTP: {where}", evidence)
    if any(u.scheme == "https" for u in urls) and not (cert and key) and not is_true(inst.value(f"{prefix}auto-tls")):
        missing = " and ".join(f"{prefix}{n}-file" for n, s in (("cert", cert), ("key", key)) if not s)
        yield Hit(
            "high",
            f"https {what} URL but {missing} not set (etcd cannot serve TLS)",
            [*evidence, _evidence(inst, f"{prefix}cert-file")],
        )


def _cert_auth(
    inst: EtcdInstance, urls: list[ListenURL], prefix: str, what: str, remote: str, local: str
) -> Iterator[Hit]:
    flag = "peer-client-cert-auth" if prefix else "client-cert-auth"
    ca_name = f"{prefix}trusted-ca-file"
    on, ca = is_true(inst.value(flag)), inst.get(ca_name)
    plain = [u for u in urls if u.scheme in ("http", "unix")]
    secure = [u for u in urls if u.scheme in ("https", "unixs")]
    url_evidence = _client_evidence(inst) if not prefix else [_evidence(inst, "listen-peer-urls")]
    if plain:
        yield Hit(
            _reach_severity(plain, remote, local),
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
            [_evidence(inst, ca_name), _evidence(inst, flag)],
        )
    elif on and not ca:
        yield Hit(
            "high",
            f"{flag} is on without {ca_name}: any certificate signed by a system-trusted CA is accepted",
            [_evidence(inst, flag), _evidence(inst, ca_name)],
        )
    elif not on and not ca:
        yield Hit(
            _reach_severity(secure, remote, local),
            f"{what}s on {', '.join(u.text for u in secure)} are not asked for a certificate",
            [_evidence(inst, flag), _evidence(inst, ca_name)],
        )


def check_peer_san(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    for name in ("experimental-peer-skip-client-san-verification", "peer-skip-client-san-verification"):
        if is_true(inst.value(name)):
            yield Hit(
                "medium",
                f"{name} is on: a peer certificate is accepted whatever address it comes from",
                [_evidence(inst, name)],
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
            [_evidence(inst, name)],
        )
    else:
        yield Hit(
            "high",
            f"{name} is on{bare}: a self-signed {what} certificate gives encryption without authentication",
            [_evidence(inst, name)],
        )


# --- etcd checks ------------------------------------------------------------------------------------
def check_client_tls(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    yield from _tls_checks(inst, _client_urls(inst), "", "client", "critical", "medium")


def check_client_cert_auth(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    yield from _cert_auth(inst, _client_urls(inst), "", "client", "critical", "medium")


def check_auto_tls(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    yield from _auto_tls(inst, "", "client")


def check_peer_tls(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    yield from _tls_checks(inst, _peer_urls(inst), "peer-", "peer", "critical", "low")


def check_peer_cert_auth(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    yield from _cert_auth(inst, _peer_urls(inst), "peer-", "peer", "critical", "low")
    yield from check_peer_san(inst, ctx)


def check_peer_auto_tls(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    yield from _auto_tls(inst, "peer-", "peer")


def check_listen_exposed(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    urls = _client_urls(inst)
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
        yield Hit(severity, f"plain-HTTP client URL {url.text} listens {where}{also}", _client_evidence(inst))


def check_metrics(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    for url in parse_urls(inst.value("listen-metrics-urls")):
        if url.plain and url.remote:
            yield Hit(
                "medium",
                f"metrics URL {url.text} is plain HTTP off loopback: /metrics and /health are not covered by RBAC",
                [_evidence(inst, "listen-metrics-urls")],
            )


def check_pprof(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    if is_true(inst.value("enable-pprof")):
        yield Hit(
            "medium",
            "pprof is on: /debug/pprof on the client URL exposes profiles and the command line",
            [_evidence(inst, "enable-pprof")],
        )


def check_v2(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    if is_true(inst.value("enable-v2")) or is_true(inst.value("experimental-enable-v2v3")):
        yield Hit(
            "medium",
            "the v2 API is on: its separate auth model and guest role are easy to leave open",
            [_evidence(inst, "enable-v2")],
        )


def _client_certs_enforced(inst: EtcdInstance) -> bool:
    urls = _client_urls(inst)
    secure = all(u.scheme in ("https", "unixs") for u in urls)
    return secure and bool(inst.get("trusted-ca-file"))


def check_auth_token(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    token = inst.value("auth-token", DEFAULTS["auth-token"])
    if not token.startswith("simple"):
        return
    rbac_on = any(p.auth.v3_enabled for p in ctx.probes if _probe_matches(p, inst))
    if rbac_on:
        yield Hit(
            "medium",
            "v3 auth is enabled with simple tokens: they are not meant for production; use jwt",
            [_evidence(inst, "auth-token")],
        )
    elif not _client_certs_enforced(inst):
        yield Hit(
            "low",
            "auth-token is simple: if RBAC protects this etcd, use jwt tokens",
            [_evidence(inst, "auth-token")],
        )


_WEAK_TLS = {"TLS1.0", "TLS1.1", "TLS10", "TLS11", "VersionTLS10", "VersionTLS11"}


def check_tls_params(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    version = inst.value("tls-min-version")
    if version in _WEAK_TLS:
        yield Hit(
            "medium",
            f"tls-min-version is {version}: allow TLS 1.2 or newer only",
            [_evidence(inst, "tls-min-version")],
        )
    suites = [s.strip() for s in inst.value("cipher-suites").split(",") if s.strip()]
    weak = [s for s in suites if not ("GCM" in s or "CHACHA20" in s)]
    if weak:
        yield Hit("medium", f"non-AEAD cipher suites allowed: {', '.join(weak)}", [_evidence(inst, "cipher-suites")])


def check_cors(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    plain = [u for u in _client_urls(inst) if u.plain]
    if not plain:
        return
    for name in ("cors", "host-whitelist"):
        value = inst.value(name, DEFAULTS[name])
        if "*" in [v.strip() for v in value.split(",")]:
            yield Hit(
                "low",
                f"{name} is '*' on a plain-HTTP client URL: web pages can reach etcd (DNS rebinding, CVE-2018-5702)",
                [_evidence(inst, name)],
            )


def _key_file_names(inst: EtcdInstance) -> list[str]:
    return [n for n in ("key-file", "peer-key-file", "client-key-file", "peer-client-key-file") if inst.get(n)]


def _mode_hits(
    ctx: AuditContext,
    path: Path,
    shown: str,
    limit: int,
    severity: str,
    what: str,
    owners: tuple[str, ...] = ("root",),
    owner_severity: str = "low",
) -> Iterator[Hit]:
    try:
        info = path.stat()
    except OSError:
        return
    mode = stat.S_IMODE(info.st_mode)
    if mode & ~limit & 0o777:
        yield Hit(severity, f"{what} {shown} has mode {mode:03o} (want {limit:03o} or stricter)", [shown], shown)
    if ctx.live_host:
        owner = _owner(info.st_uid)
        if owner not in owners:
            yield Hit(
                owner_severity,
                f"{what} {shown} is owned by {owner} (want {' or '.join(owners)})",
                [shown],
                shown,
            )


def _owner(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


_CONFIG_KINDS = {
    "static pod manifest": 0o600,
    "environment file": 0o600,
    "etcd config file": 0o600,
    "encryption provider config": 0o600,
    "k3s config file": 0o600,
}


def check_file_perms(ctx: AuditContext) -> Iterator[Hit]:
    for source in ctx.collector.sources:
        if source.status == "read" and source.kind in _CONFIG_KINDS and source.real is not None:
            severity = "high" if source.kind == "encryption provider config" else "medium"
            yield from _mode_hits(ctx, source.real, source.path, _CONFIG_KINDS[source.kind], severity, source.kind)
    seen: set[Path] = set()
    key_files: list[tuple[Path, Setting]] = []
    for inst in ctx.collector.etcd:
        if inst.planned:
            continue
        key_files += [(inst.real_path(inst.value(n)), inst.settings[n]) for n in _key_file_names(inst)]
    for api in ctx.collector.apiservers:
        if api.get("etcd-keyfile") and not api.planned:
            key_files.append((api.real_path(api.flags["etcd-keyfile"].value), api.flags["etcd-keyfile"]))
    for path, setting in key_files:
        if path in seen:
            continue
        seen.add(path)
        if not ctx.collector.look_at(path, "private key"):
            continue
        shown = ctx.collector.show(path)
        for hit in _mode_hits(ctx, path, shown, 0o600, "high", "private key"):
            yield Hit(hit.severity, hit.title, [*hit.evidence, f"{setting.origin}: {setting.describe()}"], shown)


def check_data_dir(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    if inst.planned:
        return
    setting = inst.get("data-dir")
    if setting is not None:
        path = inst.real_path(setting.value)
    elif inst.live_pid is not None:
        path = Path(f"/proc/{inst.live_pid}/cwd") / f"{inst.value('name', DEFAULTS['name'])}.etcd"
    else:
        return  # the default is relative to a working directory this audit cannot know
    shown = ctx.collector.show(path)
    # A copied tree often lacks the data directory: then it is listed as absent, not reported.
    if not ctx.collector.look_at(path, "etcd data dir", optional=True):
        return
    for hit in _mode_hits(ctx, path, shown, 0o700, "high", "data directory", owners=("etcd",)):
        note = " (kubeadm and kubespray run etcd as root and leave it root-owned)" if "owned" in hit.title else ""
        yield Hit(hit.severity, hit.title + note, [*hit.evidence, _evidence(inst, "data-dir")], hit.subject)


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


# --- cross-instance and kube-apiserver checks ----------------------------------------------------------
def _fingerprints(ctx: AuditContext, path: Path) -> set[str]:
    try:
        data = path.read_bytes()
    except OSError:
        ctx.collector.read_text(path, "CA certificate")  # records why it could not be read
        return set()
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        ctx.collector.read_text(path, "CA certificate")
        ctx.collector.unparsable(path, "no PEM certificate")
        return set()
    ctx.collector.read_text(path, "CA certificate")
    return {hashlib.sha256(c.tbs_certificate_bytes).hexdigest() for c in certs}


def check_unique_ca(ctx: AuditContext) -> Iterator[Hit]:
    for api in ctx.collector.apiservers:
        client_ca = api.get("client-ca-file")
        if client_ca is None or api.planned:
            continue
        k8s = _fingerprints(ctx, api.real_path(client_ca.value))
        for inst in ctx.collector.etcd:
            etcd_ca = inst.get("trusted-ca-file")
            if etcd_ca is None or inst.incomplete or inst.planned or inst.root != api.root:
                continue
            if k8s & _fingerprints(ctx, inst.real_path(etcd_ca.value)):
                yield Hit(
                    "high",
                    "etcd trusts the Kubernetes client CA: every certificate that CA signed "
                    "(kubelets, users) is accepted by etcd",
                    [
                        f"{etcd_ca.origin}: {etcd_ca.describe()}",
                        f"{client_ca.origin}: {client_ca.describe()}",
                    ],
                    inst.label,
                )


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


def _encryption_file(ctx: AuditContext, path: Path, evidence: list[str], subject: str,
                     planned: bool = False) -> Iterator[Hit]:
    text = ctx.collector.read_text(path, "encryption provider config", optional=planned)
    if text is None:
        if planned:  # a configuration audited before deployment: the file may come later
            yield Hit("info", f"encryption provider config {ctx.collector.show(path)} not found here: "
                              "its providers were not checked", evidence, subject)
        return  # otherwise reported as an unreadable source
    shown = ctx.collector.show(path)
    try:
        docs = load_all(text)
    except Exception:
        ctx.collector.unparsable(path, "not valid YAML/JSON")
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


# --- live endpoint -------------------------------------------------------------------------------------
def _probe_matches(probe: Any, inst: EtcdInstance) -> bool:
    """A probe result belongs to an instance when its address is one of the instance's client URLs."""
    for url in _client_urls(inst):
        if probe.ip and url.host == probe.ip and probe.port and url.text.rstrip("/").endswith(f":{probe.port}"):
            return True
    return False


def check_rbac(ctx: AuditContext) -> Iterator[Hit]:
    for probe in ctx.probes:
        evidence = [f"live endpoint {probe.target}"]
        if not probe.reachable:
            yield Hit(
                "medium",
                f"live endpoint {probe.target} not reachable: {probe.error or 'no answer'}",
                evidence,
                probe.target,
            )
            continue
        if probe.client_cert_required:
            continue  # client-certificate-only access
        if probe.access.read_v3 or probe.access.write:
            what = "read and write" if probe.access.write else "read"
            yield Hit(
                "critical",
                f"anonymous clients can {what} keys over v3 (auth "
                f"{'enabled' if probe.auth.v3_enabled else 'disabled'})",
                evidence,
                probe.target,
            )
        elif probe.auth.v3_enabled is False:
            yield Hit("high", "v3 auth is disabled and no client certificate is required", evidence, probe.target)
        if probe.auth.v2_guest_open or probe.access.read_v2:
            yield Hit("high", "the v2 API answers anonymous reads (guest role open)", evidence, probe.target)


def check_sources(ctx: AuditContext) -> Iterator[Hit]:
    for source in ctx.collector.sources:
        if source.status in ("unreadable", "unparsable", "missing"):
            yield Hit(
                "medium",
                f"{source.kind} {source.path} is {source.status} ({source.detail}): "
                "the audit of what depends on it is incomplete",
                [source.path],
                source.path,
            )
        elif source.status == "unrecognised":
            yield Hit(
                "info",
                f"{source.path} is not a configuration this audit understands; skipped",
                [source.path],
                source.path,
            )


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

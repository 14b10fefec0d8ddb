"""Judge a probe result: which catalogue findings apply, the worst severity, and `exposed`."""

from __future__ import annotations

from collections.abc import Callable

from etcdsec.model import Finding, ProbeResult, Severity
from etcdsec.probe import fingerprint as fp
from etcdsec.probe.catalogue import BY_ID

# Anonymous exposure is judged from auth state, so it holds whatever credentials the probe used.


def v3_served(r: ProbeResult) -> bool:
    return r.apis.v3_prefix is not None or bool(r.apis.grpc)


def v3_range_label(r: ProbeResult) -> str:
    return f"POST {r.apis.v3_prefix}/kv/range" if r.apis.v3_prefix else "gRPC KV/Range"


def anon_read_v3(r: ProbeResult) -> bool:
    # Auth off says everyone reads; a RangeResponse to our range proves the API is really there.
    return v3_served(r) and r.auth.v3_enabled is False and r.access.read_v3 is True


def owner_view(r: ProbeResult) -> bool:
    """`access` shows what the owner's credentials can do (not anonymous access): etcd accepted them."""
    return bool(r.credentials) and not r.credentials_rejected


def anon_read_v2(r: ProbeResult) -> bool:
    if owner_view(r):
        return bool(r.apis.v2 and r.auth.v2_enabled is False and r.access.read_v2)
    return bool(r.access.read_v2)


def anon_write(r: ProbeResult) -> bool:
    if owner_view(r):
        return anon_read_v3(r) or bool(r.apis.v2 and r.auth.v2_enabled is False and r.access.read_v2)
    return bool(r.access.write)


def _keys_evidence(r: ProbeResult) -> str:
    if r.data.key_count is None:
        return ""
    return f"; {r.data.key_count} keys"


Rule = tuple[str, Callable[[ProbeResult], bool], Callable[[ProbeResult], str]]

RULES: tuple[Rule, ...] = (
    ("ETCD-ANON-READ-V3", anon_read_v3,
     lambda r: f"{v3_range_label(r)} (count_only) answered without credentials{_keys_evidence(r)}"),
    ("ETCD-ANON-READ-V2", anon_read_v2, lambda r: "HEAD /v2/keys/ answered 200 without credentials"),
    ("ETCD-V2-GUEST-OPEN", lambda r: bool(r.auth.v2_enabled and r.auth.v2_guest_open),
     lambda r: "GET /v2/auth/enable says enabled, yet an anonymous HEAD /v2/keys/ is served as guest"),
    ("ETCD-ANON-WRITE", anon_write,
     lambda r: "auth is off on a served API, so every client has root rights"
     if (r.auth.v3_enabled is False or r.auth.v2_enabled is False) else
     "a PUT that could only fail (prevExist on a missing key) passed the permission check"),
    ("ETCD-K8S-SECRETS",
     lambda r: bool((anon_read_v3(r) or anon_read_v2(r)) and (r.data.secret_keys or
                    (r.data.kubernetes and r.data.secret_keys is None))),
     lambda r: f"{r.data.secret_keys} keys under /registry/secrets/ (names counted, values never read)"
     if r.data.secret_keys else "keys under /registry/ (Kubernetes) are readable"),
    ("ETCD-PLAINTEXT", lambda r: r.role == "client" and r.scheme == "http",
     lambda r: f"http://{r.ip}:{r.port} answered the etcd API without TLS"),
    ("ETCD-NO-CLIENT-CERT", lambda r: r.role == "client" and r.scheme == "https" and not r.client_cert_required,
     lambda r: "TLS handshake completed and the API answered without a client certificate"),
    ("ETCD-PEER-OPEN", lambda r: r.role == "peer" and not r.client_cert_required,
     lambda r: f"GET /members on the peer port listed {len(r.members)} member(s)"),
    ("ETCD-PPROF", lambda r: r.leaks.pprof, lambda r: "GET /debug/pprof/ answered 200"),
    ("ETCD-DEBUG-VARS", lambda r: r.leaks.debug_vars,
     lambda r: f"GET /debug/vars disclosed {len(r.leaks.cmdline_flags)} flags: "
     + " ".join(r.leaks.cmdline_flags[:6]) + (" ..." if len(r.leaks.cmdline_flags) > 6 else "")),
    ("ETCD-TLS-WEAK", lambda r: bool(r.tls and r.tls.version in ("TLSv1", "TLSv1.1", "SSLv3")),
     lambda r: f"negotiated {r.tls.version if r.tls else ''}"),
    ("ETCD-TLS-EXPIRED", lambda r: bool(r.tls and r.tls.expired),
     lambda r: f"certificate not valid after {r.tls.not_after if r.tls else ''}"),
    ("ETCD-EOL-VERSION", lambda r: (fp.semver(r.version) or (99, 0, 0)) < (3, 4, 0),
     lambda r: f"etcd {r.version}"),
    ("ETCD-METRICS", lambda r: r.leaks.metrics, lambda r: "GET /metrics answered etcd_server_* metrics"),
    ("ETCD-V2-ENABLED", lambda r: bool(r.apis.v2), lambda r: "the /v2 API answers"),
    ("ETCD-TLS-SELF-SIGNED", lambda r: bool(r.tls and r.tls.self_signed),
     lambda r: f"subject = issuer = {r.tls.subject if r.tls else ''}"),
    ("ETCD-MEMBERS-DISCLOSED", lambda r: r.role == "client" and bool(r.members),
     lambda r: "members: " + ", ".join(f"{m.name or m.id} {' '.join(m.client_urls or m.peer_urls)}"
                                       for m in r.members[:5])),
    ("ETCD-VERSION-DISCLOSED", lambda r: r.version is not None, lambda r: f"GET /version: etcd {r.version}"),
)


def judge(r: ProbeResult) -> ProbeResult:
    findings: list[Finding] = []
    if r.is_etcd:
        for fid, applies, evidence in RULES:
            if applies(r):
                d = BY_ID[fid]
                findings.append(Finding(fid, d.severity, d.title, evidence(r), d.remediation, d.practice))
    r.exposed = any(f.id in ("ETCD-ANON-READ-V3", "ETCD-ANON-READ-V2", "ETCD-ANON-WRITE", "ETCD-V2-GUEST-OPEN")
                    for f in findings)
    if r.exposed:
        d = BY_ID["ETCD-NO-AUDIT-TRAIL"]
        findings.append(Finding(d.id, d.severity, d.title, "no request log exists in etcd", d.remediation,
                                d.practice))
    findings.sort(key=lambda f: -Severity.parse(f.severity))
    r.findings = findings
    r.severity = findings[0].severity if findings else "none"
    return r

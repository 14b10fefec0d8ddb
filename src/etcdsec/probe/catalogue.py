"""The probe's findings, as data. IDs are stable: scripts, stores and docs/findings.md refer to them.

Each finding names the practice it breaks, from etcd's security model:
restrict network access, enable auth, TLS with client certificates, encryption at rest, audit logging.
"""

from __future__ import annotations

from dataclasses import dataclass

NETWORK = "restrict network access"
AUTH = "enable auth"
MTLS = "TLS with client certificates"
AT_REST = "encryption at rest"
AUDIT = "audit logging"


@dataclass(frozen=True)
class FindingDef:
    id: str
    severity: str
    title: str
    remediation: str
    practice: str


CATALOGUE: tuple[FindingDef, ...] = (
    FindingDef("ETCD-ANON-READ-V3", "critical", "Anyone can read every key through the v3 API",
               "Enable client certificate auth (--client-cert-auth with --trusted-ca-file) or v3 RBAC "
               "(etcdctl user add root; etcdctl auth enable), and firewall 2379 to the API servers.", AUTH),
    FindingDef("ETCD-ANON-READ-V2", "critical", "Anyone can read every key through the v2 API",
               "Disable the v2 API (--enable-v2=false) or enable v2 auth and revoke the guest role; "
               "require client certificates.", AUTH),
    FindingDef("ETCD-ANON-WRITE", "critical", "Anyone can write and delete keys",
               "Require client certificates (--client-cert-auth) or enable auth on every API that is "
               "served; restrict 2379 to the hosts that need it.", AUTH),
    FindingDef("ETCD-V2-GUEST-OPEN", "critical", "v2 auth is enabled but the guest role still grants anonymous access",
               "Revoke the guest role's permissions (etcdctl role revoke guest --path '/*' --readwrite) "
               "or disable the v2 API.", AUTH),
    FindingDef("ETCD-K8S-SECRETS", "critical", "Kubernetes Secrets are stored in this readable etcd",
               "Close anonymous access first; then encrypt Secrets at rest with an EncryptionConfiguration "
               "whose first provider is kms, secretbox or aescbc, and rotate every credential stored here.",
               AT_REST),
    FindingDef("ETCD-PLAINTEXT", "high", "The client API is served over plain HTTP",
               "Serve only https:// client URLs (--cert-file/--key-file) and require client certificates.",
               MTLS),
    FindingDef("ETCD-NO-CLIENT-CERT", "high", "TLS is on but client certificates are not required",
               "Set --client-cert-auth=true and --trusted-ca-file to a CA used only for etcd.", MTLS),
    FindingDef("ETCD-PEER-OPEN", "high", "The peer API answers without a client certificate",
               "Set --peer-client-cert-auth=true with --peer-trusted-ca-file, serve https:// peer URLs, "
               "and firewall 2380 to the other members.", NETWORK),
    FindingDef("ETCD-PPROF", "high", "Go pprof profiling is enabled on the client URL",
               "Remove --enable-pprof; profiling exposes memory contents and allows costly profiles.", NETWORK),
    FindingDef("ETCD-DEBUG-VARS", "medium", "/debug/vars discloses the command line",
               "Restrict network access to the client URL; /debug/vars is not covered by auth.", NETWORK),
    FindingDef("ETCD-TLS-WEAK", "medium", "The server accepts a TLS version older than 1.2",
               "Set --tls-min-version=TLS1.2 (etcd >= 3.5.8) or upgrade etcd.", MTLS),
    FindingDef("ETCD-TLS-EXPIRED", "medium", "The server certificate has expired",
               "Renew the server certificate; clients that skip verification hide this.", MTLS),
    FindingDef("ETCD-EOL-VERSION", "medium", "This etcd release line no longer receives security fixes",
               "Upgrade to a supported etcd release.", NETWORK),
    FindingDef("ETCD-METRICS", "low", "/metrics is reachable without authentication",
               "Serve metrics on a separate loopback or https URL (--listen-metrics-urls) and firewall it.",
               NETWORK),
    FindingDef("ETCD-V2-ENABLED", "low", "The legacy v2 API is enabled",
               "Set --enable-v2=false; v2 has its own, separate auth and is removed in etcd 3.6.", AUTH),
    FindingDef("ETCD-TLS-SELF-SIGNED", "low", "The server certificate is self-signed (auto-tls?)",
               "Issue certificates from a dedicated CA instead of --auto-tls.", MTLS),
    FindingDef("ETCD-MEMBERS-DISCLOSED", "low", "Cluster members and their URLs are disclosed without auth",
               "Restrict network access: member list and status answer without auth by design.", NETWORK),
    FindingDef("ETCD-VERSION-DISCLOSED", "info", "The etcd version is disclosed (by design)",
               "Restrict network access to 2379/2380; /version answers without auth by design.", NETWORK),
    FindingDef("ETCD-NO-AUDIT-TRAIL", "info", "etcd keeps no request log: reads of this data leave no trace",
               "Put etcd behind the API server only, and keep kube-apiserver audit logs.", AUDIT),
)

BY_ID: dict[str, FindingDef] = {f.id: f for f in CATALOGUE}

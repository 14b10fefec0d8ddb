"""The bait: a plausible Kubernetes control-plane keyspace with per-deployment honeytokens.

Everything derives from the deployment's secret seed, so the same sensor serves the same data
after a restart, and two sensors never share a token (a reused token names its sensor).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from etcdsec.errors import UserError
from etcdsec.honeypot.core import kubeproto
from etcdsec.honeypot.core.honeytokens import token_problem

NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease", "prod", "monitoring", "ci"]
APPS = {"prod": ["payments-api", "orders-worker", "web-frontend"], "monitoring": ["prometheus", "grafana"],
        "ci": ["gitlab-runner"], "kube-system": ["coredns", "kube-proxy"]}
# The service accounts of a kubeadm v1.21 control plane (kube-controller-manager runs with
# --use-service-account-credentials, so each controller has its own), the addons' and Calico's.
KUBE_SYSTEM_ACCOUNTS = [
    "attachdetach-controller", "bootstrap-signer", "calico-kube-controllers", "calico-node",
    "certificate-controller", "clusterrole-aggregation-controller", "coredns", "cronjob-controller",
    "daemon-set-controller", "default", "deployment-controller", "disruption-controller", "endpoint-controller",
    "endpointslice-controller", "endpointslicemirroring-controller", "ephemeral-volume-controller",
    "expand-controller", "generic-garbage-collector", "horizontal-pod-autoscaler", "job-controller", "kube-proxy",
    "namespace-controller", "node-controller", "persistent-volume-binder", "pod-garbage-collector",
    "pv-protection-controller", "pvc-protection-controller", "replicaset-controller", "replication-controller",
    "resourcequota-controller", "root-ca-cert-publisher", "service-account-controller", "service-controller",
    "statefulset-controller", "token-cleaner", "ttl-after-finished-controller", "ttl-controller",
]
KUBE_ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand: generated name suffixes
CLUSTER_AGE = timedelta(days=97)  # the cluster is older than this etcd member's start
CONTROL_PLANE_UP_S = 14.2  # the apiserver and the elected leaders came up this long after the member
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass
class Bait:
    keys: list[tuple[bytes, bytes]] = field(default_factory=list)  # the v3 keyspace
    tokens: dict[str, str] = field(default_factory=dict)  # value -> label (where it was planted)
    # The v2 keyspace when it differs (Kubernetes objects as JSON, as the etcd2-era apiserver
    # stored them); None: the same keys as v3.
    v2_keys: list[tuple[bytes, bytes]] | None = None

    @property
    def v2_view(self) -> list[tuple[bytes, bytes]]:
        return self.keys if self.v2_keys is None else self.v2_keys


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))  # the apiserver's uids are random (v4)


def uid_of(seed: str, name: str) -> str:
    """A stable v4-shaped uid for an object the control plane writes again and again."""
    return str(uuid.UUID(bytes=hashlib.sha256(f"{seed}/{name}".encode()).digest()[:16], version=4))


def _word(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _seed_key(seed: str, purpose: str) -> ec.EllipticCurvePrivateKey:
    """An ECDSA P-256 key that is the same for the same deployment seed (kubeadm's PublicKeysECDSA
    gate makes the cluster CA and the service-account signing key P-256 keys)."""
    digest = hashlib.sha256(f"{seed}/{purpose}".encode()).digest()
    return ec.derive_private_key(int.from_bytes(digest) % (P256_ORDER - 1) + 1, ec.SECP256R1())


def _es256(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """A JWS ES256 signature (r || s); RFC 6979 nonces keep it the same after a restart."""
    try:
        der = key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    except TypeError:  # cryptography < 44: stable bytes of the right shape instead (they do not verify)
        return hashlib.sha512(key.private_numbers().private_value.to_bytes(32) + data).digest()
    r, s = decode_dss_signature(der)
    return r.to_bytes(32) + s.to_bytes(32)


def _jwt(key: ec.EllipticCurvePrivateKey, kid: str, namespace: str, sa: str, secret: str, uid: str) -> str:
    """A legacy (secret-based) service-account token as kube-controller-manager's token controller
    signs it: go-jose's compact JSON with the claims sorted, signed with the cluster's key."""
    head = _b64url(json.dumps({"alg": "ES256", "kid": kid}, separators=(",", ":")).encode())
    claims = {"iss": "kubernetes/serviceaccount", "kubernetes.io/serviceaccount/namespace": namespace,
              "kubernetes.io/serviceaccount/secret.name": secret,
              "kubernetes.io/serviceaccount/service-account.name": sa,
              "kubernetes.io/serviceaccount/service-account.uid": uid,
              "sub": f"system:serviceaccount:{namespace}:{sa}"}
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}.{_b64url(_es256(key, f'{head}.{body}'.encode()))}"


def _ca_pem(seed: str, born: datetime) -> bytes:
    """The cluster CA as kubeadm makes it (certutil.NewSelfSignedCACert: CN and SAN "kubernetes",
    ten years, CA key usages), with an ECDSA P-256 key as kubeadm's PublicKeysECDSA gate gives: a key
    derived from the seed and RFC 6979 signing make it the same certificate after every restart."""
    key = _seed_key(seed, "cluster-ca")
    digest = hashlib.sha256(f"{seed}/cluster-ca-serial".encode()).digest()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                          encipher_only=False, decipher_only=False)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(int.from_bytes(digest[:8]) >> 1 | 1)
            .not_valid_before(born).not_valid_after(born + timedelta(days=3650))
            .add_extension(usage, critical=True)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("kubernetes")]), critical=False))
    try:
        signed = cert.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    except TypeError:  # cryptography < 44: a random nonce, so the signature differs per start
        signed = cert.sign(key, hashes.SHA256())
    return signed.public_bytes(serialization.Encoding.PEM)


def kubernetes_bait(seed: str, created: datetime) -> Bait:
    """The default dataset: a kubeadm cluster's namespaces, service accounts with their token
    secrets, pods, config maps and planted credentials under /registry/, stored as kube-apiserver
    stores them (protobuf on v3, JSON on v2); every token and credential is a honeytoken."""
    rng = random.Random(seed)
    bait = Bait()
    objects: list[tuple[str, dict[str, Any]]] = []
    born = kubeproto.stamp((created - CLUSTER_AGE).timestamp())
    sa_key = _seed_key(seed, "service-account-key")
    # the apiserver's key id: sha256 of the public key's PKIX DER (serviceaccount/jwt.go keyIDFromPublicKey)
    kid = _b64url(hashlib.sha256(sa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest())
    ca = _ca_pem(seed, created - CLUSTER_AGE)

    def put(key: str, obj: dict[str, Any]) -> None:
        objects.append((key, obj))

    def meta(name: str, ns: str | None = None, **more: Any) -> dict[str, Any]:
        m: dict[str, Any] = {"name": name, **({"namespace": ns} if ns else {}), "uid": _uid(rng),
                             "creationTimestamp": born}
        return {**m, **more}

    def suffix(n: int) -> str:
        return _word(rng, n, KUBE_ALNUM)

    def service_account(ns: str, sa: str) -> None:
        sa_uid = _uid(rng)
        secret = f"{sa}-token-{suffix(5)}"
        put(f"/registry/serviceaccounts/{ns}/{sa}", {
            "kind": "ServiceAccount", "apiVersion": "v1", "metadata": meta(sa, ns, uid=sa_uid),
            "secrets": [{"name": secret}]})
        token = _jwt(sa_key, kid, ns, sa, secret, sa_uid)
        bait.tokens[token] = f"serviceaccount-token:{ns}/{secret}"
        put(f"/registry/secrets/{ns}/{secret}", {
            "kind": "Secret", "apiVersion": "v1",
            "metadata": meta(secret, ns, annotations={"kubernetes.io/service-account.name": sa,
                                                      "kubernetes.io/service-account.uid": sa_uid}),
            "data": {"ca.crt": ca, "namespace": ns.encode(), "token": token.encode()},
            "type": "kubernetes.io/service-account-token"})

    for ns in NAMESPACES:
        put(f"/registry/namespaces/{ns}", {
            "kind": "Namespace", "apiVersion": "v1",
            "metadata": meta(ns, labels={"kubernetes.io/metadata.name": ns}),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        put(f"/registry/configmaps/{ns}/kube-root-ca.crt", {
            "kind": "ConfigMap", "apiVersion": "v1", "metadata": meta("kube-root-ca.crt", ns),
            "data": {"ca.crt": ca.decode()}})
        accounts = KUBE_SYSTEM_ACCOUNTS if ns == "kube-system" else ["default", *APPS.get(ns, [])]
        for sa in accounts:
            service_account(ns, sa)
    for ns, apps in APPS.items():
        for app in apps:
            pod = f"{app}-{suffix(10)}-{suffix(5)}"
            image = f"registry.internal.example/{ns}/{app}:1.{rng.randint(2, 19)}.{rng.randint(0, 9)}"
            worker = rng.randint(1, 6)
            node, ip = f"worker-{worker}", f"10.244.{worker}.{rng.randint(2, 250)}"  # a /24 per node
            put(f"/registry/pods/{ns}/{pod}", {
                "kind": "Pod", "apiVersion": "v1", "metadata": meta(pod, ns, labels={"app": app}),
                "spec": {"containers": [{"name": app, "image": image, "resources": {},
                                         "terminationMessagePath": "/dev/termination-log",
                                         "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
                         "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                         "serviceAccountName": app, "serviceAccount": app, "nodeName": node,
                         "schedulerName": "default-scheduler", "priority": 0, "enableServiceLinks": True,
                         "preemptionPolicy": "PreemptLowerPriority"},
                "status": {"phase": "Running", "hostIP": f"10.0.1.{10 + worker}", "podIP": ip,  # Go's field order
                           "podIPs": [{"ip": ip}], "startTime": born, "qosClass": "BestEffort"}})

    # Registry credentials and cloud-style keys: the things an intruder will try to reuse.
    reg_user, reg_pass = "ci-deploy", _word(rng, 24)
    bait.tokens[reg_pass] = "registry-password:prod/regcred"
    login = {"username": reg_user, "password": reg_pass,
             "auth": base64.b64encode(f"{reg_user}:{reg_pass}".encode()).decode()}
    dockercfg = json.dumps({"auths": {"registry.internal.example": login}}, separators=(",", ":"))
    put("/registry/secrets/prod/regcred", {"kind": "Secret", "apiVersion": "v1", "metadata": meta("regcred", "prod"),
                                           "data": {".dockerconfigjson": dockercfg.encode()},
                                           "type": "kubernetes.io/dockerconfigjson"})
    key_id = "AKIA" + _word(rng, 16, string.ascii_uppercase + "234567")
    secret_key = _word(rng, 40, string.ascii_letters + string.digits + "+/")
    bait.tokens[key_id] = "cloud-access-key-id:prod/backup-s3"
    bait.tokens[secret_key] = "cloud-secret-key:prod/backup-s3"
    put("/registry/secrets/prod/backup-s3", {"kind": "Secret", "apiVersion": "v1",
                                             "metadata": meta("backup-s3", "prod"),
                                             "data": {"AWS_ACCESS_KEY_ID": key_id.encode(),
                                                      "AWS_SECRET_ACCESS_KEY": secret_key.encode(),
                                                      "BUCKET": b"prod-db-backups"},
                                             "type": "Opaque"})
    db_pass = _word(rng, 20)
    bait.tokens[db_pass] = "database-password:prod/payments-db"
    put("/registry/secrets/prod/payments-db", {"kind": "Secret", "apiVersion": "v1",
                                               "metadata": meta("payments-db", "prod"),
                                               "data": {"username": b"payments", "password": db_pass.encode(),
                                                        "host": b"payments-db.prod.svc.cluster.local"},
                                               "type": "Opaque"})
    put("/registry/configmaps/kube-system/kubeadm-config", {
        "kind": "ConfigMap", "apiVersion": "v1", "metadata": meta("kubeadm-config", "kube-system"),
        "data": {"ClusterConfiguration": "apiServer:\n  certSANs:\n  - kube-master-1\n"
                                         "clusterName: prod-eu-1\nfeatureGates:\n  PublicKeysECDSA: true\n"
                                         "kubernetesVersion: v1.21.14\n"}})
    put("/registry/ranges/serviceips", {"kind": "RangeAllocation", "apiVersion": "v1",
                                        "metadata": {"creationTimestamp": born}, "range": "10.96.0.0/12",
                                        "data": bytes([0x0f, 0xc0]) + bytes(6)})
    objects = [(key, kubeproto.managed(obj, born, owners) if (owners := _owners(key)) else obj)
               for key, obj in objects]
    bait.keys = sorted((key.encode(), kubeproto.encode(obj)) for key, obj in objects)
    bait.v2_keys = sorted((key.encode(), kubeproto.to_json(obj)) for key, obj in objects)
    return bait


def _owners(key: str) -> dict[str, tuple[str, ...] | None] | None:
    """Which field managers wrote an object of the bait (its managedFields); None: written below the API."""
    resource, *path = key.split("/")[2:]
    if resource == "ranges":
        return None
    if resource == "pods":  # the ReplicaSet controller creates them, the kubelet writes their status
        return {"kube-controller-manager": ("metadata", "spec"), "kubelet": ("status",)}
    if resource == "namespaces":
        return {"kube-apiserver" if path[0] in ("default", "kube-system", "kube-public", "kube-node-lease")
                else "kubectl-create": None}
    if key.endswith("/kubeadm-config"):
        return {"kubeadm": None}
    if resource == "secrets" and "-token-" not in path[-1]:
        return {"kubectl-create": None}
    return {"kube-controller-manager": None}  # token secrets, service accounts, kube-root-ca.crt


def load_seed_file(path: Path) -> Bait:
    """A user seed: YAML/JSON `{keys: {key: value}, honeytokens: {value: label}}`."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read seed file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or " ".join(str(exc).split())  # YAML's own text spans lines
        raise UserError(f"cannot read seed file {path}: {where}{what}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys", {}), dict):
        raise UserError(f"seed file {path}: expected a mapping with a 'keys' mapping")
    bait = Bait()
    for key, value in data.get("keys", {}).items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        bait.keys.append((str(key).encode(), text.encode()))
    for value, label in (data.get("honeytokens") or {}).items():
        problem = token_problem(str(value))
        if problem:
            raise UserError(f"seed file {path}: honeytoken {label!r} {problem}")
        bait.tokens[str(value)] = str(label)
    bait.keys.sort()
    return bait

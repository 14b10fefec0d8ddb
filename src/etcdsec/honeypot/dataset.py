"""The bait: a plausible Kubernetes control-plane keyspace with per-deployment honeytokens.

Everything derives from the deployment's secret seed, so the same sensor serves the same data
after a restart, and two sensors never share a token (a reused token names its sensor).
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from etcdsec.errors import UserError

NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease", "prod", "monitoring", "ci"]
APPS = {"prod": ["payments-api", "orders-worker", "web-frontend"], "monitoring": ["prometheus", "grafana"],
        "ci": ["gitlab-runner"], "kube-system": ["coredns", "kube-proxy"]}


@dataclass
class Bait:
    keys: list[tuple[bytes, bytes]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # value -> label (where it was planted)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _uid(rng: random.Random) -> str:
    h = "".join(rng.choice("0123456789abcdef") for _ in range(32))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _word(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _jwt(rng: random.Random, namespace: str, sa: str, secret: str, uid: str) -> str:
    head = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "kid": _word(rng, 43)}).encode())
    claims = {"iss": "kubernetes/serviceaccount", "kubernetes.io/serviceaccount/namespace": namespace,
              "kubernetes.io/serviceaccount/secret.name": secret,
              "kubernetes.io/serviceaccount/service-account.name": sa,
              "kubernetes.io/serviceaccount/service-account.uid": uid,
              "sub": f"system:serviceaccount:{namespace}:{sa}"}
    body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
    sig = _word(rng, 342, string.ascii_letters + string.digits + "-_")
    return f"{head.decode().rstrip('=')}.{body.decode().rstrip('=')}.{sig}"


def kubernetes_bait(seed: str, created: datetime) -> Bait:
    """The default dataset: namespaces, pods, service accounts and secrets under /registry/."""
    rng = random.Random(seed)
    bait = Bait()
    born = (created - timedelta(days=97)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def put(key: str, obj: dict[str, Any]) -> None:
        bait.keys.append((key.encode(), json.dumps(obj, separators=(",", ":")).encode()))

    def meta(name: str, ns: str | None = None) -> dict[str, Any]:
        m: dict[str, Any] = {"name": name, "uid": _uid(rng), "creationTimestamp": born}
        if ns:
            m["namespace"] = ns
        return m

    for ns in NAMESPACES:
        put(f"/registry/namespaces/{ns}", {"kind": "Namespace", "apiVersion": "v1", "metadata": meta(ns),
                                           "spec": {"finalizers": ["kubernetes"]},
                                           "status": {"phase": "Active"}})
    for ns, apps in APPS.items():
        for app in apps:
            pod = f"{app}-{_word(rng, 10, string.ascii_lowercase + string.digits)}-{_word(rng, 5).lower()}"
            image = f"registry.internal.example/{ns}/{app}:1.{rng.randint(2, 19)}.{rng.randint(0, 9)}"
            put(f"/registry/pods/{ns}/{pod}", {
                "kind": "Pod", "apiVersion": "v1", "metadata": {**meta(pod, ns), "labels": {"app": app}},
                "spec": {"containers": [{"name": app, "image": image}],
                         "serviceAccountName": app, "nodeName": f"worker-{rng.randint(1, 6)}"},
                "status": {"phase": "Running", "podIP": f"10.244.{rng.randint(0, 7)}.{rng.randint(2, 250)}"}})
            sa_uid = _uid(rng)
            secret = f"{app}-token-{_word(rng, 5, string.ascii_lowercase + string.digits)}"
            put(f"/registry/serviceaccounts/{ns}/{app}", {
                "kind": "ServiceAccount", "apiVersion": "v1", "metadata": {**meta(app, ns), "uid": sa_uid},
                "secrets": [{"name": secret}]})
            token = _jwt(rng, ns, app, secret, sa_uid)
            bait.tokens[token] = f"serviceaccount-token:{ns}/{secret}"
            put(f"/registry/secrets/{ns}/{secret}", {
                "kind": "Secret", "apiVersion": "v1", "type": "kubernetes.io/service-account-token",
                "metadata": {**meta(secret, ns),
                             "annotations": {"kubernetes.io/service-account.name": app,
                                             "kubernetes.io/service-account.uid": sa_uid}},
                "data": {"ca.crt": _b64(f"-----BEGIN CERTIFICATE-----\n{_word(rng, 64)}\n-----END"),
                         "namespace": _b64(ns), "token": _b64(token)}})

    # Registry credentials and cloud-style keys: the things an intruder will try to reuse.
    reg_user, reg_pass = "ci-deploy", _word(rng, 24)
    bait.tokens[reg_pass] = "registry-password:prod/regcred"
    auth = _b64(f"{reg_user}:{reg_pass}")
    login = {"username": reg_user, "password": reg_pass, "auth": auth}
    dockercfg = json.dumps({"auths": {"registry.internal.example": login}})
    put("/registry/secrets/prod/regcred", {"kind": "Secret", "apiVersion": "v1",
                                           "type": "kubernetes.io/dockerconfigjson",
                                           "metadata": meta("regcred", "prod"),
                                           "data": {".dockerconfigjson": _b64(dockercfg)}})
    key_id = "AKIA" + _word(rng, 16, string.ascii_uppercase + "234567")
    secret_key = _word(rng, 40, string.ascii_letters + string.digits + "+/")
    bait.tokens[key_id] = "cloud-access-key-id:prod/backup-s3"
    bait.tokens[secret_key] = "cloud-secret-key:prod/backup-s3"
    put("/registry/secrets/prod/backup-s3", {"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
                                             "metadata": meta("backup-s3", "prod"),
                                             "data": {"AWS_ACCESS_KEY_ID": _b64(key_id),
                                                      "AWS_SECRET_ACCESS_KEY": _b64(secret_key),
                                                      "BUCKET": _b64("prod-db-backups")}})
    db_pass = _word(rng, 20)
    bait.tokens[db_pass] = "database-password:prod/payments-db"
    put("/registry/secrets/prod/payments-db", {"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
                                               "metadata": meta("payments-db", "prod"),
                                               "data": {"username": _b64("payments"),
                                                        "password": _b64(db_pass),
                                                        "host": _b64("payments-db.prod.svc.cluster.local")}})
    put("/registry/configmaps/kube-system/kubeadm-config", {
        "kind": "ConfigMap", "apiVersion": "v1", "metadata": meta("kubeadm-config", "kube-system"),
        "data": {"ClusterConfiguration": "apiServer:\n  certSANs:\n  - kube-master-1\n"
                                         "clusterName: prod-eu-1\nkubernetesVersion: v1.21.14\n"}})
    put("/registry/ranges/serviceips", {"kind": "RangeAllocation", "apiVersion": "v1",
                                        "range": "10.96.0.0/12"})
    bait.keys.sort()
    return bait


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
        if len(str(value)) < 8:
            raise UserError(f"seed file {path}: honeytoken {label!r} is shorter than 8 characters")
        bait.tokens[str(value)] = str(label)
    bait.keys.sort()
    return bait

"""Namespaces, service accounts with their token Secrets, `kube-root-ca.crt`, the planted Secrets and
kubeadm's ConfigMap: the part of the bait every version had, drawn from `Plant.rng` in the first
version's order, so a sensor keeps the tokens it served before."""

from __future__ import annotations

import base64
import json
import random
import string

from etcdsec.honeypot.core.bait import pki
from etcdsec.honeypot.core.bait.plant import KUBE_VERSION, Plant, word

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


# Namespaces the bait grew later (each drawn from its own stream, so the first ones keep their tokens):
# the ingress controller's and the storage provisioner's, with their service accounts
LATER_NAMESPACES = {"ingress-nginx": ["ingress-nginx"],
                    "local-path-storage": ["local-path-provisioner-service-account"]}


class Accounts:
    """The service-account signing key, and `add` for one account with its token Secret."""

    def __init__(self, plant: Plant) -> None:
        self.plant = plant
        self.key = pki.seed_key(plant.seed, "service-account-key")
        self.kid = pki.key_id(self.key)

    def add(self, ns: str, sa: str, rng: random.Random | None = None) -> str:
        """Put the account and its token Secret; the token (a honeytoken) is returned."""
        plant = self.plant
        sa_uid = plant.uid(rng)
        secret = f"{sa}-token-{plant.suffix(5, rng)}"
        plant.put(f"/registry/serviceaccounts/{ns}/{sa}", {
            "kind": "ServiceAccount", "apiVersion": "v1", "metadata": plant.meta(sa, ns, rng, uid=sa_uid),
            "secrets": [{"name": secret}]})
        token = plant.token(pki.legacy_token(self.key, self.kid, ns, sa, secret, sa_uid),
                            f"serviceaccount-token:{ns}/{secret}")
        plant.put(f"/registry/secrets/{ns}/{secret}", {
            "kind": "Secret", "apiVersion": "v1",
            "metadata": plant.meta(secret, ns, rng, annotations={"kubernetes.io/service-account.name": sa,
                                                                 "kubernetes.io/service-account.uid": sa_uid}),
            "data": {"ca.crt": plant.ca, "namespace": ns.encode(), "token": token.encode()},
            "type": "kubernetes.io/service-account-token"})
        return token


def namespaces(plant: Plant, accounts: Accounts) -> None:
    for ns in NAMESPACES:
        _namespace(plant, ns)
        for sa in KUBE_SYSTEM_ACCOUNTS if ns == "kube-system" else ["default", *APPS.get(ns, [])]:
            accounts.add(ns, sa)


def later_namespaces(plant: Plant, accounts: Accounts) -> None:
    for ns, names in LATER_NAMESPACES.items():
        rng = plant.fork(f"namespace/{ns}")
        _namespace(plant, ns, rng)
        for sa in ["default", *names]:
            accounts.add(ns, sa, rng)


def _namespace(plant: Plant, ns: str, rng: random.Random | None = None) -> None:
    plant.put(f"/registry/namespaces/{ns}", {
        "kind": "Namespace", "apiVersion": "v1",
        "metadata": plant.meta(ns, None, rng, labels={"kubernetes.io/metadata.name": ns}),
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    plant.put(f"/registry/configmaps/{ns}/kube-root-ca.crt", {
        "kind": "ConfigMap", "apiVersion": "v1", "metadata": plant.meta("kube-root-ca.crt", ns, rng),
        "data": {"ca.crt": plant.ca.decode()}})


def planted_secrets(plant: Plant) -> None:
    """Registry credentials, cloud-style keys, a database password: what an intruder will try to reuse."""
    rng = plant.rng
    reg_user, reg_pass = "ci-deploy", plant.token(word(rng, 24), "registry-password:prod/regcred")
    login = {"username": reg_user, "password": reg_pass,
             "auth": base64.b64encode(f"{reg_user}:{reg_pass}".encode()).decode()}
    dockercfg = json.dumps({"auths": {"registry.internal.example": login}}, separators=(",", ":"))
    plant.put("/registry/secrets/prod/regcred", {
        "kind": "Secret", "apiVersion": "v1", "metadata": plant.meta("regcred", "prod"),
        "data": {".dockerconfigjson": dockercfg.encode()}, "type": "kubernetes.io/dockerconfigjson"})
    key_id = plant.token("AKIA" + word(rng, 16, string.ascii_uppercase + "234567"),
                         "cloud-access-key-id:prod/backup-s3")
    secret_key = plant.token(word(rng, 40, string.ascii_letters + string.digits + "+/"),
                             "cloud-secret-key:prod/backup-s3")
    plant.put("/registry/secrets/prod/backup-s3", {
        "kind": "Secret", "apiVersion": "v1", "metadata": plant.meta("backup-s3", "prod"),
        "data": {"AWS_ACCESS_KEY_ID": key_id.encode(), "AWS_SECRET_ACCESS_KEY": secret_key.encode(),
                 "BUCKET": b"prod-db-backups"}, "type": "Opaque"})
    db_pass = plant.token(word(rng, 20), "database-password:prod/payments-db")
    plant.put("/registry/secrets/prod/payments-db", {
        "kind": "Secret", "apiVersion": "v1", "metadata": plant.meta("payments-db", "prod"),
        "data": {"username": b"payments", "password": db_pass.encode(),
                 "host": b"payments-db.prod.svc.cluster.local"}, "type": "Opaque"})
    plant.put("/registry/configmaps/kube-system/kubeadm-config", {
        "kind": "ConfigMap", "apiVersion": "v1", "metadata": plant.meta("kubeadm-config", "kube-system"),
        "data": {"ClusterConfiguration": "apiServer:\n  certSANs:\n  - kube-master-1\n"
                                         "clusterName: prod-eu-1\nfeatureGates:\n  PublicKeysECDSA: true\n"
                                         f"kubernetesVersion: {KUBE_VERSION}\n"}})


def deploy_kubeconfig(plant: Plant, accounts: Accounts) -> None:
    """A CI deploy account bound to cluster-admin (rbac.py) and a kubeconfig carrying its token in a
    ConfigMap: the shortcut a pipeline takes, and the best loot in the dump."""
    rng = plant.fork("deployer")
    token = accounts.add("ci", "deployer", rng)
    ca = base64.b64encode(plant.ca).decode()
    config = (f"apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n"
              f"    server: https://{plant.node(0).ip}:6443\n  name: prod-eu-1\ncontexts:\n- context:\n"
              "    cluster: prod-eu-1\n    namespace: prod\n    user: deployer\n  name: deployer@prod-eu-1\n"
              "current-context: deployer@prod-eu-1\nkind: Config\npreferences: {}\nusers:\n- name: deployer\n"
              f"  user:\n    token: {token}\n")
    plant.put("/registry/configmaps/ci/deploy-kubeconfig", {
        "kind": "ConfigMap", "apiVersion": "v1", "metadata": plant.meta("deploy-kubeconfig", "ci", rng),
        "data": {"config": config}})

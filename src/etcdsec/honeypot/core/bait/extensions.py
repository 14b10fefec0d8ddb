"""What kube-apiserver stores as JSON, not protobuf: APIServices (kube-aggregator's codec, stored as
apiregistration.k8s.io/v1), CustomResourceDefinitions (apiextensions-apiserver's codec, stored as
apiextensions.k8s.io/v1beta1 up to Kubernetes 1.21) and custom resources (unstructured: Go's map
encoding, so sorted keys). Calico's CRDs and objects, and a cert-manager ClusterIssuer whose Route53
access key id is a honeytoken."""

from __future__ import annotations

import random
import string
from typing import Any

from etcdsec.honeypot.core.bait.plant import Plant, word

# (group, version, groupPriorityMinimum, versionPriority): kube-aggregator's table for 1.21
LOCAL_APIS = [("", "v1", 18000, 1), ("apps", "v1", 17800, 15), ("rbac.authorization.k8s.io", "v1", 17000, 15),
              ("storage.k8s.io", "v1", 16800, 15), ("apiextensions.k8s.io", "v1", 16700, 15),
              ("scheduling.k8s.io", "v1", 16600, 15), ("coordination.k8s.io", "v1", 16500, 15),
              ("discovery.k8s.io", "v1", 16200, 15)]
# (group, plural, kind): Calico's CRDs (a few of them) and cert-manager's ClusterIssuer, all cluster-scoped
CRDS = [("crd.projectcalico.org", "clusterinformations", "ClusterInformation"),
        ("crd.projectcalico.org", "felixconfigurations", "FelixConfiguration"),
        ("crd.projectcalico.org", "ippools", "IPPool"),
        ("crd.projectcalico.org", "kubecontrollersconfigurations", "KubeControllersConfiguration"),
        ("cert-manager.io", "clusterissuers", "ClusterIssuer")]
HEX = "0123456789abcdef"


def put_all(plant: Plant) -> None:
    rng = plant.fork("extensions")
    groups = [*LOCAL_APIS, *((g, "v1", 1000, 100) for g in sorted({g for g, _, _ in CRDS}))]
    for group, version, minimum, priority in groups:
        name = f"{version}.{group}"
        automanaged = "onstart" if (group, version, minimum, priority) in LOCAL_APIS else "true"
        plant.put_json(f"/registry/apiregistration.k8s.io/apiservices/{name}", {
            "kind": "APIService", "apiVersion": "apiregistration.k8s.io/v1",
            "metadata": plant.meta(name, None, rng, labels={"kube-aggregator.kubernetes.io/automanaged": automanaged}),
            "spec": {**({"group": group} if group else {}), "version": version, "groupPriorityMinimum": minimum,
                     "versionPriority": priority},
            "status": {"conditions": [{"type": "Available", "status": "True", "lastTransitionTime": plant.born,
                                       "reason": "Local", "message": "Local APIServices are always available"}]}},
            {"kube-apiserver": None})
    for group, plural, kind in CRDS:
        names = {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"}
        conditions = [{"type": "NamesAccepted", "status": "True", "lastTransitionTime": plant.born,
                       "reason": "NoConflicts", "message": "no conflicts found"},
                      {"type": "Established", "status": "True", "lastTransitionTime": plant.born,
                       "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}]
        schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
        plant.put_json(f"/registry/apiextensions.k8s.io/customresourcedefinitions/{plural}.{group}", {
            "kind": "CustomResourceDefinition", "apiVersion": "apiextensions.k8s.io/v1beta1",
            "metadata": plant.meta(f"{plural}.{group}", None, rng, generation=1),
            # one schema for every version: v1beta1 keeps it at the top, as `validation`
            "spec": {"group": group, "version": "v1", "names": names, "scope": "Cluster", "validation": schema,
                     "versions": [{"name": "v1", "served": True, "storage": True}],
                     "conversion": {"strategy": "None"}, "preserveUnknownFields": False},
            "status": {"conditions": conditions, "acceptedNames": names, "storedVersions": ["v1"]}},
            {"kubectl-create": ("metadata", "spec"), "kube-apiserver": ("status",)})
    _calico(plant, rng)
    _cluster_issuer(plant, rng)


def _custom(plant: Plant, rng: random.Random, group: str, plural: str, kind: str, name: str, spec: dict[str, Any],
            manager: str, status: dict[str, Any] | None = None) -> None:
    obj = {"apiVersion": f"{group}/v1", "kind": kind, "metadata": plant.meta(name, None, rng, generation=1),
           "spec": spec, **({"status": status} if status else {})}
    plant.put_json(f"/registry/{group}/{plural}/{name}", obj, {manager: None}, unstructured=True)


def _calico(plant: Plant, rng: random.Random) -> None:
    group = "crd.projectcalico.org"
    _custom(plant, rng, group, "clusterinformations", "ClusterInformation", "default",
            {"calicoVersion": "v3.20.6", "clusterGUID": word(rng, 32, HEX), "clusterType": "k8s,bgp,kubeadm,kdd",
             "datastoreReady": True}, "calico-node")
    _custom(plant, rng, group, "felixconfigurations", "FelixConfiguration", "default",
            {"bpfLogLevel": "", "floatingIPs": "Disabled", "logSeverityScreen": "Info", "reportingInterval": "0s"},
            "calico-node")
    _custom(plant, rng, group, "ippools", "IPPool", "default-ipv4-ippool",
            {"blockSize": 26, "cidr": "10.244.0.0/16", "ipipMode": "Always", "natOutgoing": True,
             "nodeSelector": "all()", "vxlanMode": "Never"}, "calico-node")
    _custom(plant, rng, group, "kubecontrollersconfigurations", "KubeControllersConfiguration", "default",
            {"controllers": {"node": {"leakGracePeriod": "15m0s", "reconcilerPeriod": "5m0s", "syncLabels": "Enabled"},
                             "policy": {"reconcilerPeriod": "5m0s"}}, "etcdV3CompactionPeriod": "10m0s",
             "healthChecks": "Enabled", "logSeverityScreen": "Info"}, "calico-kube-controllers",
            {"environmentVars": {"DATASTORE_TYPE": "kubernetes", "ENABLED_CONTROLLERS": "node"},
             "runningConfig": {"controllers": {"node": {"hostEndpoint": {"autoCreate": "Disabled"},
                                                        "leakGracePeriod": "15m0s", "syncLabels": "Disabled"}},
                               "etcdV3CompactionPeriod": "10m0s", "healthChecks": "Enabled",
                               "logSeverityScreen": "Info"}})


def _cluster_issuer(plant: Plant, rng: random.Random) -> None:
    """cert-manager's Route53 solver takes the access key id inline, the secret key by reference."""
    key_id = plant.token("AKIA" + word(rng, 16, string.ascii_uppercase + "234567"),
                         "cloud-access-key-id:cert-manager.io/clusterissuers/letsencrypt-prod")
    route53 = {"accessKeyID": key_id, "hostedZoneID": "Z" + word(rng, 13, string.ascii_uppercase + string.digits),
               "region": "eu-west-1",
               "secretAccessKeySecretRef": {"key": "secret-access-key", "name": "route53-credentials"}}
    spec = {"acme": {"email": "platform@internal.example", "privateKeySecretRef": {"name": "letsencrypt-prod"},
                     "server": "https://acme-v02.api.letsencrypt.org/directory",
                     "solvers": [{"dns01": {"route53": route53}}]}}
    status = {"acme": {"lastRegisteredEmail": "platform@internal.example",
                       "uri": f"https://acme-v02.api.letsencrypt.org/acme/acct/{rng.randint(10**8, 10**9)}"},
              "conditions": [{"lastTransitionTime": plant.born, "message": "The ACME account was registered with the "
                              "ACME server", "observedGeneration": 1, "reason": "ACMEAccountRegistered",
                              "status": "True", "type": "Ready"}]}
    _custom(plant, rng, "cert-manager.io", "clusterissuers", "ClusterIssuer", "letsencrypt-prod", spec,
            "kubectl-create", status)

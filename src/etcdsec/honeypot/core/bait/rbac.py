"""RBAC (rbac.authorization.k8s.io/v1) and PriorityClasses (scheduling.k8s.io/v1): a few of the
bootstrap roles kube-apiserver reconciles at start, kubeadm's, Calico's, and the CI deployer bound
to cluster-admin (the kind of shortcut an intruder looks for). Roles as data: (name, rules)."""

from __future__ import annotations

from typing import Any

from etcdsec.honeypot.core.bait.plant import Plant

ALL = ["*"]
Rule = tuple[list[str], list[str], list[str]]  # (verbs, apiGroups, resources)
READ = ["get", "list", "watch"]
CLUSTER_ROLES: dict[str, list[Rule]] = {
    "cluster-admin": [(ALL, ALL, ALL)],
    "admin": [(["create", "delete", "get", "list", "patch", "update", "watch"], [""], ["pods", "secrets", "services"])],
    "edit": [(["create", "delete", "get", "list", "patch", "update", "watch"], ["apps"], ["deployments"])],
    "view": [(READ, [""], ["configmaps", "endpoints", "pods", "services"])],
    "system:basic-user": [(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews",
                                                                  "selfsubjectrulesreviews"])],
    "system:node": [(READ, [""], ["nodes", "pods", "services"]), (["get"], [""], ["secrets", "configmaps"])],
    "system:node-proxier": [(["list", "watch"], [""], ["endpoints", "services"]),
                            (["get", "list", "watch"], [""], ["nodes"])],
    "system:kube-controller-manager": [(ALL, ["coordination.k8s.io"], ["leases"]), (READ, [""], ["secrets"])],
    "system:coredns": [(["list", "watch"], [""], ["endpoints", "services", "pods", "namespaces"])],
    "kubeadm:get-nodes": [(["get"], [""], ["nodes"])],
    "calico-node": [(READ, [""], ["pods", "nodes", "namespaces"]), (ALL, ["crd.projectcalico.org"], ALL)],
    "calico-kube-controllers": [(READ, [""], ["nodes"]),
                                (ALL, ["crd.projectcalico.org"], ["ippools", "blockaffinities"])],
}
AGGREGATED = {"admin": "aggregate-to-admin", "edit": "aggregate-to-edit", "view": "aggregate-to-view"}
# (binding name, role, [(subject kind, name, namespace)], manager)
CLUSTER_ROLE_BINDINGS = [
    ("cluster-admin", "cluster-admin", [("Group", "system:masters", "")]),
    ("system:basic-user", "system:basic-user", [("Group", "system:authenticated", "")]),
    ("system:node-proxier", "system:node-proxier", [("User", "system:kube-proxy", "")]),
    ("system:kube-controller-manager", "system:kube-controller-manager",
     [("User", "system:kube-controller-manager", "")]),
    ("kubeadm:get-nodes", "kubeadm:get-nodes", [("Group", "system:bootstrappers:kubeadm:default-node-token", "")]),
    ("kubeadm:node-proxier", "system:node-proxier", [("ServiceAccount", "kube-proxy", "kube-system")]),
    ("system:coredns", "system:coredns", [("ServiceAccount", "coredns", "kube-system")]),
    ("calico-node", "calico-node", [("ServiceAccount", "calico-node", "kube-system")]),
    ("calico-kube-controllers", "calico-kube-controllers",
     [("ServiceAccount", "calico-kube-controllers", "kube-system")]),
    ("ci-deployer", "cluster-admin", [("ServiceAccount", "deployer", "ci")]),
]
ROLES: dict[tuple[str, str], list[Rule]] = {
    ("kube-system", "kube-proxy"): [(["get"], [""], ["configmaps"])],
    ("kube-system", "kubeadm:nodes-kubeadm-config"): [(["get"], [""], ["configmaps"])],
    ("kube-system", "extension-apiserver-authentication-reader"): [(READ, [""], ["configmaps"])],
    ("kube-system", "system::leader-locking-kube-controller-manager"): [(["watch"], [""], ["configmaps"])],
    ("kube-system", "system:controller:bootstrap-signer"): [(READ, [""], ["secrets"])],
    ("kube-system", "system:controller:token-cleaner"): [(["delete", "get", "list", "watch"], [""], ["secrets"])],
    ("kube-public", "kubeadm:bootstrap-signer-clusterinfo"): [(["get"], [""], ["configmaps"])],
    ("prod", "deployer"): [(ALL, ["", "apps"], ["deployments", "services", "configmaps", "secrets"])],
}
ROLE_BINDINGS = [
    ("kube-system", "kube-proxy", "kube-proxy", [("Group", "system:bootstrappers:kubeadm:default-node-token", "")]),
    ("kube-system", "kubeadm:nodes-kubeadm-config", "kubeadm:nodes-kubeadm-config",
     [("Group", "system:nodes", ""), ("Group", "system:bootstrappers:kubeadm:default-node-token", "")]),
    ("kube-system", "system::leader-locking-kube-controller-manager",
     "system::leader-locking-kube-controller-manager", [("ServiceAccount", "kube-controller-manager", "kube-system")]),
    ("kube-system", "system:controller:bootstrap-signer", "system:controller:bootstrap-signer",
     [("ServiceAccount", "bootstrap-signer", "kube-system")]),
    ("kube-public", "kubeadm:bootstrap-signer-clusterinfo", "kubeadm:bootstrap-signer-clusterinfo",
     [("User", "system:anonymous", "")]),
    ("prod", "deployer", "deployer", [("ServiceAccount", "deployer", "ci")]),
]
# grown later (drawn from a stream of their own): what the ingress controller and the storage
# provisioner run with; (name, rules, service account's namespace, its name)
LATER_CLUSTER_ROLES: list[tuple[str, list[Rule], str, str]] = [
    ("ingress-nginx", [(["list", "watch"], [""], ["configmaps", "endpoints", "nodes", "pods", "secrets", "namespaces"]),
                       (READ, [""], ["services"]), (READ, ["networking.k8s.io"], ["ingresses", "ingressclasses"]),
                       (["update"], ["networking.k8s.io"], ["ingresses/status"]),
                       (["create", "patch"], [""], ["events"])], "ingress-nginx", "ingress-nginx"),
    ("local-path-provisioner-role", [(READ, [""], ["nodes", "persistentvolumeclaims", "configmaps"]),
                                     (ALL, [""], ["endpoints", "persistentvolumes", "pods"]),
                                     (["create", "patch"], [""], ["events"]),
                                     (READ, ["storage.k8s.io"], ["storageclasses"])],
     "local-path-storage", "local-path-provisioner-service-account"),
]
PRIORITY_CLASSES = [
    ("system-cluster-critical", 2000000000,
     "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
    ("system-node-critical", 2000001000,
     "Used for system critical pods that must not be moved from their current node."),
]


def later(plant: Plant) -> None:
    """Each role with its binding to its service account (the binding named as the chart names it)."""
    rng = plant.fork("rbac/later")
    for name, rules, ns, account in LATER_CLUSTER_ROLES:
        plant.put(f"/registry/clusterroles/{name}", {
            "kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": plant.meta(name, None, rng), "rules": _rules(rules)})
        binding = name.removesuffix("-role") + ("-bind" if name.endswith("-role") else "")
        plant.put(f"/registry/clusterrolebindings/{binding}", {
            "kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": plant.meta(binding, None, rng), "subjects": _subjects([("ServiceAccount", account, ns)]),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}})


def manager(name: str) -> str:
    """Who wrote it: the apiserver's bootstrap policy, kubeadm, or someone's kubectl."""
    if name.startswith("kubeadm:") or name in ("kube-proxy", "system:coredns"):
        return "kubeadm"
    if name.startswith("system:") or name in ("cluster-admin", "admin", "edit", "view",
                                              "extension-apiserver-authentication-reader"):
        return "kube-apiserver"
    return "kubectl-client-side-apply"


def _meta_more(name: str) -> dict[str, Any]:
    if manager(name) != "kube-apiserver":
        return {}
    return {"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}


def _rules(rules: list[Rule]) -> list[dict[str, Any]]:
    return [{"verbs": verbs, "apiGroups": groups, "resources": resources} for verbs, groups, resources in rules] + (
        [{"verbs": ALL, "nonResourceURLs": ALL}] if rules == [(ALL, ALL, ALL)] else [])


def _subjects(subjects: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    return [{"kind": kind, **({"apiGroup": "rbac.authorization.k8s.io"} if kind != "ServiceAccount" else {}),
             "name": name, **({"namespace": ns} if ns else {})} for kind, name, ns in subjects]


def put_all(plant: Plant) -> None:
    rng = plant.fork("rbac")
    for name, rules in CLUSTER_ROLES.items():
        aggregate = AGGREGATED.get(name)
        plant.put(f"/registry/clusterroles/{name}", {
            "kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": plant.meta(name, None, rng, **_meta_more(name)), "rules": _rules(rules),
            **({"aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {f"rbac.authorization.k8s.io/{aggregate}": "true"}}]}} if aggregate else {})})
    for name, role, subjects in CLUSTER_ROLE_BINDINGS:
        plant.put(f"/registry/clusterrolebindings/{name}", {
            "kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": plant.meta(name, None, rng, **_meta_more(name)), "subjects": _subjects(subjects),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}})
    for (ns, name), rules in ROLES.items():
        plant.put(f"/registry/roles/{ns}/{name}", {
            "kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": plant.meta(name, ns, rng, **_meta_more(name)), "rules": _rules(rules)})
    for ns, name, role, subjects in ROLE_BINDINGS:
        plant.put(f"/registry/rolebindings/{ns}/{name}", {
            "kind": "RoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": plant.meta(name, ns, rng, **_meta_more(name)), "subjects": _subjects(subjects),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}})
    for name, value, description in PRIORITY_CLASSES:
        plant.put(f"/registry/priorityclasses/{name}", {
            "kind": "PriorityClass", "apiVersion": "scheduling.k8s.io/v1", "metadata": plant.meta(name, None, rng),
            "value": value, "description": description, "preemptionPolicy": "PreemptLowerPriority"})

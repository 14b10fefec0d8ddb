"""Which field managers wrote an object of the bait (its managedFields): one place for the rule."""

from __future__ import annotations

from etcdsec.honeypot.core.bait.rbac import manager as rbac_manager

Owners = dict[str, tuple[str, ...] | None]  # manager -> the top-level fields it owns (None: all)
KCM = "kube-controller-manager"
APPLIED = "kubectl-client-side-apply"
BY_RESOURCE: dict[str, Owners] = {
    "pods": {KCM: ("metadata", "spec"), "kubelet": ("status",)},  # the ReplicaSet controller, the kubelet
    "replicasets": {KCM: None}, "endpoints": {KCM: None}, "endpointslices": {KCM: None},
    "priorityclasses": {"kube-apiserver": None}, "csinodes": {"kubelet": None},
    "minions": {"kubeadm": ("metadata",), KCM: ("spec",), "kubelet": ("status",)},
}


def owners(key: str) -> Owners | None:
    """None: written below the API (the allocators' ranges), so no managedFields. Objects whose writer
    differs from their kind's (mirror pods, the apiserver's own endpoints) say so where they are put."""
    resource, *path = key.split("/")[2:]
    name = path[-1]
    if resource == "ranges":
        return None
    if resource in BY_RESOURCE:
        return BY_RESOURCE[resource]
    if resource == "namespaces":
        return {"kube-apiserver" if name in ("default", "kube-system", "kube-public", "kube-node-lease")
                else "kubectl-create": None}
    if resource in ("clusterroles", "clusterrolebindings", "roles", "rolebindings"):
        return {rbac_manager(name): None}
    if resource in ("deployments", "daemonsets", "statefulsets"):
        return {"kubeadm" if name in ("coredns", "kube-proxy") else APPLIED: ("metadata", "spec"), KCM: ("status",)}
    if resource == "services":
        if name == "kubernetes":
            return {"kube-apiserver": None}
        return {"kubeadm" if name == "kube-dns" else APPLIED: None}
    if name == "kubeadm-config":
        return {"kubeadm": None}
    if (resource, name) == ("configmaps", "deploy-kubeconfig") or (resource == "secrets" and "-token-" not in name):
        return {"kubectl-create": None}
    return {KCM: None}  # token secrets, service accounts, kube-root-ca.crt

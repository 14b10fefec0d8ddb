"""Nodes (/registry/minions/, the name the v1.0 apiserver gave them) and their CSINodes, as kubeadm,
the kubelet, kube-controller-manager and calico-node leave them: the control-plane node carries the
master taint and the node lease's owner uid (heartbeat.py renews that lease, and writes each Node's
status report through `report_at`)."""

from __future__ import annotations

import uuid
from typing import Any

from etcdsec.honeypot.core import kubeproto
from etcdsec.honeypot.core.bait.plant import KUBE_VERSION, Plant, node_uid, word

CAPACITY = {"cpu": "4", "ephemeral-storage": "101445540Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
            "memory": "16393012Ki", "pods": "110"}
ALLOCATABLE = {**CAPACITY, "ephemeral-storage": "93492209510", "memory": "16290612Ki"}
PRESSURE = [("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available")]


def put_all(plant: Plant) -> None:
    rng = plant.fork("nodes")
    for node in plant.nodes:
        master = node.index == 0
        labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                  "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux",
                  **({"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "",
                      "node.kubernetes.io/exclude-from-external-load-balancers": ""} if master else {})}
        tunnel = f"10.244.{node.index}.{rng.randint(64, 127)}"
        annotations = {"kubeadm.alpha.kubernetes.io/cri-socket": "/run/containerd/containerd.sock",
                       "node.alpha.kubernetes.io/ttl": "0", "projectcalico.org/IPv4Address": f"{node.ip}/24",
                       "projectcalico.org/IPv4IPIPTunnelAddr": tunnel,
                       "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
        uid = node_uid(plant.seed, node.name, master)
        ready = {"type": "Ready", "status": "True", "lastHeartbeatTime": plant.now, "lastTransitionTime": plant.born,
                 "reason": "KubeletReady", "message": "kubelet is posting ready status. AppArmor enabled"}
        conditions: list[dict[str, Any]] = [
            {"type": "NetworkUnavailable", "status": "False", "lastHeartbeatTime": plant.born,
             "lastTransitionTime": plant.born, "reason": "CalicoIsUp", "message": "Calico is running on this node"},
            *({"type": kind, "status": "False", "lastHeartbeatTime": plant.now, "lastTransitionTime": plant.born,
               "reason": reason, "message": message} for kind, reason, message in PRESSURE), ready]
        plant.put(f"/registry/minions/{node.name}", {
            "kind": "Node", "apiVersion": "v1",
            "metadata": plant.meta(node.name, None, rng, uid=uid, labels=labels, annotations=annotations),
            "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr],
                     **({"taints": [{"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}]}
                        if master else {})},
            "status": {"capacity": CAPACITY, "allocatable": ALLOCATABLE, "conditions": conditions,
                       "addresses": [{"type": "InternalIP", "address": node.ip},
                                     {"type": "Hostname", "address": node.name}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                       "nodeInfo": {"machineID": word(rng, 32, "0123456789abcdef"),
                                    "systemUUID": str(uuid.UUID(int=rng.getrandbits(128))),
                                    "bootID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                                    "kernelVersion": "5.4.0-144-generic", "osImage": "Ubuntu 20.04.6 LTS",
                                    "containerRuntimeVersion": "containerd://1.6.20", "kubeletVersion": KUBE_VERSION,
                                    "kubeProxyVersion": KUBE_VERSION, "operatingSystem": "linux",
                                    "architecture": "amd64"}}})
        # the kubelet registers a CSINode for every node, drivers or not
        plant.put(f"/registry/csinodes/{node.name}", {
            "kind": "CSINode", "apiVersion": "storage.k8s.io/v1",
            "metadata": plant.meta(node.name, None, rng, annotations={
                "storage.alpha.kubernetes.io/migrated-plugins": "kubernetes.io/cinder"},
                ownerReferences=[{"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": uid}]),
            "spec": {}})


# The conditions the kubelet sets, so heartbeats in each status report; NetworkUnavailable is the
# network plugin's (calico-node), written once
KUBELET_CONDITIONS = frozenset({kind for kind, _, _ in PRESSURE} | {"Ready"})


def report_at(node: tuple[str, str, Any], t: float) -> bytes:
    """A stored Node (kubeproto.decode) as its kubelet's status report at wall time `t` leaves it: the
    kubelet's conditions heartbeat at `t` (metav1.Time: whole seconds), as does its managedFields entry."""
    api, kind, message = node
    report = type(message)()
    report.CopyFrom(message)
    for condition in report.status.conditions:
        if condition.type in KUBELET_CONDITIONS:
            condition.lastHeartbeatTime.seconds, condition.lastHeartbeatTime.nanos = int(t), 0
    for entry in report.metadata.managedFields:
        if entry.manager == "kubelet":
            entry.time.seconds, entry.time.nanos = int(t), 0
    return kubeproto.reencode(api, kind, report)

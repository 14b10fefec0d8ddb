"""Services (/registry/services/specs/), their Endpoints (/registry/services/endpoints/) and
EndpointSlices (discovery.k8s.io/v1), built from the pods the workloads put, and the service-IP
allocator's bitmap (/registry/ranges/serviceips) with exactly the cluster IPs in use."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import Any

from etcdsec.honeypot.core.bait.plant import Plant
from etcdsec.honeypot.core.bait.workloads import INGRESS_LABELS

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
APISERVER: dict[str, tuple[str, ...] | None] = {"kube-apiserver": None}


@dataclass(frozen=True)
class ServiceDef:
    ns: str
    name: str
    selector: dict[str, str]
    ports: tuple[tuple[str, int, int, str], ...]  # (name, port, targetPort, protocol)
    offset: int | None = None  # fixed cluster IP offset (kubernetes: .1, kube-dns: .10); None: drawn
    labels: dict[str, str] | None = None
    node_ports: tuple[int, ...] = ()  # type NodePort: one per port


SERVICES = [
    ServiceDef("default", "kubernetes", {}, (("https", 443, 6443, "TCP"),), 0,
               {"component": "apiserver", "provider": "kubernetes"}),
    ServiceDef("kube-system", "kube-dns", {"k8s-app": "kube-dns"},
               (("dns", 53, 53, "UDP"), ("dns-tcp", 53, 53, "TCP"), ("metrics", 9153, 9153, "TCP")), 9,
               {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}),
    ServiceDef("prod", "payments-api", {"app": "payments-api"}, (("http", 80, 8080, "TCP"),)),
    ServiceDef("prod", "web-frontend", {"app": "web-frontend"}, (("http", 80, 8080, "TCP"),)),
    ServiceDef("monitoring", "prometheus", {"app": "prometheus"}, (("web", 9090, 9090, "TCP"),)),
    ServiceDef("monitoring", "grafana", {"app": "grafana"}, (("http", 3000, 3000, "TCP"),)),
    # grown later (drawn after the others): the ingress controller's entry on every node (kubeadm has no load balancer)
    ServiceDef("ingress-nginx", "ingress-nginx-controller", INGRESS_LABELS,
               (("http", 80, 80, "TCP"), ("https", 443, 443, "TCP")), labels=INGRESS_LABELS, node_ports=(30080, 30443)),
]


def put_all(plant: Plant) -> None:
    rng = plant.fork("services")
    offsets = []
    for svc in SERVICES:
        offset = svc.offset if svc.offset is not None else rng.randrange(10, 4000)
        offsets.append(offset)
        ip = str(SERVICE_CIDR.network_address + 1 + offset)
        uid = plant.uid(rng)
        labels = svc.labels or {"app": svc.name}
        plant.put(f"/registry/services/specs/{svc.ns}/{svc.name}", {
            "kind": "Service", "apiVersion": "v1",
            "metadata": plant.meta(svc.name, svc.ns, rng, uid=uid, labels=labels),
            "spec": {"ports": [{"name": n, "protocol": proto, "port": port, "targetPort": target,
                                **({"nodePort": svc.node_ports[i]} if svc.node_ports else {})}
                               for i, (n, port, target, proto) in enumerate(svc.ports)],
                     **({"selector": svc.selector} if svc.selector else {}), "clusterIP": ip, "clusterIPs": [ip],
                     "type": "NodePort" if svc.node_ports else "ClusterIP", "sessionAffinity": "None",
                     **({"externalTrafficPolicy": "Cluster"} if svc.node_ports else {}), "ipFamilies": ["IPv4"],
                     "ipFamilyPolicy": "SingleStack"},
            "status": {"loadBalancer": {}}})
        _endpoints(plant, rng, svc, uid, labels)
    bitmap = sum(1 << o for o in offsets)  # the allocator's big.Int, bit i = offset i, as Bytes() writes it
    plant.put("/registry/ranges/serviceips", {"kind": "RangeAllocation", "apiVersion": "v1",
                                              "metadata": {"creationTimestamp": plant.born},
                                              "range": str(SERVICE_CIDR), "data": bitmap.to_bytes(
                                                  (bitmap.bit_length() + 7) // 8)})


def _endpoints(plant: Plant, rng: random.Random, svc: ServiceDef, uid: str, labels: dict[str, str]) -> None:
    if svc.selector:
        pods = [p for p in plant.pods if p["metadata"]["namespace"] == svc.ns
                and svc.selector.items() <= p["metadata"]["labels"].items()]
        backends = sorted((p["status"]["podIP"], p["spec"]["nodeName"], p["metadata"]["name"], p["metadata"]["uid"])
                          for p in pods)
    else:  # the apiserver's own endpoints: the control-plane node
        backends = [(plant.node(0).ip, "", "", "")]

    def ref(name: str, pod_uid: str) -> dict[str, Any]:
        return {"kind": "Pod", "namespace": svc.ns, "name": name, "uid": pod_uid}

    addresses = [{"ip": ip, **({"nodeName": node, "targetRef": ref(name, pod_uid)} if name else {})}
                 for ip, node, name, pod_uid in backends]
    managed = svc.selector != {}  # by the endpoint controllers; the apiserver writes its own
    ports = [{"name": n, "port": target, "protocol": proto} for n, _, target, proto in svc.ports]
    plant.put(f"/registry/services/endpoints/{svc.ns}/{svc.name}", {
        "kind": "Endpoints", "apiVersion": "v1", "metadata": plant.meta(svc.name, svc.ns, rng, labels=labels),
        "subsets": [{"addresses": addresses, "ports": ports}]}, None if managed else APISERVER)
    slice_name = f"{svc.name}-{plant.suffix(5, rng)}" if managed else svc.name
    by = {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"} if managed else {}
    slice_labels = {**labels, "kubernetes.io/service-name": svc.name, **by}
    owner = [{"apiVersion": "v1", "kind": "Service", "name": svc.name, "uid": uid, "controller": True,
              "blockOwnerDeletion": True}] if managed else []
    plant.put(f"/registry/endpointslices/{svc.ns}/{slice_name}", {
        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
        "metadata": plant.meta(slice_name, svc.ns, rng, **({"generateName": f"{svc.name}-"} if managed else {}),
                               labels=slice_labels, **({"ownerReferences": owner} if owner else {})),
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False},
                       **({"targetRef": ref(name, pod_uid), "nodeName": node} if name else {})}
                      for ip, node, name, pod_uid in backends],
        "ports": [{"name": n, "protocol": proto, "port": target} for n, _, target, proto in svc.ports]},
        None if managed else APISERVER)

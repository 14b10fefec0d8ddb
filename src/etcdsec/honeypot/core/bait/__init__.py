"""The bait: a plausible kubeadm v1.21 cluster's keyspace under /registry/, with per-deployment
honeytokens, stored as kube-apiserver stores it (protobuf for built-in kinds, JSON for CRDs,
APIServices and custom resources).

Everything derives from the deployment's secret seed, so the same sensor serves the same data
after a restart, and two sensors never share a token (a reused token names its sensor). One module
a part: `accounts` (namespaces, service accounts and their tokens, planted Secrets), `workloads`
(Deployments, ReplicaSets, DaemonSets, StatefulSets, pods), `services` (Services, Endpoints,
EndpointSlices), `nodes`, `rbac` (and PriorityClasses), `extensions` (the JSON kinds), `storage`
(StorageClass, PersistentVolumes and their claims), `ingress` (ingress-nginx's IngressClass, Ingresses,
their TLS Secrets, NetworkPolicies), `batch` (the backup CronJob; its Jobs and pods as the clock moves).
"""

from __future__ import annotations

from datetime import datetime

from etcdsec.honeypot.core import kubeproto
from etcdsec.honeypot.core.bait import (
    accounts,
    batch,
    extensions,
    ingress,
    nodes,
    pki,
    rbac,
    services,
    storage,
    workloads,
)
from etcdsec.honeypot.core.bait.owners import owners
from etcdsec.honeypot.core.bait.plant import (
    CLUSTER_AGE,
    CONTROL_PLANE_UP_S,
    KUBE_ALNUM,
    Bait,
    Plant,
    node_uid,
    uid_of,
)
from etcdsec.honeypot.core.bait.seedfile import load_seed_file

__all__ = ["CLUSTER_AGE", "CONTROL_PLANE_UP_S", "KUBE_ALNUM", "Bait", "kubernetes_bait", "load_seed_file", "node_uid",
           "uid_of"]


def kubernetes_bait(seed: str, created: datetime, master: str = "kube-master-1") -> Bait:
    """The default dataset; `master` is the control-plane node (the member's name, as the node
    lease heartbeat.py renews). Every token and credential in it is a honeytoken."""
    plant = Plant(seed, created, master)
    plant.ca = pki.ca_pem(seed, created - CLUSTER_AGE)
    accs = accounts.Accounts(plant)
    accounts.namespaces(plant, accs)  # the parts drawing from plant.rng first, in the first bait's order
    draws = workloads.first_replica_draws(plant)
    accounts.planted_secrets(plant)
    accounts.deploy_kubeconfig(plant, accs)
    workloads.put_all(plant, draws)
    workloads.static_pods(plant)
    services.put_all(plant)
    nodes.put_all(plant)
    rbac.put_all(plant)
    extensions.put_all(plant)
    # grown later, each part from its own stream: the tokens above stay those a sensor served before
    accounts.later_namespaces(plant, accs)
    rbac.later(plant)
    storage.put_all(plant)
    ingress.put_all(plant)
    batch.put_all(plant)
    return _stored(plant)


def _stored(plant: Plant) -> Bait:
    """The objects as etcd values: protobuf with managedFields (v3), the same objects as JSON (v2,
    as the etcd2-era apiserver stored them); JSON kinds are JSON on both."""
    encoded = []
    for key, obj in plant.objects:
        writers = plant.writers.get(key) or owners(key)
        encoded.append((key, kubeproto.managed(obj, plant.born, writers) if writers else obj))
    raw = [(key.encode(), value) for key, value in plant.json_objects]
    return Bait(keys=sorted([(key.encode(), kubeproto.encode(obj)) for key, obj in encoded] + raw),
                tokens=plant.tokens,
                v2_keys=sorted([(key.encode(), kubeproto.to_json(obj)) for key, obj in encoded] + raw))

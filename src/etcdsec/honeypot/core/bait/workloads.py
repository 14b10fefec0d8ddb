"""The workloads: Deployments with their ReplicaSets (and a few scaled-down old ones), DaemonSets
(kube-proxy, calico-node on every node), a StatefulSet (prometheus), their pods, and the control
plane's static (mirror) pods. Workloads are data (`WORKLOADS`); `put_all` turns them into objects
the way the controllers write them (owner references, pod-template-hash, generations, status)."""

from __future__ import annotations

import dataclasses
import random
import string
from dataclasses import dataclass, field
from typing import Any

from etcdsec.honeypot.core.bait.plant import KUBE_VERSION, NodeInfo, Plant, node_uid, pod_ip, word

CRITICAL = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
NODE_NAME = {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}
POD_NAMESPACE = {"name": "POD_NAMESPACE",
                 "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}
INGRESS_LABELS = {"app.kubernetes.io/component": "controller", "app.kubernetes.io/instance": "ingress-nginx",
                  "app.kubernetes.io/name": "ingress-nginx"}
EVERYWHERE = [{"operator": "Exists"}]  # kube-proxy and calico-node tolerate every taint


@dataclass(frozen=True)
class Disk:
    """A persistent volume the workload mounts: its claim (storage.py binds it) is the StatefulSet's
    `<name>-<pod>` from its claim template, or a Deployment's own, named after it."""
    name: str
    path: str
    size: str


@dataclass(frozen=True)
class Workload:
    ns: str
    name: str
    kind: str  # Deployment | DaemonSet | StatefulSet
    image: str  # "{draw}": the first bait's drawn version
    labels: dict[str, str]
    replicas: int = 1
    ports: tuple[tuple[str, int, str], ...] = ()  # (name, containerPort, protocol)
    env: tuple[dict[str, Any], ...] = ()
    args: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    priority_class: str = ""
    host_network: bool = False
    tolerations: tuple[dict[str, Any], ...] = ()
    secrets: dict[str, str] = field(default_factory=dict)  # env var -> token label: honeytokens in plain env
    account: str = ""  # its service account, if not of its own name
    disk: Disk | None = None


def _secret_ref(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


REGISTRY = "registry.internal.example"
WORKLOADS = [
    Workload("prod", "payments-api", "Deployment", REGISTRY + "/prod/payments-api:{draw}", {"app": "payments-api"},
             2, (("http", 8080, "TCP"),),
             ({"name": "DB_HOST", "value": "payments-db.prod.svc.cluster.local"},
              _secret_ref("DB_USER", "payments-db", "username"), _secret_ref("DB_PASSWORD", "payments-db", "password")),
             secrets={"STRIPE_API_KEY": "api-key:prod/payments-api"}),
    Workload("prod", "orders-worker", "Deployment", REGISTRY + "/prod/orders-worker:{draw}", {"app": "orders-worker"},
             2, secrets={"DATABASE_URL": "database-password:prod/orders-worker"}),
    Workload("prod", "web-frontend", "Deployment", REGISTRY + "/prod/web-frontend:{draw}", {"app": "web-frontend"},
             3, (("http", 8080, "TCP"),)),
    Workload("monitoring", "prometheus", "StatefulSet", "quay.io/prometheus/prometheus:v2.30.3",
             {"app": "prometheus"}, 1, (("web", 9090, "TCP"),),
             args=("--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.retention.time=15d"),
             disk=Disk("prometheus-data", "/prometheus", "50Gi")),
    Workload("monitoring", "grafana", "Deployment", "docker.io/grafana/grafana:8.2.3", {"app": "grafana"}, 1,
             (("http", 3000, "TCP"),), ({"name": "GF_SECURITY_ADMIN_USER", "value": "admin"},),
             secrets={"GF_SECURITY_ADMIN_PASSWORD": "grafana-admin-password:monitoring/grafana"},
             disk=Disk("storage", "/var/lib/grafana", "10Gi")),
    Workload("ci", "gitlab-runner", "Deployment", "docker.io/gitlab/gitlab-runner:v14.4.0", {"app": "gitlab-runner"},
             1, env=({"name": "CI_SERVER_URL", "value": "https://gitlab.internal.example/"},),
             secrets={"RUNNER_TOKEN": "gitlab-runner-token:ci/gitlab-runner"}),
    Workload("kube-system", "coredns", "Deployment", "k8s.gcr.io/coredns/coredns:v1.8.0", {"k8s-app": "kube-dns"},
             2, (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")),
             args=("-conf", "/etc/coredns/Corefile"), priority_class="system-cluster-critical",
             tolerations=({"key": "CriticalAddonsOnly", "operator": "Exists"},
                          {"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"})),
    Workload("kube-system", "kube-proxy", "DaemonSet", f"k8s.gcr.io/kube-proxy:{KUBE_VERSION}",
             {"k8s-app": "kube-proxy"},
             env=(NODE_NAME,), priority_class="system-node-critical", host_network=True, tolerations=tuple(EVERYWHERE),
             command=("/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                      "--hostname-override=$(NODE_NAME)")),
    Workload("kube-system", "calico-node", "DaemonSet", "docker.io/calico/node:v3.20.6", {"k8s-app": "calico-node"},
             env=({"name": "DATASTORE_TYPE", "value": "kubernetes"}, {"name": "CLUSTER_TYPE", "value": "k8s,bgp"},
                  {"name": "CALICO_IPV4POOL_CIDR", "value": "10.244.0.0/16"}, {**NODE_NAME, "name": "NODENAME"}),
             priority_class="system-node-critical", host_network=True, tolerations=tuple(EVERYWHERE)),
    Workload("kube-system", "calico-kube-controllers", "Deployment", "docker.io/calico/kube-controllers:v3.20.6",
             {"k8s-app": "calico-kube-controllers"}, env=({"name": "DATASTORE_TYPE", "value": "kubernetes"},),
             priority_class="system-cluster-critical",
             tolerations=({"key": "CriticalAddonsOnly", "operator": "Exists"},
                          {"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"})),
    # grown later: ingress-nginx's controller (its Service, IngressClass and Ingresses: ingress.py) and
    # the local-path provisioner behind the default StorageClass (storage.py)
    Workload("ingress-nginx", "ingress-nginx-controller", "Deployment",
             "k8s.gcr.io/ingress-nginx/controller:v1.1.1", INGRESS_LABELS, 2,
             (("http", 80, "TCP"), ("https", 443, "TCP"), ("webhook", 8443, "TCP")),
             ({"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
              POD_NAMESPACE, {"name": "LD_PRELOAD", "value": "/usr/local/lib/libmimalloc.so"}),
             ("/nginx-ingress-controller", "--election-id=ingress-controller-leader",
              "--controller-class=k8s.io/ingress-nginx", "--configmap=$(POD_NAMESPACE)/ingress-nginx-controller",
              "--validating-webhook=:8443", "--validating-webhook-certificate=/usr/local/certificates/cert",
              "--validating-webhook-key=/usr/local/certificates/key"), account="ingress-nginx"),
    Workload("local-path-storage", "local-path-provisioner", "Deployment",
             "docker.io/rancher/local-path-provisioner:v0.0.21", {"app": "local-path-provisioner"},
             env=(POD_NAMESPACE,),
             command=("local-path-provisioner", "--debug", "start", "--config", "/etc/config/config.json"),
             account="local-path-provisioner-service-account"),
]
FIRST_BAIT_APPS = [("prod", "payments-api"), ("prod", "orders-worker"), ("prod", "web-frontend"),
                   ("monitoring", "prometheus"), ("monitoring", "grafana"), ("ci", "gitlab-runner"),
                   ("kube-system", "coredns"), ("kube-system", "kube-proxy")]


@dataclass(frozen=True)
class Draw:
    """What the first bait drew from `Plant.rng` for an app's one pod, in its order."""
    hash10: str
    suffix5: str
    version: str
    worker: int
    ip_last: int
    uid: str


def first_replica_draws(plant: Plant) -> dict[tuple[str, str], Draw]:
    out = {}
    for app in FIRST_BAIT_APPS:
        hash10, suffix5 = plant.suffix(10), plant.suffix(5)
        version = f"1.{plant.rng.randint(2, 19)}.{plant.rng.randint(0, 9)}"
        worker, ip_last = plant.rng.randint(1, 6), plant.rng.randint(2, 250)
        out[app] = Draw(hash10, suffix5, version, worker, ip_last, plant.uid())
    return out


def _template(plant: Plant, w: Workload, rng: random.Random, labels: dict[str, str]) -> dict[str, Any]:
    env = [*w.env, *({"name": name, "value": _credential(plant, rng, name, label)}
                     for name, label in w.secrets.items())]
    container: dict[str, Any] = {"name": w.name, "image": w.image,
                                 **({"command": list(w.command)} if w.command else {}),
                                 **({"args": list(w.args)} if w.args else {}),
                                 **({"ports": [{"name": n, "containerPort": p, "protocol": proto}
                                               for n, p, proto in w.ports]} if w.ports else {}),
                                 **({"env": env} if env else {}), "resources": {},
                                 **({"volumeMounts": [{"name": w.disk.name, "mountPath": w.disk.path}]}
                                    if w.disk else {}),
                                 "terminationMessagePath": "/dev/termination-log",
                                 "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}
    account = w.account or w.name  # the service accounts: accounts.py
    # a Deployment's claim is in its template; a StatefulSet's pods get theirs from the claim template
    volumes = [claim_volume(w.disk.name, w.name)] if w.disk and w.kind == "Deployment" else []
    spec: dict[str, Any] = {**({"volumes": volumes} if volumes else {}), "containers": [container],
                            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                            "dnsPolicy": "ClusterFirst", "serviceAccountName": account, "serviceAccount": account,
                            **({"hostNetwork": True} if w.host_network else {}), "securityContext": {},
                            "schedulerName": "default-scheduler",
                            **({"tolerations": list(w.tolerations)} if w.tolerations else {}),
                            **({"priorityClassName": w.priority_class} if w.priority_class else {})}
    return {"metadata": {"labels": labels}, "spec": spec}


def claim_volume(name: str, claim: str) -> dict[str, Any]:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim}}


def claims() -> list[tuple[Workload, str, str]]:
    """(workload, claim name, the name its pod starts with) of every disk: what storage.py binds."""
    return [(w, f"{w.disk.name}-{w.name}-0" if w.kind == "StatefulSet" else w.name,
             f"{w.name}-0" if w.kind == "StatefulSet" else f"{w.name}-") for w in WORKLOADS if w.disk]


def _credential(plant: Plant, rng: random.Random, name: str, label: str) -> str:
    """A honeytoken in the shape the variable's reader expects (a DSN carries it as its password)."""
    if name == "DATABASE_URL":
        password = plant.token(word(rng, 22), label)
        return f"postgres://orders:{password}@orders-db.prod.svc.cluster.local:5432/orders?sslmode=require"
    if name == "STRIPE_API_KEY":
        return plant.token("sk_live_" + word(rng, 24), label)
    if name == "RUNNER_TOKEN":
        return plant.token("GR1348941" + word(rng, 20, string.ascii_letters + string.digits + "_-"), label)
    return plant.token(word(rng, 18), label)


def _owner(kind: str, name: str, uid: str, api: str = "apps/v1") -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "name": name, "uid": uid, "controller": True, "blockOwnerDeletion": True}


def pod(plant: Plant, rng: random.Random, ns: str, name: str, template: dict[str, Any], node: NodeInfo, ip: str,
        owner: dict[str, Any], *, uid: str | None = None, generate: str = "", annotations: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None, writers: dict[str, tuple[str, ...] | None] | None = None) -> None:
    spec = template["spec"]
    priority = CRITICAL.get(spec.get("priorityClassName", ""), 0)
    meta = plant.meta(name, ns, rng, **({"generateName": generate} if generate else {}),
                      labels=template["metadata"]["labels"], **({"annotations": annotations} if annotations else {}),
                      ownerReferences=[owner])
    if uid:
        meta["uid"] = uid
    plant.put(f"/registry/pods/{ns}/{name}", {
        "kind": "Pod", "apiVersion": "v1", "metadata": meta,
        "spec": {**spec, **(extra or {}), "nodeName": node.name, "priority": priority, "enableServiceLinks": True,
                 "preemptionPolicy": "PreemptLowerPriority"},
        "status": {"phase": "Running", "hostIP": node.ip, "podIP": ip, "podIPs": [{"ip": ip}],  # Go's field order
                   "startTime": plant.born, "qosClass": "BestEffort"}}, writers)


def put_all(plant: Plant, draws: dict[tuple[str, str], Draw]) -> None:
    for w in WORKLOADS:
        rng = plant.fork(f"workloads/{w.ns}/{w.name}")  # one stream each: a change to one moves no other
        draw = draws.get((w.ns, w.name))
        if draw and "{draw}" in w.image:
            w = dataclasses.replace(w, image=w.image.format(draw=draw.version))
        {"Deployment": _deployment, "DaemonSet": _daemonset, "StatefulSet": _statefulset}[w.kind](plant, rng, w, draw)


def _pod_ip(plant: Plant, rng: random.Random, w: Workload, node: NodeInfo, last: int | None = None) -> str:
    return node.ip if w.host_network else pod_ip(node.index, last or rng.randint(2, 250))


def _deployment(plant: Plant, rng: random.Random, w: Workload, draw: Draw | None) -> None:
    uid, revision = plant.uid(rng), rng.randint(1, 4)
    meta = plant.meta(w.name, w.ns, rng, uid=uid, generation=revision, labels=dict(w.labels),
                      annotations={"deployment.kubernetes.io/revision": str(revision)})
    template = _template(plant, w, rng, dict(w.labels))
    current = draw.hash10 if draw else plant.suffix(10, rng)
    rs_name = f"{w.name}-{current}"
    available = {"type": "Available", "status": "True", "lastUpdateTime": plant.born, "lastTransitionTime": plant.born,
                 "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."}
    progressing = {"type": "Progressing", "status": "True", "lastUpdateTime": plant.born,
                   "lastTransitionTime": plant.born, "reason": "NewReplicaSetAvailable",
                   "message": f'ReplicaSet "{rs_name}" has successfully progressed.'}
    plant.put(f"/registry/deployments/{w.ns}/{w.name}", {
        "kind": "Deployment", "apiVersion": "apps/v1", "metadata": meta,
        "spec": {"replicas": w.replicas, "selector": {"matchLabels": dict(w.labels)}, "template": template,
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                 "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
        "status": {"observedGeneration": revision, "replicas": w.replicas, "updatedReplicas": w.replicas,
                   "readyReplicas": w.replicas, "availableReplicas": w.replicas,
                   "conditions": [available, progressing]}})
    owner = _owner("Deployment", w.name, uid)
    for n, (hash10, replicas) in enumerate([(current, w.replicas),
                                            *((plant.suffix(10, rng), 0) for _ in range(min(revision - 1, 2)))]):
        labels = {**w.labels, "pod-template-hash": hash10}
        rs_uid = plant.uid(rng)
        plant.put(f"/registry/replicasets/{w.ns}/{w.name}-{hash10}", {
            "kind": "ReplicaSet", "apiVersion": "apps/v1",
            "metadata": plant.meta(f"{w.name}-{hash10}", w.ns, rng, uid=rs_uid, generation=1 if replicas else 2,
                                   labels=labels,
                                   annotations={"deployment.kubernetes.io/desired-replicas": str(w.replicas),
                                                "deployment.kubernetes.io/max-replicas": str(w.replicas + 1),
                                                "deployment.kubernetes.io/revision": str(revision - n)},
                                   ownerReferences=[owner]),
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": template["spec"]}},
            "status": {"replicas": replicas, "fullyLabeledReplicas": replicas,
                       "observedGeneration": 1 if replicas else 2,
                       "readyReplicas": replicas, "availableReplicas": replicas}})
        for i in range(replicas):
            first = draw if i == 0 else None
            node = plant.node(first.worker if first else rng.randint(1, len(plant.nodes) - 1))
            name = f"{w.name}-{hash10}-{first.suffix5 if first else plant.suffix(5, rng)}"
            pod(plant, rng, w.ns, name, {"metadata": {"labels": labels}, "spec": template["spec"]}, node,
                _pod_ip(plant, rng, w, node, first.ip_last if first else None),
                _owner("ReplicaSet", f"{w.name}-{hash10}", rs_uid), uid=first.uid if first else None,
                generate=f"{w.name}-{hash10}-")


def _revision(plant: Plant, rng: random.Random, w: Workload, owner: dict[str, Any], name: str,
              labels: dict[str, str], template: dict[str, Any]) -> None:
    """The ControllerRevision a DaemonSet or StatefulSet controller keeps: its template as a patch."""
    patch_template = {"$patch": "replace", "metadata": {"creationTimestamp": None, **template["metadata"]},
                      "spec": template["spec"]}
    plant.put(f"/registry/controllerrevisions/{w.ns}/{name}", {
        "kind": "ControllerRevision", "apiVersion": "apps/v1",
        "metadata": plant.meta(name, w.ns, rng, labels=labels, ownerReferences=[owner]),
        "data": {"spec": {"template": patch_template}}, "revision": 1})


def _daemonset(plant: Plant, rng: random.Random, w: Workload, draw: Draw | None) -> None:
    uid, revision_hash, count = plant.uid(rng), plant.suffix(10, rng), len(plant.nodes)
    template = _template(plant, w, rng, dict(w.labels))
    plant.put(f"/registry/daemonsets/{w.ns}/{w.name}", {
        "kind": "DaemonSet", "apiVersion": "apps/v1",
        "metadata": plant.meta(w.name, w.ns, rng, uid=uid, generation=1, labels=dict(w.labels),
                               annotations={"deprecated.daemonset.template.generation": "1"}),
        "spec": {"selector": {"matchLabels": dict(w.labels)}, "template": template,
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                 "revisionHistoryLimit": 10},
        "status": {"currentNumberScheduled": count, "numberMisscheduled": 0, "desiredNumberScheduled": count,
                   "numberReady": count, "observedGeneration": 1, "updatedNumberScheduled": count,
                   "numberAvailable": count}})
    labels = {**w.labels, "controller-revision-hash": revision_hash, "pod-template-generation": "1"}
    _revision(plant, rng, w, _owner("DaemonSet", w.name, uid), f"{w.name}-{revision_hash}",
              {**w.labels, "controller-revision-hash": revision_hash}, template)
    for node in plant.nodes:
        first = draw if draw and node.index == draw.worker else None
        name = f"{w.name}-{first.suffix5 if first else plant.suffix(5, rng)}"
        pod(plant, rng, w.ns, name, {"metadata": {"labels": labels}, "spec": template["spec"]}, node,
            node.ip, _owner("DaemonSet", w.name, uid), uid=first.uid if first else None, generate=f"{w.name}-")


def _statefulset(plant: Plant, rng: random.Random, w: Workload, draw: Draw | None) -> None:
    uid, revision = plant.uid(rng), f"{w.name}-{draw.hash10 if draw else plant.suffix(10, rng)}"
    template = _template(plant, w, rng, dict(w.labels))
    plant.put(f"/registry/statefulsets/{w.ns}/{w.name}", {
        "kind": "StatefulSet", "apiVersion": "apps/v1",
        "metadata": plant.meta(w.name, w.ns, rng, uid=uid, generation=1, labels=dict(w.labels)),
        "spec": {"replicas": w.replicas, "selector": {"matchLabels": dict(w.labels)}, "template": template,
                 **({"volumeClaimTemplates": [_claim_template(w.disk)]} if w.disk else {}),
                 "serviceName": w.name, "podManagementPolicy": "OrderedReady",
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                 "revisionHistoryLimit": 10},
        "status": {"observedGeneration": 1, "replicas": w.replicas, "readyReplicas": w.replicas,
                   "currentReplicas": w.replicas, "updatedReplicas": w.replicas, "currentRevision": revision,
                   "updateRevision": revision, "collisionCount": 0}})
    _revision(plant, rng, w, _owner("StatefulSet", w.name, uid), revision,
              {**w.labels, "controller.kubernetes.io/hash": revision.rsplit("-", 1)[1]}, template)
    for i in range(w.replicas):
        first = draw if i == 0 else None
        node = plant.node(first.worker if first else rng.randint(1, len(plant.nodes) - 1))
        name = f"{w.name}-{i}"
        labels = {**w.labels, "controller-revision-hash": revision, "statefulset.kubernetes.io/pod-name": name}
        spec = {**({"volumes": [claim_volume(w.disk.name, f"{w.disk.name}-{name}")]} if w.disk else {}),
                **template["spec"]}
        pod(plant, rng, w.ns, name, {"metadata": {"labels": labels}, "spec": spec}, node,
            _pod_ip(plant, rng, w, node, first.ip_last if first else None), _owner("StatefulSet", w.name, uid),
            uid=first.uid if first else None, generate=f"{w.name}-", extra={"hostname": name, "subdomain": w.name})


def _claim_template(disk: Disk) -> dict[str, Any]:
    """As the apiserver stores a StatefulSet's claim template: defaulted, status Pending."""
    return {"metadata": {"name": disk.name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": disk.size}},
                     "volumeMode": "Filesystem"},
            "status": {"phase": "Pending"}}


def static_pods(plant: Plant) -> None:
    """The control plane's mirror pods, as the kubelet writes them for kubeadm's manifests."""
    rng = plant.fork("static-pods")
    master = plant.node(0)
    etcd_url = "http://127.0.0.1:2379"
    commands = {
        "etcd": ["etcd", f"--advertise-client-urls=http://{master.ip}:2379", "--data-dir=/var/lib/etcd",
                 "--listen-client-urls=http://0.0.0.0:2379", f"--listen-peer-urls=http://{master.ip}:2380",
                 f"--name={master.name}", "--snapshot-count=10000"],
        "kube-apiserver": ["kube-apiserver", f"--advertise-address={master.ip}", "--allow-privileged=true",
                           "--authorization-mode=Node,RBAC", "--client-ca-file=/etc/kubernetes/pki/ca.crt",
                           "--enable-admission-plugins=NodeRestriction", f"--etcd-servers={etcd_url}",
                           "--secure-port=6443", "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                           "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
                           "--service-cluster-ip-range=10.96.0.0/12"],
        "kube-controller-manager": ["kube-controller-manager", "--allocate-node-cidrs=true",
                                    "--cluster-cidr=10.244.0.0/16", "--leader-elect=true",
                                    "--service-account-private-key-file=/etc/kubernetes/pki/sa.key",
                                    "--use-service-account-credentials=true"],
        "kube-scheduler": ["kube-scheduler", "--kubeconfig=/etc/kubernetes/scheduler.conf", "--leader-elect=true"],
    }
    owner = _owner("Node", master.name, node_uid(plant.seed, master.name, True), api="v1")
    for component, command in commands.items():
        config_hash = word(rng, 32, "0123456789abcdef")
        image = "k8s.gcr.io/etcd:3.4.13-0" if component == "etcd" else f"k8s.gcr.io/{component}:{KUBE_VERSION}"
        container = {"name": component, "image": image, "command": command, "resources": {},
                     "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                     "imagePullPolicy": "IfNotPresent"}
        spec = {"containers": [container], "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst", "hostNetwork": True, "securityContext": {},
                "schedulerName": "default-scheduler", "tolerations": [{"operator": "Exists", "effect": "NoExecute"}],
                "priorityClassName": "system-node-critical"}
        annotations = {"kubernetes.io/config.hash": config_hash, "kubernetes.io/config.mirror": config_hash,
                       "kubernetes.io/config.seen": plant.born.replace("Z", ".000000000Z"),
                       "kubernetes.io/config.source": "file"}
        pod(plant, rng, "kube-system", f"{component}-{master.name}",
            {"metadata": {"labels": {"component": component, "tier": "control-plane"}}, "spec": spec}, master,
            master.ip, owner, annotations=annotations, writers={"kubelet": None})

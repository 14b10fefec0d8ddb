"""The rest of a kubeadm cluster's keyspace in the bait, as an attacker dumps it with real etcdctl 3.5:
workloads, Services, Endpoints, EndpointSlices, Nodes, RBAC, PriorityClasses and CSINodes in
kube-apiserver's protobuf envelope (decoded here by the field numbers of k8s.io/api's generated.proto,
written out independently of the honeypot's .proto), APIServices, CRDs and custom resources as JSON,
and every credential in them a honeytoken that raises `honeytoken.used` when it comes back."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import yaml

from etcdsec.honeypot.core.bait import kubernetes_bait
from tests.support import k8swire
from tests.support.harness import BackgroundSensor
from tests.support.kube_sensor import ctl, dump, grown_sensor

W = k8swire
# Field numbers (k8s.io/api generated.proto): every top-level object has metadata=1, and spec=2 / status=3
# where it has them. ObjectMeta ownerReferences=13 {kind=1, name=3, uid=4}; labels=11 {key=1, value=2}.
META_OWNERS, META_LABELS = 13, 11
# the resources a kubeadm v1.21 cluster with Calico and cert-manager has (a real one has more kinds)
EXPECTED_RESOURCES = {
    "namespaces", "secrets", "serviceaccounts", "configmaps", "pods", "events", "services/specs",
    "services/endpoints", "minions", "ranges", "masterleases", "leases", "deployments", "replicasets", "daemonsets",
    "statefulsets", "controllerrevisions", "endpointslices", "clusterroles", "clusterrolebindings", "roles",
    "rolebindings",
    "priorityclasses", "csinodes", "apiregistration.k8s.io/apiservices",
    "apiextensions.k8s.io/customresourcedefinitions", "crd.projectcalico.org/clusterinformations",
    "crd.projectcalico.org/felixconfigurations", "crd.projectcalico.org/ippools",
    "crd.projectcalico.org/kubecontrollersconfigurations", "cert-manager.io/clusterissuers",
    "persistentvolumes", "persistentvolumeclaims", "storageclasses", "ingress", "ingressclasses", "networkpolicies",
    "jobs", "cronjobs",
}
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$")  # DNS-1123 names (RBAC names may hold ':')


@pytest.fixture(scope="module")
def hp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundSensor]:
    with grown_sensor(tmp_path_factory.mktemp("kube-bait-more"), "/registry/masterleases/") as sensor:
        yield sensor


@pytest.fixture(scope="module")
def kvs(hp: BackgroundSensor) -> dict[str, bytes]:
    return dump(hp, "/registry/")[1]


def owners(raw: bytes) -> list[tuple[str, str, str]]:
    return [(W.text(ref, 1), W.text(ref, 3), W.text(ref, 4)) for ref in W.messages(W.metadata(raw), META_OWNERS)]


def is_proto(key: str) -> bool:
    resource = W.split_key(key)[0]
    return resource in W.LAYOUT and W.LAYOUT[resource][3] == "proto"


def uid(raw: bytes) -> str:
    return W.text(W.metadata(raw), W.META_UID)


def test_etcdctl_lists_kube_apiservers_key_layout(hp: BackgroundSensor) -> None:
    code, out = ctl(hp.addr, "get", "--prefix", "/registry", "--keys-only")
    assert code == 0, out
    keys = [line for line in out.decode().splitlines() if line]
    assert keys == sorted(keys) and len(keys) == len(set(keys)) and 250 < len(keys) < 2000
    resources = set()
    for key in keys:
        resource, namespace, name = W.split_key(key)
        resources.add(resource)
        namespaced = W.LAYOUT[resource][2] if resource in W.LAYOUT else False  # custom resources: cluster-scoped
        assert bool(namespace) == namespaced, key
        assert key.count("/") == (4 if namespaced else 3) + resource.count("/"), key
        assert NAME.match(name) or resource == "masterleases" or name == "v1.", key  # v1.: the core group's
    assert resources == EXPECTED_RESOURCES
    assert "/registry/services/specs/default/kubernetes" in keys and "/registry/minions/kube-master-1" in keys
    assert "/registry/services/endpoints/kube-system/kube-dns" in keys


def test_every_object_decodes_as_kube_apiserver_stored_it(kvs: dict[str, bytes]) -> None:
    groups = {W.split_key(k)[2].split(".", 1)[1] for k in kvs if "/customresourcedefinitions/" in k}
    for key, value in kvs.items():
        resource, _, name = W.split_key(key)
        if is_proto(key):
            api, kind, _, _ = W.envelope(value)
            assert (api, kind) == W.LAYOUT[resource][:2], key
            continue
        assert value.endswith(b"}\n"), key  # json.Encoder's newline, as the apiserver's serializer writes
        obj = json.loads(value)
        assert obj["metadata"]["name"] == name and "namespace" not in obj["metadata"], key
        assert re.fullmatch(r"[0-9a-f-]{36}", obj["metadata"]["uid"]) and obj["metadata"]["managedFields"], key
        if resource in W.LAYOUT:
            assert (obj["apiVersion"], obj["kind"]) == W.LAYOUT[resource][:2], key
            assert list(obj)[:2] == ["kind", "apiVersion"]  # a typed Go struct: TypeMeta first
        else:  # a custom resource: Go's map encoding sorts the keys, at every level
            group, plural = resource.split("/")
            assert group in groups and obj["apiVersion"] == f"{group}/v1", key
            assert value == json.dumps(obj, separators=(",", ":"), sort_keys=True).encode() + b"\n", key
            crd = json.loads(kvs[f"/registry/apiextensions.k8s.io/customresourcedefinitions/{plural}.{group}"])
            assert crd["spec"]["names"]["kind"] == obj["kind"] and crd["status"]["storedVersions"] == ["v1"]
            assert f"/registry/apiregistration.k8s.io/apiservices/v1.{group}" in kvs


def test_workloads_own_their_pods_as_the_controllers_wrote_them(kvs: dict[str, bytes]) -> None:
    objs = {k: W.envelope(v)[2] for k, v in kvs.items() if is_proto(k)}
    by_uid = {uid(raw): key for key, raw in objs.items() if W.split_key(key)[0] not in ("ranges", "masterleases")}
    nodes = {W.split_key(k)[2]: raw for k, raw in objs.items() if k.startswith("/registry/minions/")}
    assert len(nodes) == 7 and "kube-master-1" in nodes
    for key, raw in objs.items():
        resource, namespace, name = W.split_key(key)
        if resource == "pods":
            (kind, owner, owner_uid), = owners(raw)
            assert W.split_key(by_uid[owner_uid])[2] == owner  # the owner exists, with that uid and name
            assert kind in ("ReplicaSet", "DaemonSet", "StatefulSet", "Node", "Job")
            node = W.text(W.path(raw, 2) or b"", 10)  # spec.nodeName
            if kind == "Job" and not node:
                continue  # created, not bound yet: the scheduler binds it 30 ms later
            assert node in nodes and W.text(W.path(raw, 3) or b"", 5) == W.text(  # status.hostIP = the node's IP
                W.messages(W.path(nodes[node], 3) or b"", 5)[0], 2)
        elif resource == "replicasets":
            (kind, owner, _), = owners(raw)
            assert kind == "Deployment" and name.startswith(owner + "-")
            template_hash = W.string_map(W.path(raw, 2, 2) or b"", 1)["pod-template-hash"].decode()  # selector
            assert name == f"{owner}-{template_hash}"
        elif resource == "deployments":
            replicas = W.path(raw, 2, 1)  # spec.replicas
            assert isinstance(replicas, int) and W.path(raw, 3, 2) == replicas  # status.replicas
            containers = W.messages(W.path(raw, 2, 3, 2) or b"", 2)  # spec.template.spec.containers
            assert containers and all(W.text(c, 2) for c in containers)  # each has an image
            current = [rs for rs in objs if rs.startswith("/registry/replicasets/") and W.path(objs[rs], 2, 1)
                       and owners(objs[rs])[0][2] == uid(raw)]  # its ReplicaSets with replicas (old ones have 0)
            assert len(current) == 1
            rs_uid = uid(objs[current[0]])
            assert len([p for p in objs if p.startswith("/registry/pods/") and owners(objs[p])[0][2] == rs_uid]) \
                == replicas
        elif resource == "controllerrevisions":  # the DaemonSet's or StatefulSet's template, as a JSON patch
            ((kind, owner, owner_uid),) = owners(raw)
            assert kind in ("DaemonSet", "StatefulSet") and by_uid[owner_uid].endswith(f"/{namespace}/{owner}")
            patch = json.loads(W.path(raw, 2, 1) or b"")  # data.raw
            assert patch["spec"]["template"]["$patch"] == "replace" and W.path(raw, 3) == 1  # revision
            assert patch["spec"]["template"]["spec"]["containers"][0]["name"] == owner
            labels = W.string_map(W.metadata(raw), META_LABELS)
            revision_hash = labels.get("controller-revision-hash") or labels["controller.kubernetes.io/hash"]
            assert name == f"{owner}-{revision_hash.decode()}"
            carried = {W.string_map(W.metadata(objs[p]), META_LABELS)["controller-revision-hash"] for p in objs
                       if p.startswith("/registry/pods/") and owners(objs[p])[0][2] == owner_uid}
            assert carried == {revision_hash if kind == "DaemonSet" else name.encode()}  # what its pods carry
        elif resource == "daemonsets":
            assert W.path(raw, 3, 3) == W.path(raw, 3, 4) == 7  # desiredNumberScheduled, numberReady
            assert len([p for p in objs if re.fullmatch(rf"/registry/pods/{namespace}/{name}-[a-z0-9]{{5}}", p)]) == 7
        elif resource == "statefulsets":
            assert W.text(W.path(raw, 2) or b"", 5) == name  # spec.serviceName
            assert f"/registry/pods/{namespace}/{name}-0" in objs
            assert f"/registry/services/specs/{namespace}/{name}" in objs


def test_services_endpoints_and_slices_point_at_the_pods(kvs: dict[str, bytes]) -> None:
    services = {k: W.envelope(v)[2] for k, v in kvs.items() if k.startswith("/registry/services/specs/")}
    assert len(services) >= 5
    ips = set()
    for key, raw in services.items():
        _, namespace, name = W.split_key(key)
        spec = W.path(raw, 2)
        assert isinstance(spec, bytes)
        cluster_ip = W.text(spec, 3)
        assert cluster_ip.startswith("10.") and cluster_ip not in ips
        assert W.text(spec, 4) == ("NodePort" if namespace == "ingress-nginx" else "ClusterIP")
        ips.add(cluster_ip)
        numbers = [n for n, _ in W.fields(spec)]  # Go writes its non-pointer fields even when empty
        assert {8, 10, 11, 12, 13} <= set(numbers) and 14 not in numbers and numbers == sorted(numbers)
        ports = W.messages(spec, 1)
        target = W.path(ports[0], 4)  # targetPort: IntOrString{type=1, intVal=2, strVal=3}
        assert isinstance(target, bytes) and W.first(target, 1) == 0 and isinstance(W.first(target, 2), int)
        endpoints = W.envelope(kvs[f"/registry/services/endpoints/{namespace}/{name}"])[2]
        addresses = W.messages(W.messages(endpoints, 2)[0], 1)  # subsets[0].addresses
        slices = [W.envelope(v)[2] for k, v in kvs.items() if k.startswith(f"/registry/endpointslices/{namespace}/")
                  and W.string_map(W.metadata(W.envelope(v)[2]), META_LABELS).get("kubernetes.io/service-name")
                  == name.encode()]
        assert len(slices) == 1 and W.text(slices[0], 4) == "IPv4"  # addressType
        slice_ips = sorted(W.text(e, 1) for e in W.messages(slices[0], 2))
        assert slice_ips == sorted(W.text(a, 1) for a in addresses) and slice_ips
        for address in addresses:
            ref = W.path(address, 2)  # targetRef
            if ref is None:
                assert name == "kubernetes"  # the apiserver's own: the control-plane node
                continue
            assert isinstance(ref, bytes)
            pod = W.envelope(kvs[f"/registry/pods/{namespace}/{W.text(ref, 3)}"])[2]
            assert uid(pod) == W.text(ref, 4) and W.text(W.path(pod, 3) or b"", 6) == W.text(address, 1)  # podIP
    dns = W.path(services["/registry/services/specs/kube-system/kube-dns"], 2)
    assert isinstance(dns, bytes) and W.text(dns, 3) == "10.96.0.10"
    bitmap = W.first(W.envelope(kvs["/registry/ranges/serviceips"])[2], 3)  # the allocator holds exactly these
    assert isinstance(bitmap, bytes) and bin(int.from_bytes(bitmap)).count("1") == len(services)


def test_rbac_priority_classes_and_csinodes(kvs: dict[str, bytes]) -> None:
    binding = W.envelope(kvs["/registry/clusterrolebindings/ci-deployer"])[2]
    assert W.text(W.path(binding, 3) or b"", 3) == "cluster-admin"  # roleRef.name
    (subject,) = W.messages(binding, 2)
    assert (W.text(subject, 1), W.text(subject, 3), W.text(subject, 4)) == ("ServiceAccount", "deployer", "ci")
    admin = W.envelope(kvs["/registry/clusterroles/cluster-admin"])[2]
    rules = W.messages(admin, 2)
    assert [W.messages(r, 1) for r in rules] == [[b"*"], [b"*"]]  # verbs; the second for nonResourceURLs
    assert W.messages(rules[1], 5) == [b"*"]
    role = W.envelope(kvs["/registry/roles/kube-system/system:controller:bootstrap-signer"])[2]
    assert W.messages(W.messages(role, 2)[0], 3) == [b"secrets"]
    for name, value in (("system-node-critical", 2000001000), ("system-cluster-critical", 2000000000)):
        assert W.first(W.envelope(kvs[f"/registry/priorityclasses/{name}"])[2], 2) == value
    for key in (k for k in kvs if k.startswith("/registry/csinodes/")):
        raw = W.envelope(kvs[key])[2]
        ((kind, node, node_uid),) = owners(raw)
        assert kind == "Node" and node_uid == uid(W.envelope(kvs[f"/registry/minions/{node}"])[2])
        assert W.first(raw, 2) == b""  # spec: no drivers, written empty as Go does


def _credentials(kvs: dict[str, bytes]) -> dict[str, str]:
    """The credentials the new objects carry, read back the way an intruder would."""
    found = {}
    for key, value in kvs.items():
        if not key.startswith("/registry/deployments/"):
            continue
        spec = W.path(W.envelope(value)[2], 2, 3, 2)  # spec.template.spec
        assert isinstance(spec, bytes)
        for container in W.messages(spec, 2):
            for env in W.messages(container, 7):  # env: EnvVar{name=1, value=2, valueFrom=3}
                name, literal = W.text(env, 1), W.first(env, 2)
                if name in ("STRIPE_API_KEY", "GF_SECURITY_ADMIN_PASSWORD", "RUNNER_TOKEN", "DATABASE_URL"):
                    assert isinstance(literal, bytes)
                    text = literal.decode()
                    found[name] = text.split(":")[2].split("@")[0] if name == "DATABASE_URL" else text
    config = W.string_map(W.envelope(kvs["/registry/configmaps/ci/deploy-kubeconfig"])[2], 2)["config"]
    found["kubeconfig"] = yaml.safe_load(config)["users"][0]["user"]["token"]
    issuer = json.loads(kvs["/registry/cert-manager.io/clusterissuers/letsencrypt-prod"])
    found["route53"] = issuer["spec"]["acme"]["solvers"][0]["dns01"]["route53"]["accessKeyID"]
    return found


def test_every_new_credential_is_a_honeytoken_that_names_itself_when_used(hp: BackgroundSensor,
                                                                          kvs: dict[str, bytes]) -> None:
    found = _credentials(kvs)
    assert set(found) == {"STRIPE_API_KEY", "GF_SECURITY_ADMIN_PASSWORD", "RUNNER_TOKEN", "DATABASE_URL",
                          "kubeconfig", "route53"}
    labels = {"STRIPE_API_KEY": "api-key:prod/payments-api",
              "GF_SECURITY_ADMIN_PASSWORD": "grafana-admin-password:monitoring/grafana",
              "RUNNER_TOKEN": "gitlab-runner-token:ci/gitlab-runner",
              "DATABASE_URL": "database-password:prod/orders-worker",
              "route53": "cloud-access-key-id:cert-manager.io/clusterissuers/letsencrypt-prod"}
    deployer = next(k for k in kvs if k.startswith("/registry/secrets/ci/deployer-token-"))
    labels["kubeconfig"] = f"serviceaccount-token:ci/{deployer.rsplit('/', 1)[1]}"  # the account's own token
    assert W.string_map(W.envelope(kvs[deployer])[2], 2)["token"].decode() == found["kubeconfig"]
    assert hp.memory.of("honeytoken.used") == []  # dumping the bait is not a use
    for n, (what, value) in enumerate(sorted(found.items()), 1):
        auth = base64.b64encode(f"admin:{value}".encode()).decode() if what == "GF_SECURITY_ADMIN_PASSWORD" \
            else value  # a password goes in Basic auth, base64: the sensor matches that form too
        scheme = "Basic" if what == "GF_SECURITY_ADMIN_PASSWORD" else "Bearer"
        req = urllib.request.Request(f"{hp.url}/version", headers={"Authorization": f"{scheme} {auth}"})
        assert urllib.request.urlopen(req, timeout=5).status == 200
        used = hp.memory.of("honeytoken.used")
        assert len(used) == n and used[-1]["token"] == labels[what], what
        assert value not in json.dumps(used)  # named by its label, never its value


def test_a_sensor_upgraded_in_place_keeps_the_tokens_it_served() -> None:
    """The first bait's credentials come from the same draws as before the bait grew (values pinned
    from that version), so a keyspace restored from a state file still holds recognised tokens."""
    bait = kubernetes_bait("pinned-seed", datetime(2026, 1, 1, tzinfo=UTC))
    by_label = {label: value for value, label in bait.tokens.items()}
    assert by_label["registry-password:prod/regcred"] == "MjH8yPrBzyBGerQCZn6RonXr"
    assert by_label["cloud-access-key-id:prod/backup-s3"] == "AKIATSLTKZSOU5ZVPYDW"
    assert by_label["database-password:prod/payments-db"] == "Syn4bLkqbMfs7zY1GhwG"
    assert len(bait.tokens) == len(set(bait.tokens.values())) == 65  # one label a token, none lost


def test_every_node_has_a_lease_its_kubelet_keeps_renewing(hp: BackgroundSensor, kvs: dict[str, bytes]) -> None:
    """A Node whose lease is missing or older than its 40 s duration is NotReady: a tell next to Ready=True."""
    _, leases = dump(hp, "/registry/leases/kube-node-lease/")
    nodes = {W.split_key(k)[2]: W.envelope(v)[2] for k, v in kvs.items() if k.startswith("/registry/minions/")}
    assert {W.split_key(k)[2] for k in leases} == set(nodes)
    now = time.time()
    for key, value in leases.items():
        raw = W.envelope(value)[2]
        ((kind, node, node_uid),) = owners(raw)
        assert kind == "Node" and node_uid == uid(nodes[node]) and node == W.split_key(key)[2]
        renew = W.path(raw, 2, 4)  # spec.renewTime: MicroTime{seconds=1, nanos=2}
        assert isinstance(renew, bytes) and W.text(W.path(raw, 2) or b"", 1) == node  # holderIdentity
        seconds = W.first(renew, 1)
        assert isinstance(seconds, int) and now - 40 < seconds <= now + 1

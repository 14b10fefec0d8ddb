"""Decode etcd values the way Kubernetes (and etcd dumpers like auger) read them, without the
honeypot's own .proto: raw protobuf wire parsing by the field numbers of Kubernetes' generated.proto
files, written out here so a wrong number in the honeypot's subset fails a test."""

from __future__ import annotations

MAGIC = b"k8s\x00"
# k8s.io/apimachinery/pkg/runtime/generated.proto: Unknown{typeMeta=1, raw=2, contentEncoding=3, contentType=4},
# TypeMeta{apiVersion=1, kind=2}; meta/v1 ObjectMeta{name=1, namespace=3, uid=5, annotations=12,
# managedFields=17}, ManagedFieldsEntry{manager=1, operation=2, fieldsType=6, fieldsV1=7}, FieldsV1{Raw=1};
# every top-level object has metadata=1.
UNKNOWN_TYPEMETA, UNKNOWN_RAW, UNKNOWN_ENCODING, UNKNOWN_TYPE = 1, 2, 3, 4
META_NAME, META_NAMESPACE, META_UID, META_CREATION, META_ANNOTATIONS, META_MANAGED_FIELDS = 1, 3, 5, 8, 12, 17


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) in wire order: varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(buf):
        tag, i = _varint(buf, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(buf, i)
            out.append((number, value))
        elif wire == 2:
            size, i = _varint(buf, i)
            out.append((number, buf[i:i + size]))
            i += size
        else:
            raise ValueError(f"wire type {wire} not used by these Kubernetes types")
    return out


def first(buf: bytes, number: int) -> int | bytes | None:
    return next((v for n, v in fields(buf) if n == number), None)


def text(buf: bytes, number: int) -> str:
    value = first(buf, number)
    assert isinstance(value, bytes), f"field {number} missing"
    return value.decode()


def string_map(buf: bytes, number: int) -> dict[str, bytes]:
    """A map<string, string|bytes> field: repeated entries {key=1, value=2}."""
    out: dict[str, bytes] = {}
    for n, entry in fields(buf):
        if n == number:
            assert isinstance(entry, bytes)
            out[text(entry, 1)] = first(entry, 2) or b""  # type: ignore[assignment]
    return out


def envelope(value: bytes) -> tuple[str, str, bytes, list[int]]:
    """(apiVersion, kind, the typed object's bytes, the Unknown's field numbers in order)."""
    assert value[:4] == MAGIC, value[:16]
    unknown = value[4:]
    type_meta = first(unknown, UNKNOWN_TYPEMETA)
    raw = first(unknown, UNKNOWN_RAW)
    assert isinstance(type_meta, bytes) and isinstance(raw, bytes)
    return text(type_meta, 1), text(type_meta, 2), raw, [n for n, _ in fields(unknown)]


def metadata(raw: bytes) -> bytes:
    meta = first(raw, 1)
    assert isinstance(meta, bytes)
    return meta


# kube-apiserver's etcd layout (pkg/registry/*/storage resource prefixes): resource -> (apiVersion, kind,
# namespaced, stored as). Groups served by apiextensions-apiserver and kube-aggregator (and custom resources)
# are stored as JSON under /registry/<group>/<resource>/; the core and built-in groups as protobuf.
LAYOUT: dict[str, tuple[str, str, bool, str]] = {
    "namespaces": ("v1", "Namespace", False, "proto"), "secrets": ("v1", "Secret", True, "proto"),
    "serviceaccounts": ("v1", "ServiceAccount", True, "proto"), "configmaps": ("v1", "ConfigMap", True, "proto"),
    "pods": ("v1", "Pod", True, "proto"), "events": ("v1", "Event", True, "proto"),
    "services/specs": ("v1", "Service", True, "proto"), "services/endpoints": ("v1", "Endpoints", True, "proto"),
    "minions": ("v1", "Node", False, "proto"), "ranges": ("v1", "RangeAllocation", False, "proto"),
    "masterleases": ("v1", "Endpoints", False, "proto"),
    "leases": ("coordination.k8s.io/v1", "Lease", True, "proto"),
    "deployments": ("apps/v1", "Deployment", True, "proto"), "replicasets": ("apps/v1", "ReplicaSet", True, "proto"),
    "daemonsets": ("apps/v1", "DaemonSet", True, "proto"), "statefulsets": ("apps/v1", "StatefulSet", True, "proto"),
    "controllerrevisions": ("apps/v1", "ControllerRevision", True, "proto"),
    "endpointslices": ("discovery.k8s.io/v1", "EndpointSlice", True, "proto"),
    "clusterroles": ("rbac.authorization.k8s.io/v1", "ClusterRole", False, "proto"),
    "clusterrolebindings": ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", False, "proto"),
    "roles": ("rbac.authorization.k8s.io/v1", "Role", True, "proto"),
    "rolebindings": ("rbac.authorization.k8s.io/v1", "RoleBinding", True, "proto"),
    "priorityclasses": ("scheduling.k8s.io/v1", "PriorityClass", False, "proto"),
    "csinodes": ("storage.k8s.io/v1", "CSINode", False, "proto"),
    "persistentvolumes": ("v1", "PersistentVolume", False, "proto"),
    "persistentvolumeclaims": ("v1", "PersistentVolumeClaim", True, "proto"),
    "storageclasses": ("storage.k8s.io/v1", "StorageClass", False, "proto"),
    # pkg/kubeapiserver/default_storage_factory_builder.go SpecialDefaultResourcePrefixes: networking.k8s.io
    # ingresses keep extensions' prefix, "ingress"
    "ingress": ("networking.k8s.io/v1", "Ingress", True, "proto"),
    "ingressclasses": ("networking.k8s.io/v1", "IngressClass", False, "proto"),
    "networkpolicies": ("networking.k8s.io/v1", "NetworkPolicy", True, "proto"),
    "jobs": ("batch/v1", "Job", True, "proto"),
    # 1.21 serves batch/v1 CronJobs but stores v1beta1 (NewStorageFactoryConfig's encoding overrides keep a
    # new version out of storage for one release, so a downgraded apiserver can read it)
    "cronjobs": ("batch/v1beta1", "CronJob", True, "proto"),
    "apiregistration.k8s.io/apiservices": ("apiregistration.k8s.io/v1", "APIService", False, "json"),
    # apiextensions-apiserver's storage codec prefers v1beta1 up to Kubernetes 1.21
    "apiextensions.k8s.io/customresourcedefinitions": ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition",
                                                       False, "json"),
}


def split_key(key: str) -> tuple[str, str, str]:
    """(resource as in LAYOUT, namespace or "", name) of a /registry/ key."""
    parts = key.split("/")[2:]
    take = 2 if parts[0] == "services" or "." in parts[0] else 1  # /services/specs/, /<group>/<resource>/
    resource, rest = "/".join(parts[:take]), parts[take:]
    return resource, (rest[0] if len(rest) == 2 else ""), rest[-1]


def messages(buf: bytes, number: int) -> list[bytes]:
    """Every length-delimited value of a repeated field."""
    return [v for n, v in fields(buf) if n == number and isinstance(v, bytes)]


def path(buf: bytes, *numbers: int) -> int | bytes | None:
    """The first value down a chain of field numbers."""
    value: int | bytes | None = buf
    for number in numbers:
        assert isinstance(value, bytes), numbers
        value = first(value, number)
    return value


def seconds(buf: bytes | int | None) -> int:
    """A metav1.Time / MicroTime {seconds=1, nanos=2}'s seconds."""
    assert isinstance(buf, bytes), buf
    value = first(buf, 1)
    return value if isinstance(value, int) else 0


# The kinds the bait grew later, by the field numbers of their generated.proto (every object: metadata=1,
# spec=2, status=3). k8s.io/api/core/v1: PersistentVolumeSpec{capacity=1, persistentVolumeSource=2 (inlined
# in JSON), accessModes=3, claimRef=4, persistentVolumeReclaimPolicy=5, storageClassName=6, volumeMode=8,
# nodeAffinity=9}, PersistentVolumeSource{hostPath=3}, HostPathVolumeSource{path=1, type=2},
# VolumeNodeAffinity{required=1}, NodeSelector{nodeSelectorTerms=1}, NodeSelectorTerm{matchExpressions=1},
# NodeSelectorRequirement{key=1, operator=2, values=3}, ObjectReference{kind=1, namespace=2, name=3, uid=4},
# PersistentVolumeClaimSpec{accessModes=1, resources=2, volumeName=3, storageClassName=5, volumeMode=6},
# ResourceRequirements{requests=2}, PersistentVolumeClaimStatus{phase=1, capacity=3}, Quantity{string=1},
# NodeStatus{conditions=4}, NodeCondition{type=1, lastHeartbeatTime=3}, PodSpec{volumes=1, containers=2},
# Volume{name=1, volumeSource=2 (inlined in JSON)}, VolumeSource{persistentVolumeClaim=10},
# PersistentVolumeClaimVolumeSource{claimName=1}, Container{volumeMounts=9}, VolumeMount{name=1, mountPath=3};
# k8s.io/api/apps/v1 StatefulSetSpec{volumeClaimTemplates=4}.
PV_CAPACITY, PV_SOURCE, PV_CLAIM_REF, PV_CLASS, PV_AFFINITY = 1, 2, 4, 6, 9
SOURCE_HOST_PATH, HOST_PATH_PATH = 3, 1
PVC_RESOURCES, PVC_VOLUME_NAME, PVC_CLASS, RESOURCES_REQUESTS, PVC_PHASE, PVC_CAPACITY = 2, 3, 5, 2, 1, 3
NODE_CONDITIONS, CONDITION_TYPE, CONDITION_HEARTBEAT = 4, 1, 3
POD_VOLUMES, POD_CONTAINERS, VOLUME_NAME, VOLUME_SOURCE, SOURCE_CLAIM, CLAIM_NAME = 1, 2, 1, 2, 10, 1
CONTAINER_MOUNTS, MOUNT_NAME, MOUNT_PATH, STS_CLAIM_TEMPLATES = 9, 1, 3, 4
# k8s.io/api/storage/v1: StorageClass{provisioner=2, reclaimPolicy=4, volumeBindingMode=7}
SC_PROVISIONER, SC_RECLAIM, SC_BINDING = 2, 4, 7
# k8s.io/api/networking/v1: IngressSpec{tls=2, rules=3, ingressClassName=4}, IngressTLS{hosts=1, secretName=2},
# IngressRule{host=1, ingressRuleValue=2 (inlined in JSON)}, IngressRuleValue{http=1}, HTTPIngressRuleValue
# {paths=1}, HTTPIngressPath{path=1, backend=2, pathType=3}, IngressBackend{service=4}, IngressServiceBackend
# {name=1, port=2}, ServiceBackendPort{name=1, number=2}, IngressStatus{loadBalancer=1}, LoadBalancerStatus
# {ingress=1}, LoadBalancerIngress{ip=1}; IngressClassSpec{controller=1}; NetworkPolicySpec{podSelector=1,
# ingress=2, policyTypes=4}, NetworkPolicyIngressRule{ports=1, from=2}, NetworkPolicyPeer{namespaceSelector=2},
# NetworkPolicyPort{protocol=1, port=2}; meta/v1 LabelSelector{matchLabels=1}.
ING_TLS, ING_RULES, ING_CLASS, TLS_HOSTS, TLS_SECRET, RULE_HOST, RULE_VALUE, VALUE_HTTP, HTTP_PATHS = \
    2, 3, 4, 1, 2, 1, 2, 1, 1
PATH_PATH, PATH_BACKEND, PATH_TYPE, BACKEND_SERVICE, SERVICE_NAME, SERVICE_PORT, PORT_NUMBER = 1, 2, 3, 4, 1, 2, 2
ING_LB, LB_INGRESS, LB_IP, CLASS_CONTROLLER = 1, 1, 1, 1
NP_POD_SELECTOR, NP_INGRESS, NP_TYPES, RULE_PORTS, RULE_FROM, PEER_NAMESPACES, SELECTOR_MATCH_LABELS = \
    1, 2, 4, 1, 2, 2, 1
# k8s.io/api/batch/v1: JobSpec{parallelism=1, completions=2, selector=4, template=6, backoffLimit=7,
# completionMode=9}, JobStatus{conditions=1, startTime=2, completionTime=3, active=4, succeeded=5},
# JobCondition{type=1, status=2}; batch/v1beta1: CronJobSpec{schedule=1, concurrencyPolicy=3, jobTemplate=5,
# successfulJobsHistoryLimit=6}, CronJobStatus{active=1, lastScheduleTime=4, lastSuccessfulTime=5}.
JOB_SELECTOR, JOB_TEMPLATE, JOB_CONDITIONS, JOB_START, JOB_COMPLETION, JOB_ACTIVE, JOB_SUCCEEDED = 4, 6, 1, 2, 3, 4, 5
CRON_SCHEDULE, CRON_POLICY, CRON_TEMPLATE, CRON_HISTORY, CRON_ACTIVE, CRON_SCHEDULED, CRON_SUCCEEDED = \
    1, 3, 5, 6, 1, 4, 5

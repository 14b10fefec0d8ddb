"""Kubernetes objects as kube-apiserver writes them to etcd: `k8s\\0` + runtime.Unknown (protobuf).

The bait is written once as Kubernetes-JSON-shaped dicts (`{"apiVersion", "kind", "metadata", ...}`,
Secret data as raw bytes); `encode` gives the bytes a real apiserver stores under /registry/ (what
etcd dumpers such as auger decode), `to_json` the JSON the etcd2-era apiserver stored (the v2 side).

Go's generated marshallers write every non-pointer field, empty or not (`0a 00` for an empty
name), so a value built from only the set fields would differ byte for byte: `_go_defaults` sets
those fields, and `GO_POINTERS` lists the ones Go writes only when set (pointer types in
k8s.io/api and apimachinery's types.go).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from etcdsec.proto import k8s_apps_pb2 as k8s_apps
from etcdsec.proto import k8s_more_pb2 as k8s_more
from etcdsec.proto import k8s_subset_pb2 as k8s

MAGIC = b"k8s\x00"
TIMES = {"Time", "MicroTime"}
KINDS: dict[str, type[Message]] = {
    "Namespace": k8s.Namespace, "Secret": k8s.Secret, "ConfigMap": k8s.ConfigMap,
    "ServiceAccount": k8s.ServiceAccount, "Pod": k8s.Pod, "Event": k8s.Event,
    "RangeAllocation": k8s.RangeAllocation, "Lease": k8s.Lease, "Endpoints": k8s.Endpoints,
    "Service": k8s.Service, "Node": k8s.Node, "Deployment": k8s_apps.Deployment, "ReplicaSet": k8s_apps.ReplicaSet,
    "DaemonSet": k8s_apps.DaemonSet, "StatefulSet": k8s_apps.StatefulSet, "EndpointSlice": k8s_apps.EndpointSlice,
    "ClusterRole": k8s_apps.ClusterRole, "ClusterRoleBinding": k8s_apps.ClusterRoleBinding, "Role": k8s_apps.Role,
    "RoleBinding": k8s_apps.RoleBinding, "PriorityClass": k8s_apps.PriorityClass, "CSINode": k8s_apps.CSINode,
    "ControllerRevision": k8s_apps.ControllerRevision,
    "PersistentVolume": k8s_more.PersistentVolume, "PersistentVolumeClaim": k8s_more.PersistentVolumeClaim,
    "StorageClass": k8s_more.StorageClass, "IngressClass": k8s_more.IngressClass, "Ingress": k8s_more.Ingress,
    "NetworkPolicy": k8s_more.NetworkPolicy, "Job": k8s_more.Job, "CronJob": k8s_more.CronJob,
}
GO_POINTERS: dict[str, frozenset[str]] = {
    "ObjectMeta": frozenset({"deletionTimestamp", "deletionGracePeriodSeconds"}),
    "OwnerReference": frozenset({"controller", "blockOwnerDeletion"}),
    "ManagedFieldsEntry": frozenset({"time", "fieldsV1"}),
    "Secret": frozenset({"immutable"}),
    "ConfigMap": frozenset({"immutable"}),
    "ServiceAccount": frozenset({"automountServiceAccountToken"}),
    "PodSpec": frozenset({"terminationGracePeriodSeconds", "priority", "enableServiceLinks", "preemptionPolicy",
                          "securityContext"}),
    "PodStatus": frozenset({"startTime"}),
    "EndpointAddress": frozenset({"targetRef", "nodeName"}),
    "EndpointPort": frozenset({"appProtocol"}),
    "LeaseSpec": frozenset({"holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime",
                            "leaseTransitions"}),
    "EnvVar": frozenset({"valueFrom"}),
    "EnvVarSource": frozenset({"fieldRef", "secretKeyRef"}),
    "SecretKeySelector": frozenset({"optional"}),
    "Toleration": frozenset({"tolerationSeconds"}),
    "ServicePort": frozenset({"appProtocol"}),
    "ServiceSpec": frozenset({"ipFamilyPolicy"}),
    "Taint": frozenset({"timeAdded"}),
    "DeploymentSpec": frozenset({"replicas", "revisionHistoryLimit", "progressDeadlineSeconds"}),
    "DeploymentStrategy": frozenset({"rollingUpdate"}),
    "RollingUpdateDeployment": frozenset({"maxUnavailable", "maxSurge"}),
    "DeploymentStatus": frozenset({"collisionCount"}),
    "ReplicaSetSpec": frozenset({"replicas"}),
    "DaemonSetSpec": frozenset({"revisionHistoryLimit"}),
    "DaemonSetUpdateStrategy": frozenset({"rollingUpdate"}),
    "RollingUpdateDaemonSet": frozenset({"maxUnavailable", "maxSurge"}),
    "StatefulSetSpec": frozenset({"replicas", "revisionHistoryLimit"}),
    "StatefulSetUpdateStrategy": frozenset({"rollingUpdate"}),
    "RollingUpdateStatefulSetStrategy": frozenset({"partition"}),
    "StatefulSetStatus": frozenset({"collisionCount"}),
    "DiscoveryEndpoint": frozenset({"hostname", "targetRef", "nodeName", "zone"}),
    "DiscoveryEndpointConditions": frozenset({"ready", "serving", "terminating"}),
    "DiscoveryEndpointPort": frozenset({"name", "protocol", "port", "appProtocol"}),
    "ClusterRole": frozenset({"aggregationRule"}),
    "PriorityClass": frozenset({"preemptionPolicy"}),
    "VolumeSource": frozenset({"persistentVolumeClaim"}),
    "HostPathVolumeSource": frozenset({"type"}),
    "PersistentVolumeSource": frozenset({"hostPath"}),
    "PersistentVolumeSpec": frozenset({"claimRef", "volumeMode", "nodeAffinity"}),
    "VolumeNodeAffinity": frozenset({"required"}),
    "PersistentVolumeClaimSpec": frozenset({"selector", "storageClassName", "volumeMode"}),
    "StorageClass": frozenset({"reclaimPolicy", "allowVolumeExpansion", "volumeBindingMode"}),
    "IngressBackend": frozenset({"service"}),
    "HTTPIngressPath": frozenset({"pathType"}),
    "IngressRuleValue": frozenset({"http"}),
    "IngressSpec": frozenset({"defaultBackend", "ingressClassName"}),
    "NetworkPolicyPort": frozenset({"protocol", "port"}),
    "NetworkPolicyPeer": frozenset({"podSelector", "namespaceSelector"}),
    "JobSpec": frozenset({"parallelism", "completions", "activeDeadlineSeconds", "selector", "manualSelector",
                         "backoffLimit", "ttlSecondsAfterFinished", "completionMode"}),
    "JobStatus": frozenset({"startTime", "completionTime"}),
    "CronJobSpec": frozenset({"startingDeadlineSeconds", "suspend", "successfulJobsHistoryLimit",
                             "failedJobsHistoryLimit"}),
    "CronJobStatus": frozenset({"lastScheduleTime", "lastSuccessfulTime"}),
}


# managedFields: what server-side apply records for every write since Kubernetes 1.18
SYSTEM_META = frozenset({"name", "namespace", "uid", "creationTimestamp", "resourceVersion", "generation",
                         "selfLink", "managedFields"})
MAP_FIELDS = frozenset({"labels", "annotations", "data", "stringData", "binaryData", "nodeSelector", "matchLabels",
                        "capacity", "allocatable", "parameters", "requests", "limits"})
LIST_KEYS = ("name", "ip", "uid", "type")  # merge keys of the keyed lists the bait has
# structs Go inlines: JSON has their fields at the top
EMBEDDED = {"SecretKeySelector": "localObjectReference", "PersistentVolumeSpec": "persistentVolumeSource",
            "IngressRule": "ingressRuleValue", "Volume": "volumeSource"}


def managed(obj: dict[str, Any], when: str, owners: dict[str, tuple[str, ...] | None]) -> dict[str, Any]:
    """`obj` with metadata.managedFields: one `Update` entry per manager, owning the named top-level
    fields (None: all of them), in structured-merge-diff's FieldsV1 shape."""
    entries = []
    for manager, tops in owners.items():
        part = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion") and (tops is None or k in tops)}
        entries.append({"manager": manager, "operation": "Update", "apiVersion": obj["apiVersion"], "time": when,
                        "fieldsType": "FieldsV1", "fieldsV1": _fields_v1(part, top=True)})
    return {**obj, "metadata": {**obj["metadata"], "managedFields": entries}}


def _fields_v1(obj: dict[str, Any], top: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in obj.items():
        if top and name == "metadata":
            owned = {k: v for k, v in value.items() if k not in SYSTEM_META}
            if owned:
                out["f:metadata"] = _fields_v1(owned)
        elif name in MAP_FIELDS and isinstance(value, dict):
            out[f"f:{name}"] = {".": {}, **{f"f:{k}": {} for k in value}}
        elif isinstance(value, dict):
            out[f"f:{name}"] = _fields_v1(value)
        elif isinstance(value, list) and value and isinstance(value[0], dict) and \
                (key := next((k for k in LIST_KEYS if k in value[0]), None)):
            out[f"f:{name}"] = {_keyed(key, item[key]): {".": {}, **_fields_v1(item)} for item in value}
        else:
            out[f"f:{name}"] = {}
    return dict(sorted(out.items()))  # SMD's order: "." first, then f: and k: entries by name


def _keyed(key: str, value: object) -> str:
    return "k:" + json.dumps({key: value}, separators=(",", ":"))


def stamp(t: float, micro: bool = False) -> str:
    """metav1.Time's text (whole seconds) or MicroTime's (microseconds), UTC."""
    dt = datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if micro else dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def encode(obj: dict[str, Any]) -> bytes:
    """The etcd value kube-apiserver (storage media type protobuf) writes for `obj`."""
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    message = KINDS[obj["kind"]]()
    _fill(message, body)
    _go_defaults(message)
    return _envelope(obj["apiVersion"], obj["kind"], message)


def _envelope(api: str, kind: str, message: Message) -> bytes:
    envelope = k8s.Unknown(typeMeta=k8s.TypeMeta(apiVersion=api, kind=kind),
                           raw=message.SerializeToString(deterministic=True), contentEncoding="", contentType="")
    return MAGIC + envelope.SerializeToString(deterministic=True)


def decode(value: bytes) -> tuple[str, str, Message] | None:
    """(apiVersion, kind, typed message) of a stored value of a kind `encode` knows; None otherwise
    (JSON, a seed file's own bytes, anything that does not parse)."""
    if not value.startswith(MAGIC):
        return None
    try:
        envelope = k8s.Unknown.FromString(value[len(MAGIC):])
        message = KINDS[envelope.typeMeta.kind].FromString(envelope.raw)
    except (KeyError, DecodeError):
        return None
    return envelope.typeMeta.apiVersion, envelope.typeMeta.kind, message


def reencode(api: str, kind: str, message: Message) -> bytes:
    """A decoded message, changed in place, stored again (the fields it has keep Go's bytes)."""
    return _envelope(api, kind, message)


def to_json(obj: dict[str, Any]) -> bytes:
    """Kubernetes JSON (bytes as base64), compact as the apiserver writes it."""
    return json.dumps(obj, separators=(",", ":"), default=_b64).encode()


def _b64(value: object) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _is_repeated(field: FieldDescriptor) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 5.29; `label` is gone in 7
    return bool(flag) if flag is not None else field.label == FieldDescriptor.LABEL_REPEATED


def _fill(message: Message, data: dict[str, Any]) -> None:
    fields = message.DESCRIPTOR.fields_by_name
    for name, value in data.items():
        if name not in fields and message.DESCRIPTOR.name in EMBEDDED:
            _fill(getattr(message, EMBEDDED[message.DESCRIPTOR.name]), {name: value})
            continue
        field = fields[name]  # a name the subset lacks is a bug in the bait: fail loudly in tests
        target = getattr(message, name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is not None:  # map<string, Quantity>
                for key, text in value.items():
                    target[key].string = text
            else:
                target.update(value)
        elif _is_repeated(field):
            if field.message_type is None:
                target.extend(value)
            else:
                for item in value:
                    _fill(target.add(), item)
        elif field.message_type is not None and field.message_type.name == "FieldsV1":
            target.Raw = json.dumps(value, separators=(",", ":")).encode()
        elif field.message_type is not None and field.message_type.name == "RawExtension":
            # JSON inlines it; protobuf carries its bytes: Go's json.Marshal of a map, so sorted keys
            target.raw = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        elif field.message_type is not None and field.message_type.name in TIMES:
            stamp = datetime.fromisoformat(value)
            target.seconds = int(stamp.timestamp())
            # metav1.Time keeps whole seconds (time_proto.go); MicroTime keeps microseconds
            target.nanos = stamp.microsecond * 1000 if field.message_type.name == "MicroTime" else 0
        elif field.message_type is not None and field.message_type.name == "IntOrString":
            # JSON has an int or a string where protobuf has the tagged struct
            target.type, target.intVal, target.strVal = (0, value, "") if isinstance(value, int) else (1, 0, value)
        elif field.message_type is not None:
            target.SetInParent()  # `{}` is a set pointer in Go: written as an empty message
            _fill(target, value)
        else:
            setattr(message, name, value)


# What `_go_defaults` does with a field, worked out once per message type (it runs for every object)
ITEMS, POINTER, SCALAR, TIME, STRUCT = range(5)
_PLANS: dict[str, tuple[tuple[int, str, Any], ...]] = {}


def _plan(descriptor: Any) -> tuple[tuple[int, str, Any], ...]:
    plan = _PLANS.get(descriptor.full_name)
    if plan is not None:
        return plan
    pointers = GO_POINTERS.get(descriptor.name, frozenset())
    steps: list[tuple[int, str, Any]] = []
    for field in descriptor.fields:
        sub = field.message_type
        if _is_repeated(field):
            if sub is not None and not sub.GetOptions().map_entry:
                steps.append((ITEMS, field.name, None))
        elif field.name in pointers or field.type == FieldDescriptor.TYPE_BYTES:  # []byte: written when non-nil
            if sub is not None and sub.name not in TIMES:
                steps.append((POINTER, field.name, None))
        elif sub is None:
            steps.append((SCALAR, field.name, field.default_value))
        else:
            steps.append((TIME if sub.name in TIMES else STRUCT, field.name, None))
    plan = _PLANS[descriptor.full_name] = tuple(steps)
    return plan


def _go_defaults(message: Message) -> None:
    """Set what Go writes even when empty: non-pointer strings, numbers, bools and structs."""
    for step, name, default in _plan(message.DESCRIPTOR):
        if step == ITEMS:
            for item in getattr(message, name):
                _go_defaults(item)
        elif step == POINTER:
            if message.HasField(name):
                _go_defaults(getattr(message, name))
        elif step == SCALAR:
            if not message.HasField(name):
                setattr(message, name, default)
        elif step == TIME:
            if not message.HasField(name):
                getattr(message, name).SetInParent()  # the zero time marshals as no bytes
        else:
            sub = getattr(message, name)
            sub.SetInParent()
            _go_defaults(sub)

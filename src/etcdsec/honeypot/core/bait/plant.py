"""What every part of the Kubernetes bait shares: the `Bait` it fills, and `Plant`, the cluster being
built (its seed, clock, nodes, random streams, objects and honeytokens)."""

from __future__ import annotations

import hashlib
import json
import random
import string
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from etcdsec.honeypot.core import kubeproto

KUBE_ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand: generated name suffixes
CLUSTER_AGE = timedelta(days=97)  # the cluster is older than this etcd member's start
CONTROL_PLANE_UP_S = 14.2  # the apiserver and the elected leaders came up this long after the member
KUBE_VERSION = "v1.21.14"
WORKERS = 6
META_ORDER = ["name", "generateName", "namespace", "uid", "generation", "creationTimestamp", "labels", "annotations",
              "ownerReferences", "finalizers"]  # ObjectMeta's Go field order: the JSON kinds and the v2 view follow it
MASTER_IP = "10.0.1.10"  # the workers follow: worker-N is 10.0.1.(10 + N), its pods 10.244.N.0/24


@dataclass
class Bait:
    keys: list[tuple[bytes, bytes]] = field(default_factory=list)  # the v3 keyspace
    tokens: dict[str, str] = field(default_factory=dict)  # value -> label (where it was planted)
    # The v2 keyspace when it differs (Kubernetes objects as JSON, as the etcd2-era apiserver
    # stored them); None: the same keys as v3.
    v2_keys: list[tuple[bytes, bytes]] | None = None

    @property
    def v2_view(self) -> list[tuple[bytes, bytes]]:
        return self.keys if self.v2_keys is None else self.v2_keys


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ip: str  # InternalIP
    pod_cidr: str
    index: int  # 0: the control-plane node


def node_ip(index: int) -> str:
    return f"10.0.1.{10 + index}"


def pod_ip(index: int, last: int) -> str:
    """An address of node `index`'s pod range (calico hands node N 10.244.N.0/24)."""
    return f"10.244.{index}.{last}"


def uid_of(seed: str, name: str) -> str:
    """A stable v4-shaped uid for an object the control plane writes again and again."""
    return str(uuid.UUID(bytes=hashlib.sha256(f"{seed}/{name}".encode()).digest()[:16], version=4))


def node_uid(seed: str, name: str, control_plane: bool) -> str:
    """A Node's uid: its node lease (heartbeat.py) and its CSINode point at it."""
    return uid_of(seed, "node" if control_plane else f"node/{name}")


def word(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


class Plant:
    """The cluster under construction. `rng` is the stream the first bait drew from, in its order (so
    the tokens of a sensor stay those it served before); each later part draws from its own `fork`."""

    def __init__(self, seed: str, created: datetime, master: str) -> None:
        self.seed, self.created = seed, created
        self.rng = random.Random(seed)
        self.born = kubeproto.stamp((created - CLUSTER_AGE).timestamp())
        self.now = kubeproto.stamp(created.timestamp())
        self.nodes = [NodeInfo(master, MASTER_IP, "10.244.0.0/24", 0)] + [
            NodeInfo(f"worker-{n}", node_ip(n), f"10.244.{n}.0/24", n) for n in range(1, WORKERS + 1)]
        self.objects: list[tuple[str, dict[str, Any]]] = []  # protobuf kinds
        self.writers: dict[str, dict[str, tuple[str, ...] | None]] = {}  # key -> managers, where not the kind's
        self.json_objects: list[tuple[str, bytes]] = []  # stored as JSON by the apiserver
        self.tokens: dict[str, str] = {}
        self.pods: list[dict[str, Any]] = []  # every pod put, for the Services' endpoints
        self.ca = b""

    def fork(self, part: str) -> random.Random:
        return random.Random(f"{self.seed}/bait/{part}")

    def uid(self, rng: random.Random | None = None) -> str:
        return str(uuid.UUID(int=(rng or self.rng).getrandbits(128), version=4))  # the apiserver's are v4

    def suffix(self, n: int, rng: random.Random | None = None) -> str:
        return word(rng or self.rng, n, KUBE_ALNUM)

    def meta(self, name: str, ns: str | None = None, rng: random.Random | None = None,
             **more: Any) -> dict[str, Any]:
        m: dict[str, Any] = {"name": name, **({"namespace": ns} if ns else {}), "uid": self.uid(rng),
                             "creationTimestamp": self.born, **more}
        return dict(sorted(m.items(), key=lambda kv: META_ORDER.index(kv[0])))

    def put(self, key: str, obj: dict[str, Any], writers: dict[str, tuple[str, ...] | None] | None = None) -> None:
        self.objects.append((key, obj))
        if writers:
            self.writers[key] = writers
        if obj["kind"] == "Pod":
            self.pods.append(obj)

    def put_json(self, key: str, obj: dict[str, Any], owners: dict[str, tuple[str, ...] | None],
                 unstructured: bool = False) -> None:
        """As kube-apiserver's JSON serializer writes it: json.Encoder, so a trailing newline; typed
        objects in Go's struct order (the dict's), custom resources (unstructured maps) with sorted keys.
        Only ASCII without <, > or & goes in (Go would escape those as \\u003c...)."""
        obj = kubeproto.managed(obj, self.born, owners)
        text = json.dumps(obj, separators=(",", ":"), sort_keys=unstructured)
        if set(text) & set("<>&") or not text.isascii():
            raise ValueError(f"bait bug: {key} needs Go's JSON escaping")
        self.json_objects.append((key, text.encode() + b"\n"))

    def token(self, value: str, label: str) -> str:
        self.tokens[value] = label
        return value

    def node(self, index: int) -> NodeInfo:
        return self.nodes[index]

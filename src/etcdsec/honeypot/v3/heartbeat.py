"""The background writes of a live Kubernetes control plane, so the store does not look frozen.

A real kube-apiserver's etcd never stands still: each node's lease is renewed every 10 s (the
member's own node, and each other Node the dataset holds under /registry/minions/, up to 16) and
the controller-manager and scheduler leader-election leases every 2 s, so the revision climbs
about once or twice a second, and the apiserver compacts history every 5 minutes. A revision that never moves
(or goes back after a restart) gives a honeypot away. `Heartbeat` computes, from the wall clock,
which of those writes are due; the churn task (churn.py) applies them as they fall due, and the
request path catches up lazily (with a fake clock in tests, and in unwatched per-source namespaces).

It runs only for a Kubernetes-shaped dataset (one with the kube-node-lease namespace), so test
seeds and user seeds without it keep a store that changes only when someone writes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from etcdsec.honeypot.core import kubeproto
from etcdsec.honeypot.core.bait import CLUSTER_AGE, CONTROL_PLANE_UP_S, node_uid, uid_of
from etcdsec.honeypot.core.identity import Identity

MARKER = b"/registry/namespaces/kube-node-lease"
COMPACT_EVERY_S = 300.0  # kube-apiserver --etcd-compaction-interval default
MAX_WRITES_PER_CATCH_UP = 30  # older missed renewals are skipped (their revisions count, as compacted)
MINIONS = b"/registry/minions/"
MAX_WORKER_LEASES = 16  # a seed file's Nodes cannot make the store churn without bound
NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?")


@dataclass
class LeaseKey:
    key: bytes
    period_s: float
    doc: dict[str, object]
    last: float  # wall-clock time of the last renewal written
    manager: str = "kubelet"  # who renews it (its managedFields)


def applies(dataset: list[tuple[bytes, bytes]]) -> bool:
    return any(k == MARKER for k, _ in dataset)


def worker_nodes(dataset: Sequence[tuple[bytes, bytes]], master: str) -> list[str]:
    """The dataset's other Nodes (/registry/minions/<name>): each one's kubelet renews a lease too."""
    names = [k[len(MINIONS):].decode("utf-8", "replace") for k, _ in dataset if k.startswith(MINIONS)]
    return [n for n in names if n != master and NODE_NAME.fullmatch(n)][:MAX_WORKER_LEASES]


class Heartbeat:
    def __init__(self, identity: Identity, now: float, dataset: Sequence[tuple[bytes, bytes]] = ()) -> None:
        node = identity.member_name
        seed = identity.secret_seed or str(identity.cluster_id)
        created = kubeproto.stamp((identity.start_time - CLUSTER_AGE).timestamp(), micro=False)
        # the leaders were elected just after the control plane's last restart
        acquired = kubeproto.stamp(identity.start_time.timestamp() + CONTROL_PLANE_UP_S, micro=True)

        def node_lease(name: str, master: bool) -> LeaseKey:
            return LeaseKey(b"/registry/leases/kube-node-lease/" + name.encode(), 10.0, {
                "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                "metadata": {"name": name, "namespace": "kube-node-lease",
                             "uid": uid_of(seed, "node-lease" if master else f"node-lease/{name}"),
                             "creationTimestamp": created,
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name,
                                                  "uid": node_uid(seed, name, master)}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}}, now)

        self.leases = [
            node_lease(node, True), *(node_lease(name, False) for name in worker_nodes(dataset, node)),
            *(LeaseKey(b"/registry/leases/kube-system/" + name.encode(), 2.0, {
                "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                "metadata": {"name": name, "namespace": "kube-system", "uid": uid_of(seed, name),
                             "creationTimestamp": created},
                "spec": {"holderIdentity": f"{node}_{uid_of(seed, name + '/holder')}", "leaseDurationSeconds": 15,
                         "acquireTime": acquired, "leaseTransitions": 2}}, now, name)
              for name in ("kube-controller-manager", "kube-scheduler")),
        ]
        self.rate = sum(1.0 / lk.period_s for lk in self.leases)  # revisions per second
        self.next_compact = now + COMPACT_EVERY_S
        self.quiet_until = 0.0  # no renewal is due before this wall time (due() runs per request)

    def revisions_since(self, start: float, now: float) -> int:
        """Revisions a cluster running since `start` has made by `now` (restarts keep climbing)."""
        return max(0, int((now - start) * self.rate))

    def initial(self, now: float) -> list[tuple[bytes, bytes]]:
        return [(lk.key, self._value(lk, now)) for lk in self.leases]

    def due(self, now: float) -> tuple[int, list[tuple[bytes, bytes]]]:
        """(renewals skipped, renewals to write in time order) since the last call."""
        if now < self.quiet_until:
            return 0, []
        writes: list[tuple[float, bytes, bytes]] = []
        skipped = 0
        for lk in self.leases:
            n = math.floor((now - lk.last) / lk.period_s)
            if n <= 0:
                continue
            for i in range(n):
                t = lk.last + (i + 1) * lk.period_s
                writes.append((t, lk.key, self._value(lk, t)))
            lk.last += n * lk.period_s
        writes.sort()
        # 1 ms short of the next renewal: float rounding in the floor() above cannot make it due sooner
        self.quiet_until = min((lk.last + lk.period_s for lk in self.leases), default=0.0) - 1e-3
        if len(writes) > MAX_WRITES_PER_CATCH_UP:
            skipped = len(writes) - MAX_WRITES_PER_CATCH_UP
            writes = writes[-MAX_WRITES_PER_CATCH_UP:]
        return skipped, [(k, v) for _, k, v in writes]

    @staticmethod
    def _value(lk: LeaseKey, t: float) -> bytes:
        """The Lease as kube-apiserver stores it (protobuf), renewed at `t`."""
        spec = lk.doc["spec"]
        assert isinstance(spec, dict)
        doc = {**lk.doc, "spec": {**spec, "renewTime": kubeproto.stamp(t, micro=True)}}
        return kubeproto.encode(kubeproto.managed(doc, kubeproto.stamp(t, micro=False), {lk.manager: None}))

"""The background writes of a live Kubernetes control plane, so the store does not look frozen.

A real kube-apiserver's etcd never stands still: the node lease is renewed every 10 s and the
controller-manager and scheduler leader-election leases every 2 s, so the revision climbs about
once a second, and the apiserver compacts history every 5 minutes. A revision that never moves
(or goes back after a restart) gives a honeypot away. `Heartbeat` computes, from the wall clock,
which of those writes are due; the namespace applies them lazily on the next request.

It runs only for a Kubernetes-shaped dataset (one with the kube-node-lease namespace), so test
seeds and user seeds without it keep a store that changes only when someone writes.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from etcdsec.honeypot.core.identity import Identity

MARKER = b"/registry/namespaces/kube-node-lease"
COMPACT_EVERY_S = 300.0  # kube-apiserver --etcd-compaction-interval default
MAX_WRITES_PER_CATCH_UP = 30  # older missed renewals are skipped (their revisions count, as compacted)


@dataclass
class LeaseKey:
    key: bytes
    period_s: float
    doc: dict[str, object]
    last: float  # wall-clock time of the last renewal written


def applies(dataset: list[tuple[bytes, bytes]]) -> bool:
    return any(k == MARKER for k, _ in dataset)


def _uid(seed: str, name: str) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(f"{seed}/{name}".encode()).digest()[:16]))


def _stamp(t: float, micro: bool) -> str:
    dt = datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if micro else dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class Heartbeat:
    def __init__(self, identity: Identity, now: float) -> None:
        node = identity.member_name
        seed = identity.secret_seed or str(identity.cluster_id)
        created = _stamp(identity.start_time.timestamp(), micro=False)
        holder = f"{node}_{_uid(seed, 'holder')}"
        self.leases = [
            LeaseKey(b"/registry/leases/kube-node-lease/" + node.encode(), 10.0, {
                "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                "metadata": {"name": node, "namespace": "kube-node-lease", "uid": _uid(seed, "node-lease"),
                             "creationTimestamp": created,
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node,
                                                  "uid": _uid(seed, "node")}]},
                "spec": {"holderIdentity": node, "leaseDurationSeconds": 40}}, now),
            *(LeaseKey(b"/registry/leases/kube-system/" + name.encode(), 2.0, {
                "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                "metadata": {"name": name, "namespace": "kube-system", "uid": _uid(seed, name),
                             "creationTimestamp": created},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "acquireTime": created,
                         "leaseTransitions": 2}}, now)
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
        doc = json.loads(json.dumps(lk.doc))
        doc["spec"]["renewTime"] = _stamp(t, micro=True)
        return json.dumps(doc, separators=(",", ":")).encode()

"""The background writes of a live Kubernetes control plane, so the store does not look frozen.

A real kube-apiserver's etcd never stands still: each node's lease is renewed every 10 s (the
member's own node, and each other Node the dataset holds under /registry/minions/, up to 16) and
the controller-manager and scheduler leader-election leases every 2 s, so the revision climbs
about once or twice a second, and the apiserver compacts history every 5 minutes. Each kubelet also
writes its Node's status every 5 minutes (nodeStatusReportFrequency, on one of its lease renewals), and
the backup CronJob's runs (core/bait/batch.py) create, complete and delete its Jobs and their pods.
A revision that never moves (or goes back after a restart) gives a honeypot away. `Heartbeat`
computes, from the wall clock, which of those writes are due; the churn task (churn.py) applies
them as they fall due, and the request path catches up lazily (with a fake clock in tests, and in
unwatched per-source namespaces).

It runs only for a Kubernetes-shaped dataset (one with the kube-node-lease namespace), so test
seeds and user seeds without it keep a store that changes only when someone writes.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from etcdsec.honeypot.core import kubeproto
from etcdsec.honeypot.core.bait import CLUSTER_AGE, CONTROL_PLANE_UP_S, batch, node_uid, nodes, uid_of
from etcdsec.honeypot.core.identity import Identity

MARKER = b"/registry/namespaces/kube-node-lease"
COMPACT_EVERY_S = 300.0  # kube-apiserver --etcd-compaction-interval default
MAX_WRITES_PER_CATCH_UP = 30  # older missed renewals are skipped (their revisions count, as compacted)
MINIONS = b"/registry/minions/"
MAX_WORKER_LEASES = 16  # a seed file's Nodes cannot make the store churn without bound
NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?")
NODE_LEASE_EVERY_S = 10.0  # the kubelet's node lease renewal (leaseDuration 40 s / 4)
NODE_STATUS_EVERY_S = 300.0  # the kubelet's nodeStatusReportFrequency, a multiple of the renewal
KEPT_REPORTS = 2  # of a long pause's missed Node reports, only the last ones are written


@dataclass
class LeaseKey:
    key: bytes
    period_s: float
    doc: dict[str, object]
    last: float  # wall-clock time of the last renewal written
    manager: str = "kubelet"  # who renews it (its managedFields)


@dataclass
class NodeStatus:
    key: bytes
    node: tuple[str, str, Any]  # the stored Node, decoded once (kubeproto.decode)
    last: float  # wall time of the last status report written


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
            return LeaseKey(b"/registry/leases/kube-node-lease/" + name.encode(), NODE_LEASE_EVERY_S, {
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
        # Nodes whose kubelet reports: the same as have a lease; each reported on one of its lease's
        # renewals (a phase of its own), within the last NODE_STATUS_EVERY_S
        renewed = {lk.key.rsplit(b"/", 1)[1] for lk in self.leases if lk.period_s == NODE_LEASE_EVERY_S}
        up = identity.start_time.timestamp() + CONTROL_PLANE_UP_S  # nothing is written while it is down
        self.nodes: list[NodeStatus] = []
        for key, value in dataset:
            decoded = kubeproto.decode(value) if key.startswith(MINIONS) and key[len(MINIONS):] in renewed else None
            if decoded is not None and decoded[1] == "Node":
                phase = int.from_bytes(hashlib.sha256(f"{seed}/node-status/".encode() + key).digest()[:4])
                last = now - phase % int(NODE_STATUS_EVERY_S / NODE_LEASE_EVERY_S) * NODE_LEASE_EVERY_S
                if last < up <= now:  # the kubelet's retries got through as soon as the apiserver was back
                    last = now - math.floor((now - up) / NODE_LEASE_EVERY_S) * NODE_LEASE_EVERY_S
                self.nodes.append(NodeStatus(key, decoded, last))
        # the backup CronJob's runs, when the dataset has the CronJob (the Kubernetes bait does)
        self.batch_seed = seed if any(k == batch.CRONJOB_KEY.encode() for k, _ in dataset) else None
        self.born = created
        self._batch: dict[bytes, bytes] = {}
        self._batch_last = now
        self.rate = sum(1.0 / lk.period_s for lk in self.leases) + len(self.nodes) / NODE_STATUS_EVERY_S + \
            (batch.WRITES_PER_RUN / batch.EVERY_S if self.batch_seed else 0.0)  # revisions per second
        self.next_compact = now + COMPACT_EVERY_S
        self.quiet_until = 0.0  # no renewal is due before this wall time (due() runs per request)

    def revisions_since(self, start: float, now: float) -> int:
        """Revisions a cluster running since `start` has made by `now` (restarts keep climbing)."""
        return max(0, int((now - start) * self.rate))

    def initial(self, now: float) -> list[tuple[bytes, bytes]]:
        return [(lk.key, self._value(lk, now)) for lk in self.leases]

    def seeded(self, dataset: Sequence[tuple[bytes, bytes]], now: float) -> list[tuple[bytes, bytes]]:
        """The keys a new namespace starts with: the dataset with its Nodes as last reported and the
        CronJob's objects as they stand at `now`, then the leases."""
        if self.batch_seed is not None:
            self._batch = batch.objects(self.batch_seed, self.born, now)
        fresh = self.held()
        out = [(key, fresh.pop(key, value)) for key, value in dataset]
        return out + sorted(fresh.items()) + self.initial(now)

    def held(self) -> dict[bytes, bytes]:
        """What the Node reports and the CronJob's writes hold now (key -> value)."""
        out = {node.key: nodes.report_at(node.node, node.last) for node in self.nodes}
        out.update(self._batch)
        return out

    def owned(self) -> tuple[bytes, ...]:
        """Key prefixes whose keys only these writes make (the CronJob's Jobs and pods)."""
        return batch.OWNED if self.batch_seed is not None else ()

    def due(self, now: float) -> tuple[int, list[tuple[bytes, bytes | None]]]:
        """(writes skipped, writes in time order since the last call): renewals and reports as
        (key, value), a Job or pod the CronJob's history drops as (key, None)."""
        if now < self.quiet_until:
            return 0, []
        writes: list[tuple[float, bytes, bytes | None]] = []
        skipped = self._node_reports(now, writes) + self._batch_writes(now, writes)
        for lk in self.leases:
            n = math.floor((now - lk.last) / lk.period_s)
            if n <= 0:
                continue
            for i in range(n):
                t = lk.last + (i + 1) * lk.period_s
                writes.append((t, lk.key, self._value(lk, t)))
            lk.last += n * lk.period_s
        writes.sort(key=lambda w: (w[0], w[1]))
        # 1 ms short of the next write: float rounding in the floor() above cannot make it due sooner
        nexts = [lk.last + lk.period_s for lk in self.leases] + [n.last + NODE_STATUS_EVERY_S for n in self.nodes]
        if self.batch_seed is not None:
            nexts.append(next(iter(batch.instants(self.batch_seed, now, now + batch.EVERY_S)), now + 1.0))
        self.quiet_until = min(nexts, default=0.0) - 1e-3
        if len(writes) > MAX_WRITES_PER_CATCH_UP:
            # every key's last write stays (the state a reader sees), then the newest others
            last = {key: i for i, (_, key, _) in enumerate(writes)}
            room = max(0, MAX_WRITES_PER_CATCH_UP - len(last))
            others = [i for i in range(len(writes)) if last[writes[i][1]] != i]
            keep = set(last.values()) | set(others[len(others) - room:] if room else [])
            skipped += len(writes) - len(keep)
            writes = [w for i, w in enumerate(writes) if i in keep]
        return skipped, [(k, v) for _, k, v in writes]

    def _node_reports(self, now: float, writes: list[tuple[float, bytes, bytes | None]]) -> int:
        skipped = 0
        for node in self.nodes:
            n = math.floor((now - node.last) / NODE_STATUS_EVERY_S)
            if n <= 0:
                continue
            skipped += max(0, n - KEPT_REPORTS)
            for i in range(max(0, n - KEPT_REPORTS), n):
                t = node.last + (i + 1) * NODE_STATUS_EVERY_S
                writes.append((t, node.key, nodes.report_at(node.node, t)))
            node.last += n * NODE_STATUS_EVERY_S
        return skipped

    def _batch_writes(self, now: float, writes: list[tuple[float, bytes, bytes | None]]) -> int:
        """The CronJob's objects that changed since the last call, one write per change; a pause longer
        than its history is replayed from the last runs only (the older writes counted, not made)."""
        seed, since = self.batch_seed, self._batch_last
        if seed is None or now <= since:
            return 0
        window = (batch.HISTORY + 2) * batch.EVERY_S
        skipped = 0
        if now - since > window:
            skipped = round((now - window - since) * batch.WRITES_PER_RUN / batch.EVERY_S)
            since = now - window
        prev = self._batch
        for t in batch.instants(seed, since, now):
            state = batch.objects(seed, self.born, t)
            writes.extend((t, key, state.get(key)) for key in sorted(prev.keys() | state.keys())
                          if prev.get(key) != state.get(key))
            prev = state
        self._batch, self._batch_last = prev, now
        return skipped

    @staticmethod
    def _value(lk: LeaseKey, t: float) -> bytes:
        """The Lease as kube-apiserver stores it (protobuf), renewed at `t`."""
        spec = lk.doc["spec"]
        assert isinstance(spec, dict)
        doc = {**lk.doc, "spec": {**spec, "renewTime": kubeproto.stamp(t, micro=True)}}
        return kubeproto.encode(kubeproto.managed(doc, kubeproto.stamp(t, micro=False), {lk.manager: None}))

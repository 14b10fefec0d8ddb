"""A keyspace that looks alive between attackers: the control plane's background writes.

- Leases: `Heartbeat` (heartbeat.py) says which renewals of the kube-controller-manager and
  kube-scheduler leader-election leases (every 2 s) and of the node lease (10 s) are due. The
  request path applies them lazily; this task applies them as they fall due, so a watch on
  /registry/leases/ sees them live, as it would on a real cluster.
- The apiserver's master lease: its endpoint reconciler (--endpoint-reconciler-type=lease) puts
  /registry/masterleases/<its IP> every 10 s on a new 15 s etcd lease, bumping the Endpoints'
  generation, so `etcdctl lease list` changes as on a real control plane.
- Events: a CronJob (prod/db-backup, every 5 minutes; its objects: core/bait/batch.py, written by
  heartbeat.py) leaves the events a real run leaves
  (cronjob and job controllers, scheduler, kubelet) under /registry/events/. Each is attached to
  an etcd lease of 3660 s that kube-apiserver's lease manager shares between the events of one
  minute (--event-ttl 1h + 60 s reuse), so they age out an hour later through lease expiry, one
  revision per lease, as real events do.

`EventChurn` is the sans-IO schedule; `Churn` is one bounded asyncio task per sensor that applies
both to every live namespace through the store's transactions and the lessor, the same write path
client writes take, but with no session: no attacker event is emitted and no per-source counter moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import math
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from etcdsec.honeypot.core import kubeproto
from etcdsec.honeypot.core.bait import CONTROL_PLANE_UP_S, uid_of
from etcdsec.honeypot.core.bait.batch import (
    BOUND,
    CREATED,
    CRONJOB,
    DELETED,
    HISTORY,
    IMAGE,
    NAMESPACE,
    SAW_COMPLETED,
    STARTED,
    run,
)
from etcdsec.honeypot.core.bait.batch import EVERY_S as JOB_EVERY_S
from etcdsec.honeypot.core.identity import Identity
from etcdsec.honeypot.v3.errors import V3Error

if TYPE_CHECKING:
    from etcdsec.honeypot.v3.state import Namespace, V3State

TICK_S = 0.5  # renewals land within half a second of their time
RUN_SPAN_S = 30.0  # a run's events all fall within this after its scheduled time
EVENT_TTL_S = 3600 + 60  # kube-apiserver --event-ttl (1h) + the lease manager's reuse window
LEASE_REUSE_S = 60.0
EVENTS_PREFIX = b"/registry/events/"
MASTERLEASE_EVERY_S, MASTERLEASE_TTL_S = 10.0, 15  # kube-apiserver's EndpointInterval and lease TTL
DEFAULT_APISERVER_IP = "10.0.1.10"


@dataclass(frozen=True)
class EventWrite:
    at: float  # wall time kube-apiserver wrote it
    key: bytes
    value: bytes


class EventChurn:
    """Which events of the CronJob's runs are written by when: deterministic per deployment, so every
    namespace gets the same events and each is encoded once (a new per-source namespace's backfill
    costs store writes, not protobuf encoding)."""

    def __init__(self, identity: Identity, rate: float) -> None:
        self.seed = identity.secret_seed or str(identity.cluster_id)
        self.master = identity.member_name
        # an event's resourceVersion: the revision the keyspace had then (it climbs `rate` a second)
        self.rev_base, self.start, self.rate = identity.revision_base, identity.start_time.timestamp(), rate
        self._encoded: dict[tuple[int, int], EventWrite] = {}  # (run, index) -> write; runs within the TTL

    def _uid(self, name: str) -> str:
        return uid_of(self.seed, name)

    def _run(self, k: int) -> Iterator[tuple[float, dict[str, Any]]]:
        """The events of run `k` (scheduled at k * JOB_EVERY_S): (time, event fields)."""
        r = run(self.seed, k)  # what the objects of the run (core/bait/batch.py) say too
        start, job, pod, node, done = r.start, r.job, r.pod, f"worker-{r.node}", r.done
        old_job = run(self.seed, k - HISTORY).job  # the one the history limit drops
        cron = ("CronJob", CRONJOB, "batch/v1beta1", "")
        jobref = ("Job", job, "batch/v1", "")
        podref = ("Pod", pod, "v1", "")
        ctr = ("Pod", pod, "v1", f"spec.containers{{{CRONJOB}}}")
        kubelet = {"component": "kubelet", "host": node}
        yield start, {"ref": cron, "reason": "SuccessfulCreate", "message": f"Created job {job}",
                      "source": {"component": "cronjob-controller"}}
        yield start + CREATED, {"ref": jobref, "reason": "SuccessfulCreate", "message": f"Created pod: {pod}",
                             "source": {"component": "job-controller"}}
        yield start + BOUND, {"ref": podref, "reason": "Scheduled", "scheduler": True,
                             "message": f"Successfully assigned {NAMESPACE}/{pod} to {node}"}
        yield start + 1.4, {"ref": ctr, "reason": "Pulled", "source": kubelet,
                            "message": f'Container image "{IMAGE}" already present on machine'}
        yield start + 1.5, {"ref": ctr, "reason": "Created", "message": f"Created container {CRONJOB}",
                            "source": kubelet}
        yield start + STARTED, {"ref": ctr, "reason": "Started", "message": f"Started container {CRONJOB}",
                            "source": kubelet}
        yield done, {"ref": jobref, "reason": "Completed", "message": "Job completed",
                     "source": {"component": "job-controller"}}
        yield done + SAW_COMPLETED, {"ref": cron, "reason": "SawCompletedJob",
                                     "source": {"component": "cronjob-controller"},
                                     "message": f"Saw completed job: {job}, status: Complete"}
        yield done + DELETED, {"ref": cron, "reason": "SuccessfulDelete", "message": f"Deleted job {old_job}",
                            "source": {"component": "cronjob-controller"}}

    def _event(self, at: float, spec: dict[str, Any], rv: int) -> tuple[bytes, dict[str, Any]]:
        kind, name, api, field_path = spec["ref"]
        nanos = math.ceil(at * 1e6) * 1000 + int(hashlib.sha256(f"{name}{at}".encode()).hexdigest()[:3], 16) % 1000
        ev_name = f"{name}.{nanos:x}"  # client-go's recorder: <object>.<UnixNano in hex>
        ref = {"kind": kind, "namespace": NAMESPACE, "name": name, "uid": self._uid(name), "apiVersion": api,
               "resourceVersion": str(rv), **({"fieldPath": field_path} if field_path else {})}
        obj: dict[str, Any] = {"kind": "Event", "apiVersion": "v1",
                               "metadata": {"name": ev_name, "namespace": NAMESPACE, "uid": self._uid(ev_name),
                                            "creationTimestamp": kubeproto.stamp(at)},
                               "involvedObject": ref, "reason": spec["reason"], "message": spec["message"]}
        if spec.get("scheduler"):  # kube-scheduler writes through events/v1: eventTime, no counts
            obj.update({"type": "Normal", "eventTime": kubeproto.stamp(at, micro=True), "action": "Binding",
                        "reportingComponent": "default-scheduler",
                        "reportingInstance": f"default-scheduler-{self.master}"})
        else:
            when = kubeproto.stamp(at)
            obj.update({"source": spec["source"], "firstTimestamp": when, "lastTimestamp": when, "count": 1,
                        "type": "Normal"})
        component = "kube-scheduler" if spec.get("scheduler") else spec["source"]["component"]
        manager = component if component in ("kubelet", "kube-scheduler") else "kube-controller-manager"
        key = EVENTS_PREFIX + f"{NAMESPACE}/{ev_name}".encode()
        return key, kubeproto.managed(obj, kubeproto.stamp(at), {manager: None})

    def between(self, since: float, now: float) -> list[EventWrite]:
        """Events written after `since` and by `now`, oldest first; never older than the TTL."""
        since = max(since, now - EVENT_TTL_S)
        out: list[EventWrite] = []
        if now <= since:
            return out
        first = math.floor((since - RUN_SPAN_S) / JOB_EVERY_S)
        for k in range(first, math.floor(now / JOB_EVERY_S) + 1):
            for i, (at, spec) in enumerate(self._run(k)):
                if since < at <= now:
                    write = self._encoded.get((k, i))
                    if write is None:
                        rv = max(1, self.rev_base + int((at - self.start) * self.rate))
                        key, obj = self._event(at, spec, rv)
                        write = self._encoded[(k, i)] = EventWrite(at, key, kubeproto.encode(obj))
                    out.append(write)
        oldest = math.floor((now - EVENT_TTL_S - RUN_SPAN_S) / JOB_EVERY_S)
        for old in [ki for ki in self._encoded if ki[0] < oldest]:  # bounded: about 13 runs of 9 events
            del self._encoded[old]
        out.sort(key=lambda w: w.at)
        return out


def apiserver_ip(identity: Identity) -> str:
    """The apiserver's address: this member's, as on a stacked kubeadm control plane, unless that is
    a name, loopback or unspecified (then a private one)."""
    for url in identity.client_urls:
        try:
            ip = ipaddress.ip_address(urlsplit(url).hostname or "")
        except ValueError:
            continue
        if not (ip.is_loopback or ip.is_unspecified):
            return str(ip)
    return DEFAULT_APISERVER_IP


def newest_event(ns: Namespace) -> float:
    """Wall time of the newest event in the keyspace (its name ends in .<UnixNano hex>), 0 if none:
    a keyspace kept across a restart is not backfilled twice."""
    newest = 0
    for kv in ns.store.range(EVENTS_PREFIX, EVENTS_PREFIX[:-1] + b"0"):
        with contextlib.suppress(ValueError):
            newest = max(newest, int(kv.key.rsplit(b".", 1)[-1], 16))
    return newest / 1e9


@dataclass
class _Progress:
    """One namespace's place in the event schedule, and the etcd lease its recent events share."""

    written_until: float  # wall time
    lease_id: int = 0
    granted_at: float = -math.inf  # wall time
    master_generation: int = 0  # of the master lease last written


class Churn:
    """The per-sensor task: every TICK_S, due lease renewals and events into each live namespace."""

    def __init__(self, state: V3State) -> None:
        self.state = state
        self.schedule: EventChurn | None = None
        ident = state.ctx.identity
        self.master_key = b"/registry/masterleases/" + apiserver_ip(ident).encode()
        self.master_since = ident.start_time.timestamp() + CONTROL_PLANE_UP_S  # the apiserver's start
        self._master_value: tuple[int, bytes] = (0, b"")
        self._progress: weakref.WeakKeyDictionary[Namespace, _Progress] = weakref.WeakKeyDictionary()
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0

    def tick(self) -> None:
        wall, mono = self.state.wall_clock(), self.state.clock()
        for ns in self.state.live_namespaces():
            hb = ns.heartbeat
            if hb is None:  # not a Kubernetes-shaped keyspace: nothing writes to it on its own
                continue
            if self.schedule is None:
                self.schedule = EventChurn(self.state.ctx.identity, hb.rate)
            progress = self._progress.get(ns)
            if progress is None:  # backfill the last hour, after the newest event the keyspace already has
                newest = min(newest_event(ns), wall)  # a name from the future is a client's
                progress = self._progress[ns] = _Progress(max(wall - EVENT_TTL_S, newest))
            self._master_lease(ns, progress, wall, mono)  # renewed before its old lease is let expire
            ns.expire(mono)
            # with a namespace per source, unwatched ones catch up lazily on their next request
            if (not self.state.ctx.namespace_writes or ns.hub.streams) and \
                    (wall >= hb.quiet_until or wall >= hb.next_compact):
                ns.beat(wall)
            for write in self.schedule.between(progress.written_until, wall):
                if not self._put_event(ns, progress, write, wall, mono):
                    break
            progress.written_until = wall
        self.ticks += 1

    @staticmethod
    def _put_event(ns: Namespace, progress: _Progress, write: EventWrite, wall: float, mono: float) -> bool:
        age = wall - write.at
        try:
            if ns.lessor.get(progress.lease_id) is None or write.at - progress.granted_at >= LEASE_REUSE_S:
                # granted when the event was written: it expires EVENT_TTL_S after that
                progress.lease_id = ns.lessor.grant(0, EVENT_TTL_S, mono - age).id
                progress.granted_at = write.at
                ns.raft_index += 1  # a LeaseGrant is a raft entry, not a revision
            txn = ns.store.txn()
            txn.put(write.key, write.value, progress.lease_id)
        except V3Error:  # store or lease caps reached: the cluster goes quiet, the sensor goes on
            return False
        txn.commit()
        ns.lessor.attach(progress.lease_id, write.key)
        return True

    def _master_lease(self, ns: Namespace, progress: _Progress, wall: float, mono: float) -> None:
        """The reconciler's latest due write only (one missed while the sensor was busy is skipped)."""
        generation = math.floor((wall - self.master_since) / MASTERLEASE_EVERY_S)
        if generation <= progress.master_generation:
            return
        if self._master_value[0] != generation:  # the same object for every namespace: encoded once
            # written below the REST layer: no name, uid, creationTimestamp or managedFields
            self._master_value = (generation, kubeproto.encode({
                "kind": "Endpoints", "apiVersion": "v1", "metadata": {"generation": generation},
                "subsets": [{"addresses": [{"ip": self.master_key.rsplit(b"/", 1)[1].decode()}]}]}))
        age = wall - (self.master_since + generation * MASTERLEASE_EVERY_S)
        try:
            lease = ns.lessor.grant(0, MASTERLEASE_TTL_S, mono - age)
            ns.raft_index += 1
            txn = ns.store.txn()
            prev = txn.put(self.master_key, self._master_value[1], lease.id)
        except V3Error:
            return
        txn.commit()
        if prev is not None and prev.lease != lease.id:
            ns.lessor.detach(prev.lease, self.master_key)  # the old lease expires 5 s later, holding nothing
        ns.lessor.attach(lease.id, self.master_key)
        progress.master_generation = generation

    async def _run(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(TICK_S)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="etcdsec-churn")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

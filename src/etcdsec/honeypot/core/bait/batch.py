"""The backup CronJob (prod/db-backup, batch/v1beta1: its storage version in 1.21), its Jobs and their
pods, as a function of the clock: `run(seed, k)` is what run k did and when (the events churn.py
writes tell the same story), `objects(seed, born, t)` the keys they leave at wall time `t`, and
`instants` when that set changes. heartbeat.py writes the changes as they fall due.

The story of one run, as the cronjob (v2) and job controllers, the scheduler and the kubelet write it:
the Job and the CronJob's active list at its start; its pod created, bound, running, succeeded; the
Job complete; the CronJob's lastSuccessfulTime; then the Job beyond successfulJobsHistoryLimit
deleted, and its pod with it (the garbage collector)."""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from typing import Any

from etcdsec.honeypot.core import kubeproto
from etcdsec.honeypot.core.bait.plant import KUBE_ALNUM, WORKERS, Plant, node_ip, pod_ip, uid_of

NAMESPACE, CRONJOB, IMAGE = "prod", "db-backup", "registry.internal.example/prod/db-backup:1.4.2"
SCHEDULE, EVERY_S = "*/5 * * * *", 300.0
HISTORY = 3  # successfulJobsHistoryLimit
KCM = "kube-controller-manager"
CRONJOB_KEY = f"/registry/cronjobs/{NAMESPACE}/{CRONJOB}"
OWNED = (f"/registry/jobs/{NAMESPACE}/{CRONJOB}-".encode(), f"/registry/pods/{NAMESPACE}/{CRONJOB}-".encode())
CRON_WRITERS: dict[str, tuple[str, ...] | None] = {"kubectl-client-side-apply": ("metadata", "spec"), KCM: ("status",)}
# When, after a run's start (or its end), each write lands; churn.py's events of the run fall then too
CREATED, BOUND, STARTED = 0.03, 0.06, 1.9
SUCCEEDED, SAW_COMPLETED, DELETED, COLLECTED = -0.05, 0.4, 0.45, 0.5  # after `done`


@dataclass(frozen=True)
class Run:
    k: int  # scheduled at k * EVERY_S
    start: float  # the controller created the Job
    job: str
    pod: str
    node: int  # the worker its pod ran on
    done: float  # the Job completed


@functools.lru_cache(maxsize=64)
def run(seed: str, k: int) -> Run:
    """Run `k`: deterministic per deployment, so every namespace (and the events) tell one story."""
    rng = random.Random(f"{seed}/run/{k}")
    start = k * EVERY_S + rng.uniform(0.01, 0.3)
    job = f"{CRONJOB}-{int(k * EVERY_S) // 60}"  # CronJob v2: minutes since the epoch
    pod = f"{job}-{''.join(rng.choice(KUBE_ALNUM) for _ in range(5))}"
    node = rng.randint(1, WORKERS)
    return Run(k, start, job, pod, node, start + rng.uniform(8.0, 19.0))


def _kept(seed: str, t: float) -> tuple[list[Run], int, int]:
    """The runs started by `t`, and the newest run whose Job, and whose pod, are already deleted:
    each finished run takes the one HISTORY runs back with it."""
    last = math.floor(t / EVERY_S)
    runs = [r for r in (run(seed, k) for k in range(last - HISTORY - 1, last + 1)) if r.start <= t]

    def gone(after: float) -> int:
        finished = [r.k for r in runs if r.done + after <= t]
        return finished[-1] - HISTORY if finished else last - HISTORY - 2

    return runs, gone(DELETED), gone(COLLECTED)


def objects(seed: str, born: str, t: float) -> dict[bytes, bytes]:
    """The CronJob, its Jobs and their pods as stored at wall time `t` (key -> value)."""
    runs, jobs_gone, pods_gone = _kept(seed, t)
    out = {CRONJOB_KEY.encode(): _cronjob(seed, born, *_cron_state(seed, t))}
    for r in runs:
        if r.k > jobs_gone:
            out[f"/registry/jobs/{NAMESPACE}/{r.job}".encode()] = _job(seed, r, r.done <= t)
        if r.k > pods_gone and t >= r.start + CREATED:
            out[f"/registry/pods/{NAMESPACE}/{r.pod}".encode()] = _pod(seed, r, _pod_phase(r, t))
    return out


def instants(seed: str, since: float, until: float) -> list[float]:
    """Times in (since, until] at which `objects` changes, oldest first."""
    out = []
    for k in range(math.floor(since / EVERY_S) - 1, math.floor(until / EVERY_S) + 1):
        r = run(seed, k)
        for at in (r.start, r.start + CREATED, r.start + BOUND, r.start + STARTED, r.done + SUCCEEDED, r.done,
                   r.done + SAW_COMPLETED, r.done + DELETED, r.done + COLLECTED):
            if since < at <= until:
                out.append(at)
    return sorted(out)


WRITES_PER_RUN = 10  # the Job and the CronJob at its start, then one write at each later instant


def _cron_state(seed: str, t: float) -> tuple[int, int | None, int]:
    """(the run last scheduled, the run active or None, the run last seen succeeded) at `t`."""
    last = math.floor(t / EVERY_S)
    started = [r for r in (run(seed, k) for k in range(last - 2, last + 1)) if r.start <= t]
    active = next((r.k for r in started if t < r.done + SAW_COMPLETED), None)
    seen = [r.k for r in started if r.done + SAW_COMPLETED <= t]
    return started[-1].k, active, seen[-1]


def _pod_phase(r: Run, t: float) -> str:
    if t < r.start + BOUND:
        return "Pending"
    if t < r.start + STARTED:
        return "Bound"
    return "Running" if t < r.done + SUCCEEDED else "Succeeded"


def _owner(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": kind, "name": name, "uid": uid, "controller": True,
            "blockOwnerDeletion": True}


def _pod_spec() -> dict[str, Any]:
    def secret(name: str, secret: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    container = {"name": CRONJOB, "image": IMAGE, "args": ["--target=s3://prod-db-backups/payments"],
                 "env": [{"name": "PGHOST", "value": "payments-db.prod.svc.cluster.local"},
                         secret("PGUSER", "payments-db", "username"), secret("PGPASSWORD", "payments-db", "password"),
                         secret("AWS_ACCESS_KEY_ID", "backup-s3", "AWS_ACCESS_KEY_ID"),
                         secret("AWS_SECRET_ACCESS_KEY", "backup-s3", "AWS_SECRET_ACCESS_KEY")],
                 "resources": {}, "terminationMessagePath": "/dev/termination-log",
                 "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}
    return {"containers": [container], "restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default", "serviceAccount": "default",
            "securityContext": {}, "schedulerName": "default-scheduler"}


def _job_spec(labels: dict[str, str] | None) -> dict[str, Any]:
    """A Job's spec as defaulted (parallelism, completions, backoffLimit...), or, without the labels the
    job controller adds, the CronJob's template of it (a JobSpec in a CronJob gets no Job defaults)."""
    if labels is None:
        return {"template": {"metadata": {}, "spec": _pod_spec()}}
    return {"parallelism": 1, "completions": 1, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": _pod_spec()}, "backoffLimit": 6,
            "completionMode": "NonIndexed"}


def put_all(plant: Plant) -> None:
    """The CronJob as it stood when the bait was made: its presence tells heartbeat.py to run it."""
    obj, _ = _cronjob_obj(plant.seed, plant.born, *_cron_state(plant.seed, plant.created.timestamp()))
    plant.put(CRONJOB_KEY, obj, CRON_WRITERS)


@functools.lru_cache(maxsize=64)
def _cronjob(seed: str, born: str, scheduled: int, active: int | None, succeeded: int) -> bytes:
    obj, when = _cronjob_obj(seed, born, scheduled, active, succeeded)
    return kubeproto.encode(kubeproto.managed(obj, when, CRON_WRITERS))


def _cronjob_obj(seed: str, born: str, scheduled: int, active: int | None,
                 succeeded: int) -> tuple[dict[str, Any], str]:
    status: dict[str, Any] = {}
    if active is not None:
        r = run(seed, active)
        status["active"] = [{"kind": "Job", "namespace": NAMESPACE, "name": r.job, "uid": uid_of(seed, r.job),
                             "apiVersion": "batch/v1"}]
    status["lastScheduleTime"] = kubeproto.stamp(scheduled * EVERY_S)
    status["lastSuccessfulTime"] = kubeproto.stamp(run(seed, succeeded).done)
    obj = {"kind": "CronJob", "apiVersion": "batch/v1beta1",
           "metadata": {"name": CRONJOB, "namespace": NAMESPACE, "uid": uid_of(seed, CRONJOB), "generation": 1,
                        "creationTimestamp": born, "labels": {"app": CRONJOB}},
           "spec": {"schedule": SCHEDULE, "concurrencyPolicy": "Forbid", "suspend": False,
                    "jobTemplate": {"metadata": {}, "spec": _job_spec(None)}, "successfulJobsHistoryLimit": HISTORY,
                    "failedJobsHistoryLimit": 1},
           "status": status}
    # the controller's last status write: the active run's start, or the last run's completion seen
    return obj, kubeproto.stamp(run(seed, active).start if active is not None
                                else run(seed, succeeded).done + SAW_COMPLETED)


def _labels(seed: str, r: Run) -> dict[str, str]:
    return {"controller-uid": uid_of(seed, r.job), "job-name": r.job}


@functools.lru_cache(maxsize=64)
def _job(seed: str, r: Run, complete: bool) -> bytes:
    uid = uid_of(seed, r.job)
    status: dict[str, Any] = {"startTime": kubeproto.stamp(r.start)}
    if complete:
        done = kubeproto.stamp(r.done)
        status = {"conditions": [{"type": "Complete", "status": "True", "lastProbeTime": done,
                                  "lastTransitionTime": done}], **status, "completionTime": done, "succeeded": 1}
    else:
        status["active"] = 1
    obj = {"kind": "Job", "apiVersion": "batch/v1",
           "metadata": {"name": r.job, "namespace": NAMESPACE, "uid": uid,
                        "creationTimestamp": kubeproto.stamp(r.start), "labels": _labels(seed, r),
                        "ownerReferences": [_owner("CronJob", CRONJOB, uid_of(seed, CRONJOB))]},
           "spec": _job_spec(_labels(seed, r)), "status": status}
    return kubeproto.encode(kubeproto.managed(obj, kubeproto.stamp(r.done if complete else r.start), {KCM: None}))


@functools.lru_cache(maxsize=64)
def _pod(seed: str, r: Run, phase: str) -> bytes:
    ip = pod_ip(r.node, random.Random(f"{seed}/run/{r.k}/ip").randint(2, 250))
    spec = _pod_spec()
    status: dict[str, Any] = {"phase": "Pending", "qosClass": "BestEffort"}
    if phase != "Pending":
        spec["nodeName"] = f"worker-{r.node}"  # the scheduler's binding
    if phase in ("Running", "Succeeded"):  # the kubelet's status
        status = {"phase": phase, "hostIP": node_ip(r.node), "podIP": ip, "podIPs": [{"ip": ip}],
                  "startTime": kubeproto.stamp(r.start + BOUND), "qosClass": "BestEffort"}
    obj = {"kind": "Pod", "apiVersion": "v1",
           "metadata": {"name": r.pod, "generateName": f"{r.job}-", "namespace": NAMESPACE, "uid": uid_of(seed, r.pod),
                        "creationTimestamp": kubeproto.stamp(r.start + CREATED), "labels": _labels(seed, r),
                        "ownerReferences": [_owner("Job", r.job, uid_of(seed, r.job))]},
           "spec": {**spec, "priority": 0, "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority"},
           "status": status}
    at = {"Pending": r.start + CREATED, "Bound": r.start + BOUND, "Running": r.start + STARTED,
          "Succeeded": r.done + SUCCEEDED}[phase]
    writers: dict[str, tuple[str, ...] | None] = {KCM: ("metadata", "spec")}
    if phase in ("Running", "Succeeded"):
        writers["kubelet"] = ("status",)
    return kubeproto.encode(kubeproto.managed(obj, kubeproto.stamp(at), writers))

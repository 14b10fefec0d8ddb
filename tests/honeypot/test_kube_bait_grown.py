"""What the bait grew to hold, as an attacker dumps it with real etcdctl 3.5: local-path storage (a
StorageClass, PersistentVolumes bound to their claims), ingress-nginx (IngressClass, Ingresses under
/registry/ingress/ with cert-manager's TLS Secrets, NetworkPolicies), the backup CronJob with its Jobs
and their pods as the clock has them; decoded by the field numbers of k8s.io/api's generated.proto
(tests/support/k8swire.py). With the clock under test control: Nodes whose kubelet reports status
every 5 minutes on a lease renewal, and the CronJob's history moving on run by run."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from etcdsec.honeypot.core.bait import CONTROL_PLANE_UP_S, kubernetes_bait
from etcdsec.honeypot.sensor import Sensor, SensorConfig
from etcdsec.honeypot.v3.heartbeat import MAX_WRITES_PER_CATCH_UP, NODE_STATUS_EVERY_S
from etcdsec.honeypot.v3.state import Namespace, V3State
from etcdsec.proto import etcd_v3_pb2 as pb
from tests.honeypot.v3.conftest import make_ctx, session
from tests.support import k8swire as W
from tests.support.harness import BackgroundSensor
from tests.support.kube_sensor import ctl, dump, grown_sensor

META_OWNERS, META_LABELS, META_FINALIZERS = 13, 11, 14  # ObjectMeta (meta/v1 generated.proto)
JOB_NAME = re.compile(r"^db-backup-(\d+)$")


@pytest.fixture(scope="module")
def hp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundSensor]:
    with grown_sensor(tmp_path_factory.mktemp("kube-bait-grown"), "/registry/events/") as sensor:
        yield sensor


@pytest.fixture(scope="module")
def kvs(hp: BackgroundSensor) -> dict[str, bytes]:
    return dump(hp, "/registry/")[1]


def obj(kvs: dict[str, bytes], key: str, kind: str) -> bytes:
    api, got, raw, _ = W.envelope(kvs[key])
    assert got == kind and (api, kind) == W.LAYOUT[W.split_key(key)[0]][:2], key
    return raw


def uid(raw: bytes) -> str:
    return W.text(W.metadata(raw), W.META_UID)


def owner(raw: bytes) -> tuple[str, str, str]:
    (ref,) = W.messages(W.metadata(raw), META_OWNERS)
    return W.text(ref, 1), W.text(ref, 3), W.text(ref, 4)


def sub(raw: bytes, *numbers: int) -> bytes:
    value = W.path(raw, *numbers)
    assert isinstance(value, bytes), numbers
    return value


def test_etcdctl_lists_them_where_kube_apiserver_keeps_them(hp: BackgroundSensor) -> None:
    def keys(prefix: str) -> list[str]:
        code, out = ctl(hp.addr, "get", "--prefix", prefix, "--keys-only")
        assert code == 0, out
        return [line for line in out.decode().splitlines() if line]

    assert keys("/registry/ingress/") == ["/registry/ingress/monitoring/grafana", "/registry/ingress/prod/shop"]
    assert keys("/registry/ingresses/") == []  # networking.k8s.io kept extensions/v1beta1's prefix
    assert keys("/registry/ingressclasses/") == ["/registry/ingressclasses/nginx"]
    assert keys("/registry/storageclasses/") == ["/registry/storageclasses/local-path"]
    assert keys("/registry/persistentvolumeclaims/") == [
        "/registry/persistentvolumeclaims/monitoring/grafana",
        "/registry/persistentvolumeclaims/monitoring/prometheus-data-prometheus-0"]
    volumes = keys("/registry/persistentvolumes/")
    assert len(volumes) == 2 and all(re.fullmatch(r"/registry/persistentvolumes/pvc-[0-9a-f-]{36}", v)
                                     for v in volumes)
    assert keys("/registry/networkpolicies/") == [
        "/registry/networkpolicies/prod/allow-api-from-ingress-nginx",
        "/registry/networkpolicies/prod/allow-from-ingress-nginx",
        "/registry/networkpolicies/prod/default-deny-ingress"]
    assert keys("/registry/cronjobs/") == ["/registry/cronjobs/prod/db-backup"]
    jobs = keys("/registry/jobs/")
    assert 3 <= len(jobs) <= 4 and all(JOB_NAME.match(j.rsplit("/", 1)[1]) for j in jobs)
    assert keys("/registry/volumeattachments/") == []  # local-path is no CSI driver


def test_every_claim_is_bound_to_the_volume_provisioned_for_it(kvs: dict[str, bytes]) -> None:
    sc = obj(kvs, "/registry/storageclasses/local-path", "StorageClass")
    assert (W.text(sc, W.SC_PROVISIONER), W.text(sc, W.SC_RECLAIM), W.text(sc, W.SC_BINDING)) == \
        ("rancher.io/local-path", "Delete", "WaitForFirstConsumer")
    pods = {W.split_key(k)[2]: W.envelope(v)[2] for k, v in kvs.items() if k.startswith("/registry/pods/monitoring/")}
    for key in (k for k in kvs if k.startswith("/registry/persistentvolumeclaims/")):
        _, namespace, name = W.split_key(key)
        claim = obj(kvs, key, "PersistentVolumeClaim")
        spec, status = sub(claim, 2), sub(claim, 3)
        volume_name = W.text(spec, W.PVC_VOLUME_NAME)
        assert volume_name == f"pvc-{uid(claim)}" and W.text(spec, W.PVC_CLASS) == "local-path"
        assert W.text(status, W.PVC_PHASE) == "Bound"
        requested = W.string_map(sub(spec, W.PVC_RESOURCES), W.RESOURCES_REQUESTS)["storage"]
        assert W.string_map(status, W.PVC_CAPACITY)["storage"] == requested
        assert W.messages(W.metadata(claim), META_FINALIZERS) == [b"kubernetes.io/pvc-protection"]
        volume = obj(kvs, f"/registry/persistentvolumes/{volume_name}", "PersistentVolume")
        pv = sub(volume, 2)
        ref = sub(pv, W.PV_CLAIM_REF)
        assert (W.text(ref, 1), W.text(ref, 2), W.text(ref, 3), W.text(ref, 4)) == \
            ("PersistentVolumeClaim", namespace, name, uid(claim))
        assert W.text(pv, W.PV_CLASS) == "local-path" and W.string_map(pv, W.PV_CAPACITY)["storage"] == requested
        assert W.text(sub(pv, W.PV_SOURCE, W.SOURCE_HOST_PATH), W.HOST_PATH_PATH) == \
            f"/opt/local-path-provisioner/{volume_name}_{namespace}_{name}"
        requirement = sub(pv, W.PV_AFFINITY, 1, 1, 1)  # required.nodeSelectorTerms[0].matchExpressions[0]
        node = W.messages(requirement, 3)[0].decode()
        assert W.text(requirement, 1) == "kubernetes.io/hostname" and f"/registry/minions/{node}" in kvs
        annotations = W.string_map(W.metadata(claim), W.META_ANNOTATIONS)
        assert annotations["volume.kubernetes.io/selected-node"].decode() == node
        # the volume sits on the node of the pod that mounts the claim
        (pod,) = [p for p in pods.values() if any(
            W.text(sub(v, W.VOLUME_SOURCE, W.SOURCE_CLAIM), W.CLAIM_NAME) == name
            for v in W.messages(sub(p, 2), W.POD_VOLUMES))]
        assert W.text(sub(pod, 2), 10) == node
        (volume_entry,) = [v for v in W.messages(sub(pod, 2), W.POD_VOLUMES)]
        (container,) = W.messages(sub(pod, 2), W.POD_CONTAINERS)
        (mount,) = W.messages(container, W.CONTAINER_MOUNTS)
        assert W.text(mount, W.MOUNT_NAME) == W.text(volume_entry, W.VOLUME_NAME) and W.text(mount, W.MOUNT_PATH)
    # prometheus' claim comes from its StatefulSet's claim template: <template>-<pod>
    sts = sub(obj(kvs, "/registry/statefulsets/monitoring/prometheus", "StatefulSet"), 2)
    (template,) = W.messages(sts, W.STS_CLAIM_TEMPLATES)
    assert f"/registry/persistentvolumeclaims/monitoring/{W.text(W.metadata(template), W.META_NAME)}-prometheus-0" \
        in kvs


def test_ingresses_route_to_services_over_tls_secrets_that_hold_their_certificates(kvs: dict[str, bytes]) -> None:
    klass = obj(kvs, "/registry/ingressclasses/nginx", "IngressClass")
    assert W.text(sub(klass, 2), W.CLASS_CONTROLLER) == "k8s.io/ingress-nginx"
    controller_nodes = {W.text(sub(W.envelope(v)[2], 3), 5) for k, v in kvs.items()
                        if k.startswith("/registry/pods/ingress-nginx/ingress-nginx-controller-")}
    assert len(controller_nodes) >= 1
    for key in (k for k in kvs if k.startswith("/registry/ingress/")):
        _, namespace, _ = W.split_key(key)
        ingress = obj(kvs, key, "Ingress")
        spec = sub(ingress, 2)
        assert W.text(spec, W.ING_CLASS) == "nginx"
        ((rule,),) = [W.messages(spec, W.ING_RULES)]
        host = W.text(rule, W.RULE_HOST)
        for path in W.messages(sub(rule, W.RULE_VALUE, W.VALUE_HTTP), W.HTTP_PATHS):
            backend = sub(path, W.PATH_BACKEND, W.BACKEND_SERVICE)
            service = obj(kvs, f"/registry/services/specs/{namespace}/{W.text(backend, W.SERVICE_NAME)}", "Service")
            ports = [W.first(p, 3) for p in W.messages(sub(service, 2), 1)]  # ServicePort.port
            assert W.path(backend, W.SERVICE_PORT, W.PORT_NUMBER) in ports and W.text(path, W.PATH_TYPE) == "Prefix"
        ((tls,),) = [W.messages(spec, W.ING_TLS)]
        assert W.messages(tls, W.TLS_HOSTS) == [host.encode()]
        secret = obj(kvs, f"/registry/secrets/{namespace}/{W.text(tls, W.TLS_SECRET)}", "Secret")
        assert W.text(secret, 3) == "kubernetes.io/tls"
        data = W.string_map(secret, 2)
        cert = x509.load_pem_x509_certificate(data["tls.crt"])
        assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName) == [host]
        assert load_pem_private_key(data["tls.key"], None).public_key() == cert.public_key()  # a matching pair
        lb = [W.text(i, W.LB_IP) for i in W.messages(sub(ingress, 3, W.ING_LB), W.LB_INGRESS)]
        assert set(lb) == controller_nodes  # the controller reports the nodes it runs on
    deny = sub(obj(kvs, "/registry/networkpolicies/prod/default-deny-ingress", "NetworkPolicy"), 2)
    assert W.first(deny, W.NP_POD_SELECTOR) == b"" and W.messages(deny, W.NP_TYPES) == [b"Ingress"]
    allow = sub(obj(kvs, "/registry/networkpolicies/prod/allow-from-ingress-nginx", "NetworkPolicy"), 2)
    (peer,) = W.messages(W.messages(allow, W.NP_INGRESS)[0], W.RULE_FROM)
    namespaces = W.string_map(sub(peer, W.PEER_NAMESPACES), W.SELECTOR_MATCH_LABELS)
    assert namespaces == {"kubernetes.io/metadata.name": b"ingress-nginx"}
    assert "/registry/namespaces/ingress-nginx" in kvs


def test_the_cronjobs_jobs_and_pods_are_those_of_its_recent_runs(hp: BackgroundSensor) -> None:
    before = time.time()
    _, kvs = dump(hp, "/registry/")
    cron = obj(kvs, "/registry/cronjobs/prod/db-backup", "CronJob")
    spec, status = sub(cron, 2), sub(cron, 3)
    assert W.text(spec, W.CRON_SCHEDULE) == "*/5 * * * *" and W.first(spec, W.CRON_HISTORY) == 3
    scheduled = W.seconds(W.first(status, W.CRON_SCHEDULED))
    assert scheduled % 300 == 0 and before - 300 - 30 < scheduled <= time.time()  # the last run: due, on time
    jobs = {k: obj(kvs, k, "Job") for k in kvs if k.startswith("/registry/jobs/")}
    minutes = sorted(int(JOB_NAME.match(W.split_key(k)[2]).group(1)) for k in jobs)  # type: ignore[union-attr]
    assert minutes[-1] * 60 == scheduled and all(b - a == 5 for a, b in itertools.pairwise(minutes))
    done = 0
    for key, job in jobs.items():
        assert owner(job) == ("CronJob", "db-backup", uid(cron))
        job_status = sub(job, 3)
        if W.first(job_status, W.JOB_SUCCEEDED) == 1:
            done += 1
            ((condition,),) = [W.messages(job_status, W.JOB_CONDITIONS)]
            assert (W.text(condition, 1), W.text(condition, 2)) == ("Complete", "True")
            assert W.seconds(W.first(job_status, W.JOB_START)) <= W.seconds(W.first(job_status, W.JOB_COMPLETION))
        pods = [W.envelope(v)[2] for k, v in kvs.items() if k.startswith(f"/registry/pods/prod/{W.split_key(key)[2]}-")]
        assert len(pods) <= 1
        for pod in pods:
            assert owner(pod) == ("Job", W.split_key(key)[2], uid(job))
            assert W.string_map(W.metadata(pod), META_LABELS)["controller-uid"].decode() == uid(job)
    assert done >= 3 and len(jobs) - done <= 1  # the history limit's three, and the run in progress
    names = {W.split_key(k)[2] for k in jobs}
    created = {W.text(W.envelope(v)[2], 4).removeprefix("Created job ") for k, v in kvs.items()
               if k.startswith("/registry/events/prod/db-backup.")}
    assert names <= created  # the events of the same runs name the same Jobs


def test_the_new_credentials_are_honeytokens_that_name_themselves(hp: BackgroundSensor, kvs: dict[str, bytes]) -> None:
    key_pem = W.string_map(obj(kvs, "/registry/secrets/prod/shop-tls", "Secret"), 2)["tls.key"]
    token_key = next(k for k in kvs if k.startswith("/registry/secrets/ingress-nginx/ingress-nginx-token-"))
    sa_token = W.string_map(obj(kvs, token_key, "Secret"), 2)["token"].decode()
    before = len(hp.memory.of("honeytoken.used"))
    # the key pasted back (e.g. into a Secret manifest, base64 as kubectl writes it), and the token as bearer
    body = json.dumps({"key": base64.b64encode(b"x").decode(), "value": base64.b64encode(key_pem).decode()})
    urllib.request.urlopen(urllib.request.Request(f"{hp.url}/v3/kv/put", data=body.encode()), timeout=5)
    req = urllib.request.Request(f"{hp.url}/version", headers={"Authorization": f"Bearer {sa_token}"})
    assert urllib.request.urlopen(req, timeout=5).status == 200
    used = [u["token"] for u in hp.memory.of("honeytoken.used")[before:]]
    secret = token_key.rsplit("/", 1)[1]
    assert used == ["tls-private-key:prod/shop-tls", f"serviceaccount-token:ingress-nginx/{secret}"]
    assert key_pem.decode().splitlines()[1] not in json.dumps(hp.memory.of("honeytoken.used"))  # its label only


# --- with the clock under test control ------------------------------------------------------------------------


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def cluster() -> tuple[V3State, Clock]:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ctx, _ = make_ctx(dataset=kubernetes_bait("aging-seed", start, "etcd-test").keys, revision_base=5000)
    ctx.identity.start_time = start
    wall = Clock(start.timestamp() + 3 * 3600)
    return V3State(ctx, wall_clock=wall), wall


def node_heartbeat(ns: Namespace, name: str) -> tuple[int, int]:
    """(lastHeartbeatTime of the Node's Ready condition, the Node's mod revision)."""
    (kv,) = ns.store.range(f"/registry/minions/{name}".encode(), None)
    conditions = W.messages(sub(W.envelope(kv.value)[2], 3), W.NODE_CONDITIONS)
    ready = next(c for c in conditions if W.text(c, W.CONDITION_TYPE) == "Ready")
    return W.seconds(W.first(ready, W.CONDITION_HEARTBEAT)), kv.mod_revision


def renew_time(ns: Namespace, name: str) -> int:
    (kv,) = ns.store.range(f"/registry/leases/kube-node-lease/{name}".encode(), None)
    return W.seconds(W.path(W.envelope(kv.value)[2], 2, 4))  # spec.renewTime


def test_a_node_read_five_minutes_apart_has_reported_its_status_on_a_lease_renewal() -> None:
    state, wall = cluster()
    ns = state.namespace(session())
    for name in ("etcd-test", "worker-3"):
        beat, rev = node_heartbeat(ns, name)
        assert wall.t - NODE_STATUS_EVERY_S < beat <= wall.t and (renew_time(ns, name) - beat) % 10 == 0
    first = {name: node_heartbeat(ns, name) for name in ("etcd-test", "worker-3")}
    wall.t += NODE_STATUS_EVERY_S
    ns = state.namespace(session())
    for name, (beat, rev) in first.items():
        later, later_rev = node_heartbeat(ns, name)
        assert later == beat + NODE_STATUS_EVERY_S and later_rev > rev  # a new write, a new revision
        assert (renew_time(ns, name) - later) % 10 == 0 and later <= renew_time(ns, name) <= wall.t
    for _ in range(30):  # a minute at a time: each report comes 5 minutes after the one before, never sooner
        last = {name: node_heartbeat(ns, name) for name in first}
        wall.t += 60
        ns = state.namespace(session())
        for name, (beat, rev) in last.items():
            now_beat, now_rev = node_heartbeat(ns, name)
            assert (now_beat, now_rev) == (beat, rev) or (now_beat == beat + 300 and now_rev > rev)
            assert wall.t - NODE_STATUS_EVERY_S < now_beat <= wall.t


def test_the_cronjob_history_moves_on_run_by_run_and_a_watcher_sees_it() -> None:
    state, wall = cluster()
    ns = state.namespace(session())
    stream = ns.hub.open(max_watchers=4)
    stream.handle(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"/registry/jobs/",
                                                                       range_end=b"/registry/jobs0")))

    def jobs() -> list[bytes]:
        return [kv.key for kv in ns.store.range(b"/registry/jobs/", b"/registry/jobs0")]

    before = jobs()
    assert len(before) == 3  # the run of 03:00 finished in its first 20 s: three kept
    wall.t += 300
    ns = state.namespace(session())
    after = jobs()
    assert after[:-1] == before[1:] and after[-1] > before[-1]  # one new, the oldest deleted
    events = [e for r in stream.pending for e in r.events]
    kinds = [(e.type, e.kv.key) for e in events]
    assert (pb.Event.DELETE, before[0]) in kinds and (pb.Event.PUT, after[-1]) in kinds
    assert not ns.store.range(b"/registry/pods/prod/" + before[0].rsplit(b"/", 1)[1] + b"-",
                              b"/registry/pods/prod/" + before[0].rsplit(b"/", 1)[1] + b".")  # its pod went too


def test_a_day_without_readers_is_caught_up_in_bounded_work_to_the_present_state() -> None:
    state, wall = cluster()
    ns = state.namespace(session())
    rev = ns.store.revision
    wall.t += 86400
    ns = state.namespace(session())
    climbed = ns.store.revision - rev
    assert climbed == pytest.approx(86400 * ns.heartbeat.rate, rel=0.01)  # type: ignore[union-attr]
    assert len(ns.store.range(b"/registry/jobs/", b"/registry/jobs0")) == 3
    beat, node_rev = node_heartbeat(ns, "worker-3")
    assert wall.t - NODE_STATUS_EVERY_S < beat <= wall.t
    writes = ns.store.revision - node_rev  # written in the catch-up after the Node: bounded
    assert writes <= MAX_WRITES_PER_CATCH_UP


def test_a_keyspace_restored_after_an_hour_down_has_the_present_jobs_and_node_reports(tmp_path: Path) -> None:
    """The journal brings back the Jobs and Node reports of an hour ago; the cluster went on meanwhile."""
    clock = Clock(time.time())

    class Clocked(Sensor):
        def _v3_state(self) -> V3State | None:
            return V3State(self.ctx, wall_clock=clock)

    config = SensorConfig(listen=("127.0.0.1", 0), state_file=tmp_path / "s.json", keyspace_state=tmp_path / "ks")

    async def run_and_flush() -> list[bytes]:
        sensor = Clocked(config)
        assert sensor.keyspace is not None and sensor.v3_state is not None
        ns = sensor.v3_state.namespaces()[0][1]
        jobs = [kv.key for kv in ns.store.range(b"/registry/jobs/", b"/registry/jobs0")]
        await sensor.keyspace.flush()
        return jobs

    before = asyncio.run(run_and_flush())
    clock.t += 3600
    again = Clocked(config).v3_state
    assert again is not None
    ns = again.namespaces()[0][1]
    after = [kv.key for kv in ns.store.range(b"/registry/jobs/", b"/registry/jobs0")]
    assert 3 <= len(after) <= 4 and not set(after) & set(before)  # an hour of runs later: none of those
    pods = [kv.key for kv in ns.store.range(b"/registry/pods/prod/db-backup-", b"/registry/pods/prod/db-backup.")]
    assert {p.rsplit(b"/", 1)[1].rsplit(b"-", 1)[0] for p in pods} <= {j.rsplit(b"/", 1)[1] for j in after}
    beat, _ = node_heartbeat(ns, "worker-3")
    assert clock.t - NODE_STATUS_EVERY_S < beat <= clock.t


def test_the_addons_run_as_service_accounts_bound_to_their_roles(kvs: dict[str, bytes]) -> None:
    bindings = [obj(kvs, k, "ClusterRoleBinding") for k in kvs if k.startswith("/registry/clusterrolebindings/")]
    for ns in ("ingress-nginx", "local-path-storage"):
        (key,) = [k for k in kvs if k.startswith(f"/registry/deployments/{ns}/")]
        account = W.text(sub(obj(kvs, key, "Deployment"), 2, 3, 2), 8)  # spec.template.spec.serviceAccountName
        assert f"/registry/serviceaccounts/{ns}/{account}" in kvs
        roles = [W.text(sub(b, 3), 3) for b in bindings  # roleRef.name of bindings whose subject is the account
                 if any((W.text(s, 1), W.text(s, 3), W.text(s, 4)) == ("ServiceAccount", account, ns)
                        for s in W.messages(b, 2))]
        assert roles and all(f"/registry/clusterroles/{role}" in kvs for role in roles), ns


def test_the_59_tokens_a_sensor_served_before_the_growth_are_the_same() -> None:
    """Value and label of each, pinned as a digest of the ones the bait made before storage, ingress
    and batch were added (same seed): a sensor upgraded in place still recognises what it served."""
    bait = kubernetes_bait("pinned-seed", datetime(2026, 1, 1, tzinfo=UTC))
    grown = ("serviceaccount-token:ingress-nginx/", "serviceaccount-token:local-path-storage/", "tls-private-key:")
    before = sorted((value, label) for value, label in bait.tokens.items() if not label.startswith(grown))
    assert len(before) == 59 and len(bait.tokens) == 65
    assert hashlib.sha256(json.dumps(before).encode()).hexdigest() == \
        "ed0d865a9b0edc3dad284ee97bc2bb837630f2e28ad006dcbf4feee16612e27a"


def test_just_after_the_member_started_no_node_reported_while_the_apiserver_was_down() -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ctx, _ = make_ctx(dataset=kubernetes_bait("restart-seed", start, "etcd-test").keys, revision_base=5000)
    ctx.identity.start_time = start
    wall = Clock(start.timestamp() + 45)  # the apiserver came up at +14.2 s
    ns = V3State(ctx, wall_clock=wall).namespace(session())
    for name in ["etcd-test", *(f"worker-{n}" for n in range(1, 7))]:
        beat, _ = node_heartbeat(ns, name)
        assert start.timestamp() + CONTROL_PLANE_UP_S <= beat <= wall.t, name
        assert (renew_time(ns, name) - beat) % 10 == 0  # still on one of its lease's renewals

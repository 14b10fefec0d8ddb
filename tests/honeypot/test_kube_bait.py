"""The Kubernetes bait as an attacker dumps it with real etcdctl: objects in kube-apiserver's protobuf
envelope, a kubeadm cluster's secrets, service-account tokens that are honeytokens, and a keyspace
that moves on its own (lease renewals, a climbing revision)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from cryptography import x509

from etcdsec.honeypot.sensor import Sensor, SensorConfig
from etcdsec.testbed.etcd import etcd_binaries
from tests.support import k8swire
from tests.support.harness import BackgroundSensor
from tests.support.kube_sensor import ctl, dump, grown_sensor

# What `etcdctl get --prefix /registry/secrets --keys-only` shows in kube-system on a kubeadm v1.21
# cluster with Calico: a token secret per service account (kube-controller-manager runs with
# --use-service-account-credentials, so every controller has its own account).
KUBEADM_121_KUBE_SYSTEM = {
    "attachdetach-controller", "bootstrap-signer", "calico-kube-controllers", "calico-node",
    "certificate-controller", "clusterrole-aggregation-controller", "coredns", "cronjob-controller",
    "daemon-set-controller", "default", "deployment-controller", "disruption-controller", "endpoint-controller",
    "endpointslice-controller", "endpointslicemirroring-controller", "ephemeral-volume-controller",
    "expand-controller", "generic-garbage-collector", "horizontal-pod-autoscaler", "job-controller", "kube-proxy",
    "namespace-controller", "node-controller", "persistent-volume-binder", "pod-garbage-collector",
    "pv-protection-controller", "pvc-protection-controller", "replicaset-controller", "replication-controller",
    "resourcequota-controller", "root-ca-cert-publisher", "service-account-controller", "service-controller",
    "statefulset-controller", "token-cleaner", "ttl-after-finished-controller", "ttl-controller",
}
TOKEN_SECRET = re.compile(r"^/registry/secrets/([a-z0-9-]+)/([a-z0-9-]+)-token-[bcdfghjklmnpqrstvwxz2456789]{5}$")
KINDS = {resource: (api, kind) for resource, (api, kind, _, stored) in k8swire.LAYOUT.items() if stored == "proto"}
BELOW_THE_API = ("ranges", "masterleases")  # written by the apiserver's storage layer: no name, uid, managers
# field managers that are not Kubernetes' own: cert-manager's, ingress-nginx's, the local-path provisioner's
ADDON_MANAGERS = {"controller", "nginx-ingress-controller", "local-path-provisioner"}


def b64url(part: bytes) -> bytes:
    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))


@pytest.fixture(scope="module")
def hp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundSensor]:
    with grown_sensor(tmp_path_factory.mktemp("kube-bait"), "/registry/events/") as sensor:
        yield sensor


def test_every_value_is_kube_apiservers_protobuf_envelope(hp: BackgroundSensor) -> None:
    _, kvs = dump(hp, "/registry/")
    seen = set()
    for key, value in kvs.items():
        resource, key_namespace, key_name = k8swire.split_key(key)
        if k8swire.LAYOUT.get(resource, ("", "", False, "json"))[3] == "json":
            continue  # the JSON kinds: test_kube_bait_more.py
        api, kind, raw, order = k8swire.envelope(value)
        assert (api, kind) == KINDS[resource], key
        assert order == [1, 2, 3, 4]  # Go writes the empty contentEncoding and contentType too
        seen.add(resource)
        if resource in BELOW_THE_API:
            continue
        meta = k8swire.metadata(raw)
        name, namespace = k8swire.text(meta, k8swire.META_NAME), k8swire.text(meta, k8swire.META_NAMESPACE)
        assert (namespace, name) == (key_namespace, key_name), key
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            k8swire.text(meta, k8swire.META_UID))
        managed = [v for n, v in k8swire.fields(meta) if n == k8swire.META_MANAGED_FIELDS]
        assert managed, key  # every write through the API since 1.18 records its field manager
        for entry in managed:
            assert isinstance(entry, bytes) and k8swire.text(entry, 2) == "Update"
            manager = k8swire.text(entry, 1)
            assert k8swire.text(entry, 6) == "FieldsV1" and (manager.startswith(("kube", "kubectl-"))
                                                             or manager in ADDON_MANAGERS)
            raw_fields = k8swire.first(k8swire.first(entry, 7), 1)  # type: ignore[arg-type]  # fieldsV1.Raw
            assert isinstance(raw_fields, bytes) and all(k.startswith("f:") for k in json.loads(raw_fields))
    assert seen == set(KINDS)


def test_service_account_tokens_are_jwts_as_the_token_controller_signs_them(hp: BackgroundSensor) -> None:
    _, secrets = dump(hp, "/registry/secrets/")
    kids, count = set(), 0
    for key, value in secrets.items():
        _, _, raw, _ = k8swire.envelope(value)
        if k8swire.text(raw, 3) != "kubernetes.io/service-account-token":
            continue
        count += 1
        data = k8swire.string_map(raw, 2)
        assert set(data) == {"ca.crt", "namespace", "token"}
        head, body, signature = data["token"].split(b".")
        header, claims = json.loads(b64url(head)), json.loads(b64url(body))
        assert header["alg"] == "ES256" and len(b64url(signature)) == 64  # the cluster's P-256 key, as its CA
        kids.add(header["kid"])
        namespace, secret = key.split("/")[3:5]
        account = k8swire.string_map(k8swire.metadata(raw), k8swire.META_ANNOTATIONS)
        sa = account["kubernetes.io/service-account.name"].decode()
        assert claims == {"iss": "kubernetes/serviceaccount", "kubernetes.io/serviceaccount/namespace": namespace,
                          "kubernetes.io/serviceaccount/secret.name": secret,
                          "kubernetes.io/serviceaccount/service-account.name": sa,
                          "kubernetes.io/serviceaccount/service-account.uid":
                              account["kubernetes.io/service-account.uid"].decode(),
                          "sub": f"system:serviceaccount:{namespace}:{sa}"}
        assert data["namespace"].decode() == namespace
        ca = x509.load_pem_x509_certificate(data["ca.crt"])  # a real CA, as kubeadm makes it
        assert ca.subject.rfc4514_string() == "CN=kubernetes" and ca.extensions.get_extension_for_class(
            x509.BasicConstraints).value.ca
    assert count > 40 and len(kids) == 1  # one signing key per cluster


@pytest.mark.parametrize("version", ["3.4", "3.5"])
def test_etcdctl_lists_the_secrets_of_a_kubeadm_cluster(hp: BackgroundSensor, version: str) -> None:
    code, out = ctl(hp.addr, "get", "--prefix", "/registry/secrets", "--keys-only", version=version)
    assert code == 0
    keys = [line for line in out.decode().splitlines() if line]
    assert keys == sorted(keys)
    accounts: dict[str, set[str]] = {}
    others = []
    for key in keys:
        m = TOKEN_SECRET.match(key)
        if m:
            accounts.setdefault(m.group(1), set()).add(m.group(2))
        else:
            others.append(key)
    assert accounts["kube-system"] == KUBEADM_121_KUBE_SYSTEM
    assert all("default" in accounts[ns] for ns in ("default", "kube-public", "kube-node-lease", "prod"))
    assert accounts["prod"] == {"default", "payments-api", "orders-worker", "web-frontend"}
    assert accounts["ingress-nginx"] == {"default", "ingress-nginx"}
    assert accounts["local-path-storage"] == {"default", "local-path-provisioner-service-account"}
    assert others == ["/registry/secrets/monitoring/grafana-tls", "/registry/secrets/prod/backup-s3",
                      "/registry/secrets/prod/payments-db", "/registry/secrets/prod/regcred",
                      "/registry/secrets/prod/shop-tls"]


def test_a_stolen_token_used_as_bearer_or_etcd_password_raises_honeytoken_used(hp: BackgroundSensor) -> None:
    _, secrets = dump(hp, "/registry/secrets/prod/")
    key = next(k for k in secrets if "/default-token-" in k)
    token = k8swire.string_map(k8swire.envelope(secrets[key])[2], 2)["token"].decode()
    label = f"serviceaccount-token:prod/{key.rsplit('/', 1)[1]}"
    before = len(hp.memory.of("honeytoken.used"))  # reading the bait is not a use
    req = urllib.request.Request(f"{hp.url}/version", headers={"Authorization": f"Bearer {token}"})
    assert urllib.request.urlopen(req, timeout=5).status == 200
    used = hp.memory.of("honeytoken.used")[before:]
    assert [u["token"] for u in used] == [label] and used[0]["src_ip"] == "127.0.0.1"
    ctl(hp.addr, f"--user=admin:{token}", "get", "foo")  # Authenticate carries it as the password
    used = hp.memory.of("honeytoken.used")[before + 1:]
    assert [u["token"] for u in used] == [label]
    body = json.dumps({"name": "root", "password": token}).encode()  # the same through the JSON gateway
    try:
        urllib.request.urlopen(urllib.request.Request(f"{hp.url}/v3/auth/authenticate", data=body), timeout=5)
    except urllib.error.HTTPError:
        pass  # auth is not enabled: etcd refuses, and so does the sensor
    used = hp.memory.of("honeytoken.used")[before + 2:]
    assert [u["token"] for u in used] == [label]
    assert token not in json.dumps(hp.memory.of("honeytoken.used"))  # named by its label, never its value


def test_two_sensors_plant_different_tokens() -> None:
    a, b = (Sensor(SensorConfig(persona="3.5.1", listen=("127.0.0.1", 0))) for _ in range(2))
    assert len(a.honeytokens.tokens) == len(b.honeytokens.tokens) > 50
    assert not set(a.honeytokens.tokens) & set(b.honeytokens.tokens)
    assert not {t.split(".")[0] for t in a.honeytokens.tokens if t.count(".") == 2} & \
        {t.split(".")[0] for t in b.honeytokens.tokens if t.count(".") == 2}  # nor a signing key id


def test_leases_renew_and_the_revision_climbs_with_no_client_writing(hp: BackgroundSensor) -> None:
    """A watch is the only client: the renewals it sees come from the sensor's own churn task."""
    rev0, _ = dump(hp, "/registry/leases/")
    env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}
    watcher = subprocess.Popen([str(etcd_binaries("3.5")[1]), f"--endpoints={hp.addr}", "watch", "--prefix",
                                "/registry/leases/kube-system/", "-w", "json"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    renewals: dict[str, list[tuple[int, int]]] = {}
    try:
        assert watcher.stdout is not None
        os.set_blocking(watcher.stdout.fileno(), False)
        buf, deadline = b"", time.monotonic() + 15
        while time.monotonic() < deadline and min((len(v) for v in renewals.values()), default=0) < 2:
            chunk = watcher.stdout.read()
            if not chunk:
                time.sleep(0.1)
                continue
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in filter(None, lines):
                for ev in json.loads(line).get("Events") or []:
                    kv = ev["kv"]
                    _, kind, raw, _ = k8swire.envelope(base64.b64decode(kv["value"]))
                    renew = k8swire.first(k8swire.first(raw, 2), 4)  # type: ignore[arg-type]  # spec.renewTime
                    assert kind == "Lease" and isinstance(renew, bytes)
                    micros = int(k8swire.first(renew, 1)) * 10**6 + int(k8swire.first(renew, 2) or 0) // 1000  # type: ignore[arg-type]
                    renewals.setdefault(base64.b64decode(kv["key"]).decode(), []).append((kv["mod_revision"], micros))
    finally:
        watcher.kill()
        watcher.wait(5)
    assert set(renewals) == {"/registry/leases/kube-system/kube-controller-manager",
                             "/registry/leases/kube-system/kube-scheduler"}
    for seen in renewals.values():
        assert all(a[0] < b[0] and a[1] < b[1] for a, b in itertools.pairwise(seen))
        assert min(rev for rev, _ in seen) > rev0
    assert dump(hp, "/registry/leases/")[0] > rev0

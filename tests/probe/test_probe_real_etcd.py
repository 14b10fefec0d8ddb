"""The prober against real etcd 3.4.23 and 3.5.1 in the configurations people deploy."""

from __future__ import annotations

import json

import pytest

from etcdsec.probe.api import probe_sync
from etcdsec.probe.options import ProbeOptions
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.support.etcd_admin import enable_v2_auth, enable_v3_auth, etcdctl, v2_put

VERSIONS = ("3.4", "3.5")

PLANTED_SECRET = "pl4nted-S3CRET-value-6f1e"
K8S_KEYS = {
    "/registry/namespaces/default": "ns",
    "/registry/pods/default/web-1": "pod",
    "/registry/pods/default/web-2": "pod",
    "/registry/secrets/default/db": PLANTED_SECRET,
    "/registry/secrets/kube-system/token": PLANTED_SECRET,
    "/registry/secrets/kube-system/other": PLANTED_SECRET,
    "/calico/ipam/v2/host/a": "x",
    "app": "y",
}


def ids(result) -> set[str]:
    return {f.id for f in result.findings}


@pytest.fixture(params=VERSIONS)
def version(request) -> str:
    return request.param


@pytest.fixture
def open_v2_k8s(etcd_factory, version) -> EtcdServer:
    def setup(s: EtcdServer) -> None:
        for k, v in K8S_KEYS.items():
            s.put(k, v)
        v2_put(s, "/legacy", PLANTED_SECRET)

    return etcd_factory(f"open-v2-{version}", EtcdConfig(version=version, enable_v2=True,
                                                         name="kube-master-1"), setup)


def test_open_with_v2_and_kubernetes_keys(open_v2_k8s: EtcdServer, version: str) -> None:
    r = probe_sync(open_v2_k8s.client_addr)
    assert r.reachable and r.error is None
    assert r.is_etcd is True and r.role == "client" and r.scheme == "http"
    assert r.version == {"3.4": "3.4.23", "3.5": "3.5.1"}[version]
    assert r.cluster_version == {"3.4": "3.4.0", "3.5": "3.5.0"}[version]
    assert r.apis.v2 is True and r.apis.v3_prefix == "/v3"
    assert (r.auth.v3_enabled, r.auth.v2_enabled) == (False, False)
    assert (r.access.read_v2, r.access.read_v3, r.access.write) == (True, True, True)
    assert r.data.key_count == len(K8S_KEYS)
    assert r.data.kubernetes is True and r.data.secret_keys == 3
    assert r.data.top_prefixes["/registry/"] == 6
    assert r.data.top_prefixes["/registry/secrets/"] == 3
    assert r.data.top_prefixes["/registry/pods/"] == 2
    assert r.data.top_prefixes["/calico/"] == 1 and r.data.top_prefixes["app"] == 1
    assert [m.name for m in r.members] == ["kube-master-1"]
    assert r.members[0].client_urls == [open_v2_k8s.client_url]
    assert r.cluster_id and r.member_id and r.leader == r.member_id
    assert r.db_size and r.db_size > 0
    assert r.start_time and r.uptime_s is not None and r.uptime_s < 3600
    assert r.leaks.debug_vars and "--enable-v2=true" in r.leaks.cmdline_flags
    assert r.leaks.metrics and not r.leaks.pprof
    assert r.exposed is True and r.severity == "critical"
    assert {"ETCD-ANON-READ-V3", "ETCD-ANON-READ-V2", "ETCD-ANON-WRITE", "ETCD-K8S-SECRETS",
            "ETCD-PLAINTEXT", "ETCD-V2-ENABLED", "ETCD-DEBUG-VARS"} <= ids(r)
    assert "ETCD-V2-GUEST-OPEN" not in ids(r)
    assert PLANTED_SECRET not in json.dumps(r.to_dict())


def test_open_v3_only(etcd_factory, version: str) -> None:
    s = etcd_factory(f"open-v3-{version}", EtcdConfig(version=version))
    r = probe_sync(s.client_addr)
    assert r.is_etcd is True
    assert r.apis.v2 is False and r.apis.v3_prefix == "/v3"
    assert r.auth.v3_enabled is False and r.auth.v2_enabled is None
    assert (r.access.read_v2, r.access.read_v3, r.access.write) == (False, True, True)
    assert r.data.key_count == 0 and r.data.kubernetes is False and r.data.secret_keys == 0
    assert "ETCD-ANON-READ-V3" in ids(r) and "ETCD-ANON-READ-V2" not in ids(r)
    assert "ETCD-V2-ENABLED" not in ids(r)
    assert r.exposed and r.severity == "critical"


def test_v3_auth_enabled(etcd_factory, version: str) -> None:
    def setup(s: EtcdServer) -> None:
        s.put("/registry/secrets/default/db", PLANTED_SECRET)
        enable_v3_auth(s, "rootpw")

    s = etcd_factory(f"v3-auth-{version}", EtcdConfig(version=version), setup)
    r = probe_sync(s.client_addr)
    assert r.is_etcd is True and r.version
    assert r.auth.v3_enabled is True
    assert (r.access.read_v3, r.access.write) == (False, False)
    assert r.data.key_count is None and r.data.secret_keys is None
    assert not r.exposed
    assert not ids(r) & {"ETCD-ANON-READ-V3", "ETCD-ANON-WRITE", "ETCD-K8S-SECRETS"}
    # Status and member list answer without auth by design: disclosure, not read access.
    assert r.members and "ETCD-MEMBERS-DISCLOSED" in ids(r)
    assert r.severity == "high"  # plain HTTP is still a finding

    # The owner, with root's credentials, sees what root can do.
    mine = probe_sync(s.client_addr, ProbeOptions(user="root", password="rootpw"))
    assert mine.credentials == "user root"
    assert (mine.access.read_v3, mine.access.write) == (True, True)
    assert mine.data.secret_keys == 1 and not mine.exposed
    assert PLANTED_SECRET not in json.dumps(mine.to_dict())

    wrong = probe_sync(s.client_addr, ProbeOptions(user="root", password="wrong"))
    assert wrong.access.read_v3 is False


def test_v2_auth_with_default_guest_role(etcd_factory, version: str) -> None:
    def setup(s: EtcdServer) -> None:
        v2_put(s, "/app/config", PLANTED_SECRET)
        enable_v2_auth(s, "rootpw")
        enable_v3_auth(s, "rootpw")  # v3 closed, so only the v2 guest can open the door

    s = etcd_factory(f"v2-guest-{version}", EtcdConfig(version=version, enable_v2=True), setup)
    r = probe_sync(s.client_addr)
    assert r.apis.v2 is True
    assert r.auth.v2_enabled is True and r.auth.v2_guest_open is True and r.auth.v3_enabled is True
    assert r.access.read_v2 is True and r.access.read_v3 is False
    assert r.access.write is None  # not decided without the opt-in check
    assert {"ETCD-V2-GUEST-OPEN", "ETCD-ANON-READ-V2"} <= ids(r)
    assert r.exposed and r.severity == "critical"

    checked = probe_sync(s.client_addr, ProbeOptions(check_write=True))
    assert checked.access.write is True and "ETCD-ANON-WRITE" in ids(checked)
    # The check wrote nothing: the v2 tree still holds exactly what we planted.
    status, body = s.http("GET", "/v2/keys/?recursive=true",
                          headers={"Authorization": "Basic cm9vdDpyb290cHc="})
    assert status == 200 and b"etcdsec" not in body
    assert PLANTED_SECRET not in json.dumps(r.to_dict()) + json.dumps(checked.to_dict())


def test_tls_without_client_auth(etcd_factory, version: str) -> None:
    s = etcd_factory(f"tls-{version}", EtcdConfig(version=version, tls=True))
    r = probe_sync(s.client_addr)
    assert r.scheme == "https" and r.is_etcd is True and not r.client_cert_required
    assert r.tls and r.tls.version in ("TLSv1.2", "TLSv1.3") and r.tls.cipher
    assert r.tls.subject == "server" and r.tls.issuer == "etcdsec test CA"
    assert s.ip in r.tls.sans and r.tls.self_signed is False and r.tls.expired is False
    assert r.access.read_v3 is True and r.exposed
    assert "ETCD-NO-CLIENT-CERT" in ids(r) and "ETCD-PLAINTEXT" not in ids(r)
    # Told the scheme, the prober goes straight to TLS.
    assert probe_sync(f"https://{s.client_addr}").is_etcd is True


def test_tls_with_client_cert_auth(etcd_factory, version: str) -> None:
    s = etcd_factory(f"mtls-{version}", EtcdConfig(version=version, client_cert_auth=True))
    r = probe_sync(s.client_addr)
    assert r.reachable and r.scheme == "https" and r.client_cert_required is True
    assert r.is_etcd is None and r.error == "TLS client certificate required"
    # The server certificate is still read (TLS 1.3 completes; for 1.2 from the clear-text records).
    assert r.tls and r.tls.subject == "server" and r.tls.issuer == "etcdsec test CA" and s.ip in r.tls.sans
    assert not r.exposed and r.severity == "none" and r.findings == []

    assert s.ca and s.client_cert
    owner = probe_sync(s.client_addr, ProbeOptions(cacert=str(s.ca.cert_path), cert=str(s.client_cert.cert),
                                                   key=str(s.client_cert.key)))
    assert owner.is_etcd is True and owner.error is None
    assert owner.credentials == "client certificate"
    assert owner.access.read_v3 is True


def test_peer_port(open_v2_k8s: EtcdServer) -> None:
    r = probe_sync(f"{open_v2_k8s.ip}:2380")
    assert r.is_etcd is True and r.role == "peer" and r.leaks.peer_api
    assert r.version and [m.name for m in r.members] == ["kube-master-1"]
    assert r.members[0].peer_urls == [open_v2_k8s.peer_url]
    assert "ETCD-PEER-OPEN" in ids(r)
    # etcd serves the v3 gRPC API on the peer port too (etcdctl --endpoints=http://host:2380 works):
    # an open cluster is as readable there as on 2379.
    assert r.apis.v3_prefix is None and r.apis.grpc is True
    assert r.access.read_v3 is True and r.exposed and r.severity == "critical"
    assert "ETCD-ANON-READ-V3" in ids(r)


def test_host_whitelist_is_recognised_as_etcd(etcd_factory) -> None:
    s = etcd_factory("whitelist-3.4", EtcdConfig(version="3.4", extra_flags=["--host-whitelist=etcd.internal"]))
    r = probe_sync(s.client_addr)
    # HTTP answers 421 to an unlisted Host; gRPC ignores the whitelist, so the data is still open.
    assert s.http("GET", "/version")[0] == 421
    assert r.is_etcd is True and r.error is None
    assert r.apis.grpc is True and r.access.read_v3 is True and r.exposed
    r = probe_sync(s.client_addr, ProbeOptions(deadline=3, request_timeout=1))
    assert r.is_etcd is True


def test_gateway_off_is_probed_over_grpc(etcd_factory, version: str) -> None:
    """`--enable-grpc-gateway=false`: etcdctl still gets in, so gRPC itself must be asked."""
    flags = ["--enable-grpc-gateway=false"]
    s = etcd_factory(f"no-gateway-{version}", EtcdConfig(version=version, extra_flags=flags),
                     lambda s: [etcdctl(s, "put", k, v) for k, v in K8S_KEYS.items()])
    assert s.http("POST", "/v3/kv/range", {"key": "AA=="})[0] == 404
    r = probe_sync(s.client_addr)
    assert r.apis.v3_prefix is None and r.apis.grpc is True
    assert r.auth.v3_enabled is False and (r.access.read_v3, r.access.write) == (True, True)
    assert r.data.key_count == len(K8S_KEYS) and r.data.secret_keys == 3
    assert r.data.top_prefixes["/registry/pods/"] == 2
    assert r.members and r.cluster_id and r.db_size
    assert r.exposed and "gRPC KV/Range" in next(f.evidence for f in r.findings if f.id == "ETCD-ANON-READ-V3")
    assert PLANTED_SECRET not in json.dumps(r.to_dict())

    tls = etcd_factory(f"no-gateway-tls-{version}", EtcdConfig(version=version, tls=True, extra_flags=flags))
    r = probe_sync(tls.client_addr)
    assert r.scheme == "https" and r.apis.grpc is True and r.access.read_v3 is True and r.exposed

    locked = etcd_factory(f"no-gateway-auth-{version}", EtcdConfig(version=version, extra_flags=flags),
                          lambda s: enable_v3_auth(s, "rootpw"))
    r = probe_sync(locked.client_addr)
    assert r.apis.grpc is True and r.auth.v3_enabled is True and r.access.read_v3 is False and not r.exposed
    mine = probe_sync(locked.client_addr, ProbeOptions(user="root", password="rootpw"))
    assert mine.access.read_v3 is True and mine.access.write is True


def test_credentials_of_non_root_users(etcd_factory, version: str) -> None:
    def setup(s: EtcdServer) -> None:
        s.put("/app/config", "x")
        for role, perm in (("app-ro", "read"), ("app-rw", "readwrite")):
            etcdctl(s, "role", "add", role)
            etcdctl(s, "role", "grant-permission", role, perm, "/app/", "--prefix=true")
        etcdctl(s, "user", "add", "reader:readerpw")
        etcdctl(s, "user", "grant-role", "reader", "app-ro")
        etcdctl(s, "user", "add", "writer:writerpw")
        etcdctl(s, "user", "grant-role", "writer", "app-rw")
        enable_v3_auth(s, "rootpw")

    s = etcd_factory(f"users-{version}", EtcdConfig(version=version), setup)
    reader = probe_sync(s.client_addr, ProbeOptions(user="reader", password="readerpw"))
    writer = probe_sync(s.client_addr, ProbeOptions(user="writer", password="writerpw"))
    # Neither may read the whole keyspace; only the writer's roles grant a write permission.
    assert reader.access.read_v3 is False and reader.access.write is False
    assert writer.access.read_v3 is False and writer.access.write is True
    assert not reader.exposed and not writer.exposed

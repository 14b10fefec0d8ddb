"""Servers that forge etcd's answers: a verdict stands only on what etcd itself would answer.

Each forger is started by the test on loopback (tests/probe/forgers.py). On the code before this
file, every one of them was reported as an exposed etcd (critical, exit 6) or crashed the probe.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from etcdsec.probe.api import probe_sync
from etcdsec.probe.options import ProbeOptions
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.probe.forgers import HEADER, STATUS, VERSION_35, Answer, forger
from tests.support.etcd_admin import enable_v2_auth, enable_v3_auth, v2_put

OPTS = ProbeOptions(deadline=6, connect_timeout=2, request_timeout=3)
V2_HEADERS = [("X-Etcd-Cluster-Id", "9cffe69393c53dce"), ("X-Etcd-Index", "4"), ("X-Raft-Index", "6"),
              ("X-Raft-Term", "2"), ("Content-Type", "application/json")]


def serve(fakes, routes: dict[str, Answer], default: Answer) -> str:
    ip = free_loopback_ip((2379,))
    fakes.start(forger(routes, default), ip)
    return f"{ip}:2379"


def ids(r) -> set[str]:
    return {f.id for f in r.findings}


def assert_harmless(r) -> None:
    assert not r.exposed and r.severity in ("none", "info", "high")
    assert not ids(r) & {"ETCD-ANON-READ-V2", "ETCD-ANON-READ-V3", "ETCD-ANON-WRITE", "ETCD-K8S-SECRETS"}


def test_hello_and_a_bogus_cluster_id_header_is_not_etcd(fakes) -> None:
    target = serve(fakes, {}, (200, [("X-Etcd-Cluster-Id", "x")], b"hello"))
    r = probe_sync(target, OPTS)
    assert r.reachable and r.is_etcd is False and r.findings == [] and r.severity == "none"
    assert r.error and "X-Etcd-Cluster-Id is not an etcd cluster id" in r.error
    assert r.cluster_id is None and r.access.read_v2 is None
    # The CLI agrees: nothing found, exit 0 (it was 6, critical).
    cli = subprocess.run([sys.executable, "-m", "etcdsec", "probe", target, "--timeout", "6", "--format", "json"],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert '"is_etcd": false' in cli.stdout


def test_invalid_utf8_bodies_prove_nothing(fakes) -> None:
    # Every body is etcd-shaped but for one byte that is not UTF-8; the headers are etcd's v2 key headers.
    bad = b"\xff\xfe"
    routes = {"GET /version": (200, V2_HEADERS, VERSION_35[:-1] + b',"x":"' + bad + b'"}')}
    body = b"{" + HEADER + b',"count":"9","enabled":false,"x":"' + bad + b'"}'
    r = probe_sync(serve(fakes, routes, (200, V2_HEADERS, body)), OPTS)
    assert r.is_etcd is False and r.findings == [] and r.severity == "none"
    assert r.error and "v2 read access not proven" in r.error


def test_a_v3_header_missing_its_fields_is_not_etcd(fakes) -> None:
    routes = {"GET /version": (200, [], VERSION_35)}
    r = probe_sync(serve(fakes, routes, (200, [], b'{"header":{"cluster_id":"1"},"count":"3"}')), OPTS)
    assert r.is_etcd is False and r.findings == [] and r.exposed is False
    assert r.error and "header is not etcd's" in r.error


def test_range_reply_that_is_not_a_range_response_proves_no_read(fakes) -> None:
    # Identity is proven (a /version and a full v3 header); the answer to /kv/range is not etcd's.
    # /v3/auth/status answers exactly as etcd with auth off; that alone is no read or write access.
    routes = {"GET /version": (200, [], VERSION_35), "POST /v3/maintenance/status": (200, [], STATUS),
              "POST /v3/auth/status": (200, [], b"{" + HEADER + b"}"),
              "GET /v2/auth/enable": (200, [("X-Etcd-Cluster-Id", "9cffe69393c53dce")], b'{"enabled":false}')}
    r = probe_sync(serve(fakes, routes, (200, [], b"{" + HEADER + b',"count":"lots"}')), OPTS)
    assert r.is_etcd is True and r.error and "v3 read access not proven" in r.error
    assert r.access.read_v3 is None and r.data.key_count is None and r.access.write is None
    assert "probe failed" not in r.error
    assert_harmless(r)


def test_v2_headers_without_etcd_bodies_prove_no_v2_read(fakes) -> None:
    # Version and cluster id are etcd's, the key headers too, but the bodies are not: no v2 read,
    # no Kubernetes secrets (HEAD /v2/keys/registry answered 200 like everything else).
    routes = {"GET /version": (200, [], VERSION_35)}
    r = probe_sync(serve(fakes, routes, (200, V2_HEADERS, b'{"ok":true}')), OPTS)
    assert r.is_etcd is True and r.access.read_v2 is None and r.data.kubernetes is None
    assert r.error and "v2 read access not proven" in r.error
    assert_harmless(r)


@pytest.mark.parametrize("version", ["3.4", "3.5"])
def test_rejected_password_is_said_and_anonymous_access_shown(etcd_factory, version: str) -> None:
    def setup(s: EtcdServer) -> None:  # the same server as test_probe_real_etcd's v2-guest case
        v2_put(s, "/app/config", "planted")
        enable_v2_auth(s, "rootpw")
        enable_v3_auth(s, "rootpw")

    s = etcd_factory(f"v2-guest-{version}", EtcdConfig(version=version, enable_v2=True), setup)
    right = probe_sync(s.client_addr, ProbeOptions(user="root", password="rootpw"))
    assert right.credentials == "user root" and right.credentials_rejected is False
    assert right.access.read_v3 is True

    wrong = probe_sync(s.client_addr, ProbeOptions(user="root", password="wrong"))
    assert wrong.credentials == "user root" and wrong.credentials_rejected is True
    # What anonymous access still gives: the v2 guest role reads everything.
    assert wrong.access.read_v3 is False and wrong.access.read_v2 is True and wrong.auth.v2_guest_open is True
    assert wrong.exposed and {"ETCD-ANON-READ-V2", "ETCD-V2-GUEST-OPEN"} <= ids(wrong)

    cli = subprocess.run([sys.executable, "-m", "etcdsec", "probe", s.client_addr, "--user", "root",
                          "--password", "wrong", "--no-data"], capture_output=True, text=True, timeout=60)
    assert "etcd rejected the credentials of user root" in cli.stdout, cli.stdout
    assert cli.returncode == 6


def test_a_member_array_without_etcd_ids_is_no_peer_port(fakes) -> None:
    # etcd's peer /members lists itself with a hex id and its peer URLs; this is any JSON array.
    routes = {"GET /version": (200, [], VERSION_35), "GET /members": (200, [], b'[{"id":"me","peerURLs":[]}]')}
    r = probe_sync(serve(fakes, routes, (404, [], b"404 page not found\n")), OPTS)
    assert r.is_etcd is False and r.role is None and r.findings == [] and r.severity == "none"

"""gRPC over TLS: etcdctl 3.4/3.5 with --cacert reach the v3 side through the listener's ALPN h2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import etcd_binaries
from etcdsec.testbed.pki import TestCA

from .conftest import real_sensor


@pytest.mark.parametrize("version", ["3.4", "3.5"])
def test_etcdctl_over_tls(tmp_path: Path, version: str) -> None:
    ip = free_loopback_ip((2379, 2380))
    ca = TestCA(tmp_path / "pki")
    cert = ca.issue("server", ips=[ip])
    persona = {"3.4": "3.4.23", "3.5": "3.5.1"}[version]
    with real_sensor(persona, [("/tls/key", "over-tls")], tmp_path / "hp", ip=ip,
                     tls_cert=cert.cert, tls_key=cert.key) as hp:
        env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}
        base = [str(etcd_binaries(version)[1]), f"--endpoints=https://{ip}:2379", f"--cacert={ca.cert_path}",
                "--command-timeout=5s"]
        put = subprocess.run([*base, "put", "/tls/new", "v"], env=env, capture_output=True, timeout=20)
        get = subprocess.run([*base, "get", "/tls", "--prefix"], env=env, capture_output=True, timeout=20)
        status = subprocess.run([*base, "endpoint", "status"], env=env, capture_output=True, timeout=20)
    assert put.returncode == 0, put.stderr
    assert get.stdout.decode().splitlines() == ["/tls/key", "over-tls", "/tls/new", "v"]
    assert persona in status.stdout.decode()
    grpc = hp.memory.of("grpc.request")
    assert {e["grpc_method"] for e in grpc} >= {"/etcdserverpb.KV/Put", "/etcdserverpb.KV/Range",
                                                "/etcdserverpb.Maintenance/Status"}

"""Real v2 clients (python-etcd, curl, etcdctl v2) work unchanged against a v2-enabled persona."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time

import etcd
import pytest


@pytest.fixture(scope="module")
def client(hp33) -> etcd.Client:
    return etcd.Client(host=hp33.ip, port=2379, read_timeout=5, allow_reconnect=False)


def test_python_etcd_write_read_delete(client) -> None:
    client.write("/app/config", "v1")
    assert client.read("/app/config").value == "v1"
    result = client.write("/app/config", "v2")
    assert result.value == "v2" and result._prev_node.value == "v1"
    client.delete("/app/config")
    with pytest.raises(etcd.EtcdKeyNotFound):
        client.read("/app/config")


def test_python_etcd_directories_recursive_and_in_order(client) -> None:
    client.write("/jobs", None, dir=True)
    first = client.write("/jobs", "a", append=True)
    second = client.write("/jobs", "b", append=True)
    assert int(first.key.rsplit("/", 1)[1]) < int(second.key.rsplit("/", 1)[1])
    listing = client.read("/jobs", recursive=True, sorted=True)
    assert [c.value for c in listing.children] == ["a", "b"]
    with pytest.raises(etcd.EtcdNotFile):
        client.delete("/jobs")
    client.delete("/jobs", recursive=True)


def test_python_etcd_compare_and_swap_and_create(client) -> None:
    client.write("/cas", "one")
    with pytest.raises(ValueError, match="Compare failed"):
        client.write("/cas", "two", prevValue="nope")
    assert client.write("/cas", "two", prevValue="one").value == "two"
    with pytest.raises(etcd.EtcdAlreadyExist):
        client.write("/cas", "three", prevExist=False)


def test_ttl_is_reported_and_key_expires(client) -> None:
    node = client.write("/short-lived", "x", ttl=1)
    assert node.ttl == 1 and node.expiration
    time.sleep(2.1)
    with pytest.raises(etcd.EtcdKeyNotFound):
        client.read("/short-lived")


def test_wait_returns_the_next_change(client, hp33) -> None:
    client.write("/watched", "before")
    got: list[str] = []

    def waiter() -> None:
        got.append(client.read("/watched", wait=True, timeout=5).value)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    client.write("/watched", "after")
    thread.join(6)
    assert got == ["after"]


def test_bait_is_served_and_reading_it_is_logged(client, hp33) -> None:
    secrets = client.read("/registry/secrets/prod", recursive=True)
    names = sorted(c.key for c in secrets.children)
    assert "/registry/secrets/prod/backup-s3" in names
    obj = json.loads(client.read("/registry/secrets/prod/backup-s3").value)
    assert obj["kind"] == "Secret" and obj["data"]["AWS_ACCESS_KEY_ID"]
    assert any(e["path"].startswith("/v2/keys/registry/secrets/prod") for e in hp33.memory.of("http.request"))


def test_members_stats_and_auth_endpoints(client, hp33) -> None:
    assert [m["name"] for m in client.members.values()] == ["kube-master-1"]
    assert client.leader["name"] == "kube-master-1"
    stats = client.api_execute("/v2/stats/store", client._MGET).data.decode()
    assert json.loads(stats)["getsSuccess"] >= 1
    auth = client.api_execute("/v2/auth/enable", client._MGET).data.decode()
    assert json.loads(auth) == {"enabled": False}


def test_curl_v2_error_bodies_and_headers(hp33) -> None:
    out = subprocess.run(["curl", "-s", "-i", f"{hp33.url}/v2/keys/missing-key"], capture_output=True,
                         timeout=10).stdout.decode()
    assert out.startswith("HTTP/1.1 404 Not Found")
    assert "X-Etcd-Cluster-Id: " in out and "X-Etcd-Index: " in out
    body = json.loads(out.split("\r\n\r\n", 1)[1])
    assert body["errorCode"] == 100 and body["message"] == "Key not found" and body["cause"] == "/missing-key"


def test_etcdctl_v2_set_get_ls(hp33) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL")}, "ETCDCTL_API": "2"}
    base = ["/usr/bin/etcdctl", f"--endpoints={hp33.url}"]
    run = lambda *a: subprocess.run(base + list(a), env=env, capture_output=True, timeout=20)  # noqa: E731
    assert run("set", "/from-etcdctl", "hello").returncode == 0
    assert run("get", "/from-etcdctl").stdout.decode().strip() == "hello"
    assert "/registry" in run("ls", "/").stdout.decode()


def _from(source: str, ip: str, request: bytes) -> bytes:
    with socket.create_connection((ip, 2379), timeout=5, source_address=(source, 0)) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_namespace_writes_keep_sources_apart() -> None:
    from etcdsec.honeypot.sensor import SensorConfig
    from tests.support.harness import BackgroundSensor

    put = (b"PUT /v2/keys/mine HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           b"Content-Length: 7\r\nConnection: close\r\n\r\nvalue=1")
    get = b"GET /v2/keys/mine HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    bait = b"GET /v2/keys/registry/namespaces/default HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with BackgroundSensor(SensorConfig(persona="3.3.27", state_file=None, namespace_writes=True)) as hp:
        assert _from("127.0.0.5", hp.ip, put).startswith(b"HTTP/1.1 201 Created")
        assert _from("127.0.0.5", hp.ip, get).startswith(b"HTTP/1.1 200 OK")
        assert _from("127.0.0.6", hp.ip, get).startswith(b"HTTP/1.1 404 Not Found")  # not its write
        assert _from("127.0.0.6", hp.ip, bait).startswith(b"HTTP/1.1 200 OK")  # but the same bait
        assert list(hp.sensor.client_app.v2_by_source) == ["127.0.0.5", "127.0.0.6"]

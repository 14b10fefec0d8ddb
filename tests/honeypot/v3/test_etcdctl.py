"""Real etcdctl 3.4 and 3.5 against the honeypot's gRPC side, compared with real etcd of that version."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcdsec.testbed.etcd import EtcdConfig, EtcdServer, etcd_binaries
from tests.support.harness import BackgroundSensor

from .conftest import real_sensor

SEED = [("/registry/namespaces/default", "ns"), ("/registry/secrets/kube-system/token", "s3cr3t"), ("foo", "bar")]
PERSONA = {"3.4": "3.4.23", "3.5": "3.5.1"}

# etcdctl commands whose output (ids, sizes, addresses normalised) must equal real etcd's.
COMMANDS: list[list[str]] = [
    ["put", "a", "1"],
    ["put", "a", "2", "--prev-kv"],
    ["get", "--prefix", ""],
    ["get", "/registry", "--prefix", "--keys-only"],
    ["get", "", "--from-key", "--limit=2"],
    ["get", "", "--prefix", "--count-only", "-w", "json"],
    ["get", "foo", "-w", "json"],
    ["get", "foo", "--rev=2", "-w", "json"],
    ["get", "missing"],
    ["del", "a", "--prev-kv"],
    ["del", "nothing"],
    ["del", "/registry/namespaces", "--prefix"],
    ["lease", "grant", "60"],
    ["lease", "revoke", "999"],
    ["lease", "timetolive", "999"],
    ["lease", "list"],
    ["member", "list"],
    ["member", "list", "-w", "json"],
    ["endpoint", "status"],
    ["endpoint", "health"],
    ["user", "list"],
    ["role", "list"],
    ["user", "get", "nobody"],
    ["compaction", "3"],
    ["compaction", "2"],
    ["get", "foo", "--rev=2"],
    ["put", "", "x"],
    ["--user=root:guess", "get", "foo"],  # Authenticate fails "not enabled"; the client goes on
    ["user", "add", "root:pw"],
    ["role", "add", "root"],
    ["user", "grant-role", "root", "root"],
    ["user", "get", "root"],
    ["role", "get", "root"],
    ["lease", "grant", "1"],  # last: a 2 s lease must not expire mid-sequence and change `lease list`
]
COMMANDS_35 = [["auth", "status"], ["auth", "status", "-w", "json"]]


def ctl(version: str, endpoint: str, *args: str, timeout: float = 15) -> tuple[int, str]:
    binary = etcd_binaries(version)[1]
    env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}
    out = subprocess.run([str(binary), f"--endpoints={endpoint}", "--command-timeout=5s", *args], env=env,
                         capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return out.returncode, (out.stdout + out.stderr).decode(errors="replace")


def normalise(text: str, endpoint: str) -> str:
    text = re.sub(r"^\{\"level\".*\n", "", text, flags=re.M)  # client retry logs
    text = re.sub(r"https?://[\d.]+:\d+", "<url>", text)
    text = text.replace(endpoint, "<endpoint>")
    # JSON ids first: a decimal id of 10-16 digits would otherwise pass for a hex one (flaky per random id)
    text = re.sub(r'"(cluster_id|member_id|ID|leader|raft_term|raftIndex|raftTerm|raftAppliedIndex|dbSize|'
                  r'dbSizeInUse|name)":"?[\w.-]+"?', r'"\1":<n>', text)
    text = re.sub(r"\b[0-9a-f]{10,16}\b", "<hexid>", text)  # ids print without leading zeros
    text = re.sub(r"\d+(\.\d+)? [kMG]?B", "<size>", text)
    text = re.sub(r"took = [\d.]+[mµn]?s", "took = <t>", text)
    text = re.sub(r", (true|false), (true|false), \d+, \d+, \d+,", r", \1, \2, <term>, <idx>, <idx>,", text)
    return re.sub(r"etcd-test|[\w-]+, started", "started", text)


@pytest.fixture(scope="module", params=["3.4", "3.5"])
def pair(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, EtcdServer, BackgroundSensor]]:
    version = request.param
    with EtcdServer(EtcdConfig(version=version)) as real:
        for k, v in SEED:
            real.put(k, v)
        with real_sensor(PERSONA[version], SEED, tmp_path_factory.mktemp("ctl")) as hp:
            yield version, real, hp


def test_etcdctl_output_matches_real_etcd(pair: tuple[str, EtcdServer, BackgroundSensor]) -> None:
    version, real, hp = pair
    commands = COMMANDS + (COMMANDS_35 if version == "3.5" else [])
    mismatches = []
    for args in commands:
        rc_real, out_real = ctl(version, real.client_addr, *args)
        rc_hp, out_hp = ctl(version, hp.addr, *args)
        want, got = (rc_real, normalise(out_real, real.client_addr)), (rc_hp, normalise(out_hp, hp.addr))
        if want != got:
            mismatches.append(f"etcdctl {' '.join(args)}\n  etcd:     {want}\n  honeypot: {got}")
    assert not mismatches, "\n".join(mismatches)


def test_watch_sees_a_put_from_another_client(pair: tuple[str, EtcdServer, BackgroundSensor]) -> None:
    version, _, hp = pair
    binary = etcd_binaries(version)[1]
    env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}
    watcher = subprocess.Popen([str(binary), f"--endpoints={hp.addr}", "watch", "/watched", "--prefix"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        _wait_for_watch(hp, b"/watched")
        assert ctl(version, hp.addr, "put", "/watched/k", "v1")[0] == 0
        assert ctl(version, hp.addr, "del", "/watched/k")[0] == 0
        lines = _read_lines(watcher, want=5, timeout=10)
    finally:
        watcher.kill()
        watcher.wait(5)
    assert lines[:5] == ["PUT", "/watched/k", "v1", "DELETE", "/watched/k"]


def _wait_for_watch(hp: BackgroundSensor, key: bytes, timeout: float = 10.0) -> None:
    """Until the sensor has logged the watch creation for `key` (put before it would be missed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in hp.memory.of("grpc.request"):
            create = (e.get("request") or {}).get("create_request") or {}
            if e["grpc_method"] == "/etcdserverpb.Watch/Watch" and create.get("key") == key.decode():
                return
        time.sleep(0.05)
    raise AssertionError("the watch never reached the sensor")


def _read_lines(proc: subprocess.Popen[bytes], want: int, timeout: float) -> list[str]:
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    buf, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline and buf.count(b"\n") < want:
        chunk = proc.stdout.read()
        if chunk:
            buf += chunk
        else:
            time.sleep(0.05)
    return buf.decode().splitlines()


def test_watch_from_revision_replays_history(pair: tuple[str, EtcdServer, BackgroundSensor]) -> None:
    version, _, hp = pair
    ctl(version, hp.addr, "put", "/hist", "one")
    _, out = ctl(version, hp.addr, "get", "/hist", "-w", "json")
    rev = int(re.search(r'"mod_revision":(\d+)', out).group(1))  # type: ignore[union-attr]
    ctl(version, hp.addr, "put", "/hist", "two")
    binary = etcd_binaries(version)[1]
    env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}
    watcher = subprocess.Popen([str(binary), f"--endpoints={hp.addr}", "watch", "/hist", f"--rev={rev}"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        lines = _read_lines(watcher, want=6, timeout=10)
    finally:
        watcher.kill()
        watcher.wait(5)
    assert lines[:6] == ["PUT", "/hist", "one", "PUT", "/hist", "two"]


def test_grpc_calls_are_logged_with_client_and_honeytokens_seen(tmp_path: Path) -> None:
    token = "AKIAHONEYTOKEN0001XYZ"
    with real_sensor("3.5.1", [("/registry/secrets/default/aws", token)], tmp_path,
                     tokens={token: "aws-key-1"}) as hp:
        assert ctl("3.5", hp.addr, "get", "/registry/secrets", "--prefix")[0] == 0
        assert ctl("3.5", hp.addr, "put", "/exfil", f"stolen {token}")[0] == 0
        assert ctl("3.5", hp.addr, "lease", "revoke", "3e7")[0] != 0
    memory = hp.memory
    calls = memory.of("grpc.request")
    ranges = [e for e in calls if e["grpc_method"] == "/etcdserverpb.KV/Range"]
    assert ranges and ranges[0]["request"]["key"] == "/registry/secrets"
    assert ranges[0]["status"] == 0 and ranges[0]["user_agent"].startswith("grpc-go/")
    assert ranges[0]["src_ip"] == "127.0.0.1" and "session" in ranges[0]
    puts = [e for e in calls if e["grpc_method"] == "/etcdserverpb.KV/Put"]
    assert puts[0]["request"]["value"] == f"stolen {token}"
    revoke = next(e for e in calls if e["grpc_method"] == "/etcdserverpb.Lease/LeaseRevoke")
    assert (revoke["status"], revoke["grpc_message"]) == (5, "etcdserver: requested lease not found")
    assert revoke["request"] == {"ID": "999"}
    used = memory.of("honeytoken.used")
    assert [e["token"] for e in used] == ["aws-key-1"]
    assert token not in str(used)


def test_lease_keepalive_stream_and_timetolive(pair: tuple[str, EtcdServer, BackgroundSensor]) -> None:
    version, _, hp = pair
    rc, out = ctl(version, hp.addr, "lease", "grant", "60")
    lease = re.search(r"lease ([0-9a-f]+) granted with TTL\(60s\)", out)
    assert rc == 0 and lease, out
    lid = lease.group(1)
    assert ctl(version, hp.addr, "put", "/leased", "v", f"--lease={lid}")[0] == 0
    rc, out = ctl(version, hp.addr, "lease", "keep-alive", "--once", lid)
    assert rc == 0 and f"lease {lid} keepalived with TTL(60)" in out
    rc, out = ctl(version, hp.addr, "lease", "timetolive", lid, "--keys")
    want = rf"lease {lid} granted with TTL\(60s\), remaining\(\d+s\), attached keys\(\[/leased\]\)"
    assert rc == 0 and re.search(want, out), out
    assert ctl(version, hp.addr, "lease", "revoke", lid) == (0, f"lease {lid} revoked\n")
    assert ctl(version, hp.addr, "get", "/leased") == (0, "")
    calls = [e["grpc_method"] for e in hp.memory.of("grpc.request")]
    assert "/etcdserverpb.Lease/LeaseKeepAlive" in calls


AUTH_FLOW: list[list[str]] = [
    ["user", "add", "root:pw"],
    ["auth", "enable"],  # etcdctl adds the root role itself when etcd says it is missing
    ["get", "foo"],
    ["--user=root:pw", "get", "foo"],
    ["--user=root:bad", "get", "foo"],
    ["--user=root:pw", "user", "add", "alice:a"],
    ["--user=root:pw", "role", "add", "reader"],
    ["--user=root:pw", "role", "grant-permission", "reader", "read", "/app/", "--prefix"],
    ["--user=root:pw", "user", "grant-role", "alice", "reader"],
    ["--user=alice:a", "get", "/app/", "--prefix"],
    ["--user=alice:a", "put", "/app/x", "v"],
    ["--user=alice:a", "get", "foo"],
    ["--user=alice:a", "user", "list"],
    ["--user=root:pw", "user", "list"],
    ["member", "list"],
    ["--user=root:pw", "auth", "disable"],
    ["get", "foo"],
]


@pytest.mark.parametrize("version", ["3.4", "3.5"])
def test_auth_enable_locks_like_real_etcd(tmp_path: Path, version: str) -> None:
    """An attacker's `auth enable` is honoured: tokens, permissions and errors as etcd has them."""
    flow = AUTH_FLOW + ([["auth", "status"]] if version == "3.5" else [])
    with EtcdServer(EtcdConfig(version=version)) as real, \
            real_sensor(PERSONA[version], SEED, tmp_path) as hp:
        for k, v in SEED:
            real.put(k, v)
        mismatches = []
        for args in flow:
            rc_real, out_real = ctl(version, real.client_addr, *args)
            rc_hp, out_hp = ctl(version, hp.addr, *args)
            want, got = (rc_real, normalise(out_real, real.client_addr)), (rc_hp, normalise(out_hp, hp.addr))
            if want != got:
                mismatches.append(f"etcdctl {' '.join(args)}\n  etcd:     {want}\n  honeypot: {got}")
    assert not mismatches, "\n".join(mismatches)


def test_snapshot_save_completes_and_is_recorded(pair: tuple[str, EtcdServer, BackgroundSensor],
                                                 tmp_path: Path) -> None:
    version, _, hp = pair
    target = tmp_path / "dump.db"
    rc, out = ctl(version, hp.addr, "snapshot", "save", str(target))
    assert rc == 0 and f"Snapshot saved at {target}" in out
    data = target.read_bytes()
    assert len(data) % 4096 in (0, 32) and data[16:20] == bytes.fromhex("edda0ced")  # bolt magic, LE
    assert "/etcdserverpb.Maintenance/Snapshot" in [e["grpc_method"] for e in hp.memory.of("grpc.request")]

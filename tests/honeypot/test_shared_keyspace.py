"""`--workers 2` (one keyspace is the default; `--shared-keyspace` still accepted): one v3 keyspace and
revision sequence for every worker.

Real worker processes behind kernel steering; sources are 127.x addresses bound by the client
socket, chosen so that they land on different workers (the event log's `worker` field proves it).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.honeypot.serve.reuseport import worker_for
from etcdsec.testbed.etcd import etcd_binaries
from tests.support.harness import BackgroundSensor

from .conftest import b64, json_post, read_until
from .test_workers import children, request, start, stop, wait_for

SOURCES = [f"127.0.{i}.{i + 3}" for i in range(1, 13)]


def v3(ip: str, source: str, path: str, body: dict) -> dict:
    status, raw = request(ip, source, "POST", path, json.dumps(body))
    assert status == 200, (status, raw)
    return json.loads(raw)


def put(ip: str, source: str, key: str, value: str, lease: str | None = None) -> int:
    body = {"key": b64(key), "value": b64(value)} | ({"lease": lease} if lease else {})
    return int(v3(ip, source, "/v3/kv/put", body)["header"]["revision"])


def get(ip: str, source: str, key: str) -> tuple[int, str | None]:
    out = v3(ip, source, "/v3/kv/range", {"key": b64(key)})
    kvs = out.get("kvs", [])
    return int(out["header"]["revision"]), base64.b64decode(kvs[0]["value"]).decode() if kvs else None


def by_worker(sources: list[str]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for source in sources:
        out.setdefault(worker_for(source, 2), []).append(source)
    assert set(out) == {0, 1}
    return out


def events_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture
def shared(tmp_path):
    proc, ip, events = start(tmp_path)  # no flag: one keyspace is what --workers does
    yield proc, ip, events
    assert stop(proc) == 0


def test_a_write_through_one_worker_is_read_back_through_the_other_with_one_revision_sequence(shared) -> None:
    proc, ip, events = shared
    revisions = []
    for i, source in enumerate(SOURCES):  # each source writes, every other source reads it back
        revisions.append(put(ip, source, f"/shared/k{i}", f"v{i}"))
        for reader in SOURCES:
            _rev, value = get(ip, reader, f"/shared/k{i}")
            assert value == f"v{i}", (source, reader)
    # one revision sequence: each put, wherever it landed, took the next revision
    assert revisions == list(range(revisions[0], revisions[0] + len(SOURCES)))
    out = v3(ip, SOURCES[0], "/v3/kv/range", {"key": b64("/shared/"), "range_end": b64("/shared0")})
    assert int(out["count"]) == len(SOURCES)
    assert {int(kv["mod_revision"]) for kv in out["kvs"]} == set(revisions)
    assert stop(proc) == 0
    landed: dict[str, set[int]] = {}
    for event in events_of(events):
        if event["eventid"] == "etcdsec.http.request":
            landed.setdefault(event["src_ip"], set()).add(event["worker"])
    assert all(len(workers) == 1 for workers in landed.values())  # a source stays on its worker
    assert {next(iter(landed[s])) for s in SOURCES} == {0, 1}  # and the sources used both


def test_a_watch_through_one_worker_sees_writes_made_through_the_other(shared) -> None:
    _proc, ip, _events = shared
    sources = by_worker(SOURCES)
    for watcher_worker in (0, 1):
        watcher, writer = sources[watcher_worker][0], sources[1 - watcher_worker][0]
        key = f"/watched/{watcher_worker}"
        start_rev = put(ip, writer, key, "first")
        with socket.create_connection((ip, 2379), timeout=5, source_address=(watcher, 0)) as sock:
            # history from start_rev (replayed by the owner), then a live event made through the other worker
            sock.sendall(json_post("/v3/watch", {"create_request": {"key": b64(key), "start_revision": start_rev}}))
            got = read_until(sock, b'"created":true', 5)
            assert b'"created":true' in got
            put(ip, writer, key, "second")
            got += read_until(sock, b64("second").encode(), 5)
        assert b64("first").encode() in got and b64("second").encode() in got
        assert got.index(b64("first").encode()) < got.index(b64("second").encode())


def test_etcdctl_35_watch_lease_and_keys_across_workers(shared) -> None:
    """etcdctl against writes made from sources on the other worker. Its connections come from
    127.0.0.1 (the kernel's source for any 127.x destination), which lands on worker 1: etcdctl's gRPC
    calls, keep-alives and watch are all forwarded to the owner."""
    proc, ip, events = shared
    ctl_worker = worker_for("127.0.0.1", 2)
    assert ctl_worker == 1
    ctl_bin = etcd_binaries("3.5")[1]
    env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}
    endpoint = f"http://{ip}:2379"
    other = by_worker(SOURCES)[1 - ctl_worker][0]

    def ctl(*args: str) -> str:
        out = subprocess.run([str(ctl_bin), f"--endpoints={endpoint}", "--command-timeout=5s", *args], env=env,
                             capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, out.stderr
        return out.stdout.decode()

    # keys: etcdctl writes through its worker, a source on the other worker reads; and back
    ctl("put", "/ctl/a", "from-etcdctl")
    assert get(ip, other, "/ctl/a")[1] == "from-etcdctl"
    put(ip, other, "/ctl/b", "from-other-worker")
    assert ctl("get", "/ctl/b", "--print-value-only").strip() == "from-other-worker"

    # watch: etcdctl watches through its worker, the writes come through the other one
    watch = subprocess.Popen([str(ctl_bin), f"--endpoints={endpoint}", "watch", "/ctl/w", "--prefix"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        lines: list[str] = []

        def read() -> None:
            assert watch.stdout is not None
            for line in watch.stdout:
                lines.append(line.decode().strip())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(1.0)  # etcdctl has opened its watch (an earlier write would simply not show)
        for i in range(3):
            put(ip, other, f"/ctl/w{i}", f"x{i}")
        wait_for(lambda: sum(1 for x in lines if x.startswith("x")) >= 3, 15)
        assert [x for x in lines if x.startswith("x")] == ["x0", "x1", "x2"]
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(10)

    # leases: granted through the other worker, kept alive and read through etcdctl's worker
    lease = v3(ip, other, "/v3/lease/grant", {"TTL": 60})
    lease_hex = format(int(lease["ID"]), "016x")  # as etcdctl prints it (%016x): ids with a leading zero nibble too
    put(ip, other, "/ctl/leased", "v", lease=lease["ID"])
    assert f"lease {lease_hex} keepalived with TTL(60)" in ctl("lease", "keep-alive", "--once", lease_hex)
    ttl = ctl("lease", "timetolive", lease_hex, "--keys")
    assert "granted with TTL(60s)" in ttl and "/ctl/leased" in ttl
    ctl("lease", "revoke", lease_hex)
    assert get(ip, other, "/ctl/leased")[1] is None  # revoked through one worker, gone for the other
    assert stop(proc) == 0
    grpc = [e for e in events_of(events) if e["eventid"] == "etcdsec.grpc.request"]
    assert grpc and {e["worker"] for e in grpc} == {1} and {e["src_ip"] for e in grpc} == {"127.0.0.1"}


def test_a_killed_forwarding_worker_leaves_the_keyspace_whole(shared) -> None:
    proc, ip, _events = shared
    sources = by_worker(SOURCES)
    on0, on1 = sources[0][0], sources[1][0]
    written = put(ip, on1, "/kept", "before")
    workers = sorted(children(proc.pid))
    assert len(workers) == 2
    pids_before = set(workers)
    owner_rev = get(ip, on0, "/kept")[0]
    forwarder = workers[1]  # worker 1, forked after worker 0 (the owner)
    os.kill(forwarder, signal.SIGKILL)
    wait_for(lambda: len(set(children(proc.pid)) - pids_before) == 1, 15)
    wait_for(lambda: _answers(ip, on1), 15)
    out = v3(ip, on1, "/v3/kv/range", {"key": b64("/kept")})
    # nothing was lost: the key as written; the revision went on only by the control plane's own
    # lease renewals (every 2 s), never back
    assert out["kvs"][0]["value"] == b64("before") and int(out["kvs"][0]["mod_revision"]) == written
    rev = int(out["header"]["revision"])
    assert rev >= owner_rev
    assert put(ip, on1, "/kept", "after") > rev
    assert get(ip, on0, "/kept")[1] == "after"


def _answers(ip: str, source: str) -> bool:
    try:
        get(ip, source, "/kept")
        return True
    except (OSError, AssertionError):
        return False


def test_a_killed_owner_is_restarted_from_its_journal_and_relinked(shared) -> None:
    """kill -9 of worker 0: the supervisor starts it again, it loads the journalled keyspace and every
    forwarding worker gets a link to it; what was flushed before the kill is still there."""
    proc, ip, _events = shared
    sources = by_worker(SOURCES)
    on0, on1 = sources[0][0], sources[1][0]
    rev = put(ip, on1, "/durable", "written-through-worker-1")
    time.sleep(2.5)  # past the 1 s journal flush: kill -9 may lose only what came after it
    workers = sorted(children(proc.pid))
    os.kill(workers[0], signal.SIGKILL)  # worker 0, the owner (forked first)
    wait_for(lambda: len(set(children(proc.pid)) - set(workers)) == 1, 15)
    wait_for(lambda: _answers(ip, on1), 15)
    now, value = get(ip, on1, "/durable")
    assert value == "written-through-worker-1" and now >= rev
    assert put(ip, on1, "/durable", "again") > now  # the revision sequence goes on, through the new link
    assert get(ip, on0, "/durable")[1] == "again"


def test_errors_cross_the_link_unchanged(shared) -> None:
    """etcd's error code and text, through the owner's own connections and through a forwarding worker."""
    _proc, ip, _events = shared
    sources = by_worker(SOURCES)
    bodies = [
        ("/v3/kv/put", {"key": "", "value": b64("x")}),  # the JSON fast path
        ("/v3/kv/range", {"key": b64("k"), "revision": "999999999"}),  # future revision
        ("/v3/kv/txn", {"success": [{"request_put": {"key": ""}}]}),  # the protobuf path
        ("/v3/lease/revoke", {"ID": "12345"}),
    ]
    for path, body in bodies:
        answers = {request(ip, sources[w][0], "POST", path, json.dumps(body)) for w in (0, 1)}
        assert len(answers) == 1, (path, answers)  # the same status and bytes from both workers
        status, raw = answers.pop()
        assert status >= 400 and (b"etcdserver" in raw or b"mvcc" in raw), (path, status, raw)


def test_v2_writes_are_shared_too_with_one_index(shared) -> None:
    _proc, ip, _events = shared
    indexes = []
    for i, source in enumerate(SOURCES):
        status, raw = request(ip, source, "PUT", f"/v2/keys/v2shared/k{i}", f"value=v{i}")
        assert status == 201, raw
        indexes.append(json.loads(raw)["node"]["modifiedIndex"])
    assert indexes == list(range(indexes[0], indexes[0] + len(SOURCES)))  # one v2 index sequence
    for source in SOURCES:
        status, raw = request(ip, source, "GET", "/v2/keys/v2shared")
        assert status == 200
        assert {n["value"] for n in json.loads(raw)["node"]["nodes"]} == {f"v{i}" for i in range(len(SOURCES))}
    status, raw = request(ip, SOURCES[0], "GET", "/v2/keys/v2shared/missing")
    assert status == 404 and json.loads(raw)["errorCode"] == 100


def test_namespace_writes_stay_per_source_and_live_in_the_owner(tmp_path) -> None:
    """--namespace-writes with --shared-keyspace: each source still sees only its own writes (v3 and v2),
    and a forwarding worker's sources keep their namespace when that worker is killed (the owner holds it)."""
    proc, ip, _events = start(tmp_path, "--shared-keyspace", "--namespace-writes")
    try:
        sources = by_worker(SOURCES)
        mine, theirs = sources[1][0], sources[0][0]  # the writer is on the forwarding worker
        put(ip, mine, "/ns/k", "mine")
        assert request(ip, mine, "PUT", "/v2/keys/ns/k", "value=mine")[0] == 201
        assert get(ip, mine, "/ns/k")[1] == "mine"
        assert get(ip, theirs, "/ns/k")[1] is None
        assert request(ip, theirs, "GET", "/v2/keys/ns/k")[0] == 404
        workers = sorted(children(proc.pid))
        os.kill(workers[1], signal.SIGKILL)  # worker 1, the forwarding one
        wait_for(lambda: len(set(children(proc.pid)) - set(workers)) == 1, 15)
        wait_for(lambda: _answers(ip, mine), 15)
        assert get(ip, mine, "/ns/k")[1] == "mine"
        status, raw = request(ip, mine, "GET", "/v2/keys/ns/k")
        assert status == 200 and json.loads(raw)["node"]["value"] == "mine"
    finally:
        assert stop(proc) == 0


def test_namespace_writes_with_a_journalled_v2_store_in_one_process(tmp_path) -> None:
    """The per-source v2 copy leaves the journal's hook behind (deepcopy of its lock crashed: a 500)."""
    config = SensorConfig(persona="3.5.1", enable_v2=True, namespace_writes=True, state_file=None,
                          keyspace_state=tmp_path / "keyspace")
    with BackgroundSensor(config) as hp:
        assert request(hp.ip, "127.0.0.5", "PUT", "/v2/keys/ns/one", "value=a")[0] == 201
        assert request(hp.ip, "127.0.0.6", "GET", "/v2/keys/ns/one")[0] == 404
        assert request(hp.ip, "127.0.0.5", "GET", "/v2/keys/ns/one")[0] == 200

"""`--workers 2`: a forwarding worker serves Range from a replica the owner keeps current.

Real worker processes behind kernel steering; sources bound by the client socket, chosen with
`worker_for`. That a read really comes from the replica is shown by stopping the owner (SIGSTOP):
a read through the forwarding worker is still answered, with every write made before it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time

from etcdsec.honeypot.serve.reuseport import worker_for
from etcdsec.honeypot.v3.replica import MAX_PENDING
from etcdsec.testbed.etcd import etcd_binaries

from .conftest import b64
from .test_shared_keyspace import SOURCES, by_worker, get, put, v3
from .test_workers import children, request, start, stop


def _range(ip: str, source: str, body: dict) -> tuple[int, bytes]:
    return request(ip, source, "POST", "/v3/kv/range", json.dumps(body))


def test_every_read_through_either_worker_sees_every_write_made_before_it(tmp_path) -> None:
    proc, ip, _events = start(tmp_path)
    try:
        sources = by_worker(SOURCES)
        for i in range(40):  # writes alternate between the workers; each is read back at once through both
            writer = sources[i % 2][i // 2 % len(sources[i % 2])]
            rev = put(ip, writer, f"/rep/k{i % 7}", f"v{i}")
            for worker in (1, 0):
                reader = sources[worker][i % len(sources[worker])]
                out = v3(ip, reader, "/v3/kv/range", {"key": b64(f"/rep/k{i % 7}")})
                assert int(out["header"]["revision"]) >= rev, (i, worker)
                assert int(out["kvs"][0]["mod_revision"]) == rev, (i, worker)
        # the protobuf path too (a body the gateway's shortcut does not take), and a past revision
        on1 = sources[1][0]
        first = put(ip, on1, "/rep/hist", "old")
        put(ip, on1, "/rep/hist", "new")
        out = v3(ip, on1, "/v3/kv/range", {"key": b64("/rep/hist"), "revision": str(first), "keys_only": False,
                                           "serializable": True})
        assert out["kvs"][0]["value"] == b64("old")
        status, raw = _range(ip, on1, {"key": b64("/rep/"), "range_end": b64("/rep0"), "count_only": True})
        assert status == 200 and json.loads(raw)["count"] == "8"  # k0..k6 and hist

        # the owner stopped: the forwarding worker still answers reads, from its replica, with the last write
        owner = sorted(children(proc.pid))[0]  # worker 0, forked first
        os.kill(owner, signal.SIGSTOP)
        try:
            rev, value = get(ip, on1, "/rep/hist")
            assert value == "new"
            status, raw = _range(ip, on1, {"key": b64("/rep/k1")})
            assert status == 200 and json.loads(raw)["kvs"][0]["value"] == b64("v36")
        finally:
            os.kill(owner, signal.SIGCONT)
    finally:
        assert stop(proc) == 0


def test_auth_enabled_through_any_worker_reaches_the_replicas_reads(tmp_path) -> None:
    """etcdctl (from 127.0.0.1: the forwarding worker) turns auth on; reads without a token then fail
    through both workers, as one etcd's do, and with root's token they work again."""
    proc, ip, _events = start(tmp_path)
    try:
        assert worker_for("127.0.0.1", 2) == 1
        sources = by_worker(SOURCES)
        put(ip, sources[0][0], "/auth/k", "v")
        ctl_bin = etcd_binaries("3.5")[1]
        env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}

        def ctl(*args: str) -> str:
            out = subprocess.run([str(ctl_bin), f"--endpoints=http://{ip}:2379", "--command-timeout=5s", *args],
                                 env=env, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
            assert out.returncode == 0, out.stderr
            return out.stdout.decode()

        assert ctl("get", "/auth/k", "--print-value-only").strip() == "v"  # from the replica
        ctl("user", "add", "root:secret-pw")
        ctl("user", "grant-role", "root", "root")
        ctl("auth", "enable")
        answers = {_range(ip, sources[w][0], {"key": b64("/auth/k")}) for w in (0, 1)}
        assert len(answers) == 1  # the same refusal through the owner and through the forwarding worker
        status, raw = answers.pop()
        assert status != 200 and b"user name is empty" in raw, (status, raw)
        assert ctl("--user", "root:secret-pw", "get", "/auth/k", "--print-value-only").strip() == "v"
        ctl("--user", "root:secret-pw", "auth", "disable")
        assert get(ip, sources[1][0], "/auth/k")[1] == "v"  # off again: the replica answers again
    finally:
        assert stop(proc) == 0


def test_a_replica_nobody_read_from_for_many_writes_catches_up_from_a_fresh_snapshot(tmp_path) -> None:
    """More unread changes than a replica keeps (v3/replica.py MAX_PENDING): it drops them and the
    owner stops sending; the next read goes to the owner and asks for a snapshot, after which reads
    come from the replica again (proved with the owner stopped)."""
    proc, ip, _events = start(tmp_path)
    try:
        sources = by_worker(SOURCES)
        on0, on1 = sources[0][0], sources[1][0]
        conn = http.client.HTTPConnection(ip, 2379, timeout=10, source_address=(on0, 0))
        try:
            for i in range(MAX_PENDING + 200):  # bounded: one keep-alive connection to the owner
                body = json.dumps({"key": b64(f"/many/k{i % 50}"), "value": b64(f"v{i}")})
                conn.request("POST", "/v3/kv/put", body=body)
                assert conn.getresponse().read()
        finally:
            conn.close()
        last = f"v{MAX_PENDING + 199}"
        assert get(ip, on1, f"/many/k{(MAX_PENDING + 199) % 50}")[1] == last  # answered by the owner
        time.sleep(0.5)  # the snapshot it asked for arrives
        owner = sorted(children(proc.pid))[0]
        os.kill(owner, signal.SIGSTOP)
        try:
            assert get(ip, on1, f"/many/k{(MAX_PENDING + 199) % 50}")[1] == last  # from the replica again
        finally:
            os.kill(owner, signal.SIGCONT)
    finally:
        assert stop(proc) == 0

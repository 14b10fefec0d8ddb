"""`--workers N`: several sensor processes on one port, each client address always on the same one.

Real kernel steering (SO_REUSEPORT + BPF), real worker processes, loopback sources 127.0.0.x."""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from etcdsec.events.jsonl import JsonlWriter
from etcdsec.honeypot.serve.reuseport import listen_group, worker_for
from etcdsec.testbed.addresses import free_loopback_ip

SOURCES = [f"127.0.0.{i}" for i in range(1, 9)]


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_the_kernel_sends_each_source_where_worker_for_says(workers) -> None:
    ip = free_loopback_ip()
    group = listen_group(ip, 0, workers)
    port = group[0].getsockname()[1]
    try:
        seen = Counter()
        for i in range(1, 31):
            source = f"127.0.{i % 4}.{i}"
            with socket.socket() as client:
                client.bind((source, 0))
                client.connect((ip, port))
                ready, _, _ = select.select(group, [], [], 5)
                assert len(ready) == 1
                index = group.index(ready[0])
                ready[0].accept()[0].close()
            assert index == worker_for(source, workers), source
            seen[index] += 1
        assert len(seen) == workers  # every worker got some of the 30 sources
    finally:
        for sock in group:
            sock.close()


def test_worker_for_is_a_function_of_the_address_only() -> None:
    assert worker_for("::ffff:10.1.2.3", 4) == worker_for("10.1.2.3", 4)
    for n in (2, 4, 8):
        buckets = Counter(worker_for(f"198.51.{i // 256}.{i % 256}", n) for i in range(4096))
        assert min(buckets.values()) > 4096 / n * 0.8  # consecutive addresses spread evenly
        buckets6 = Counter(worker_for(f"2001:db8::{i:x}", n) for i in range(4096))
        assert min(buckets6.values()) > 4096 / n * 0.8


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    """`etcdsec honeypot --workers 2` on a free loopback address (its metrics on port 9108 there)."""
    ip = free_loopback_ip((2379, 9108))
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{ip}:2379", "--workers", "2",
                             "--enable-v2", "true", "--events", str(events), "--state", str(tmp_path / "state.json"),
                             "--metrics-listen", f"{ip}:9108", *extra], stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    assert "listening on" in line and "(2 workers)" in line, line
    return proc, ip, events


def request(ip: str, source: str, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(ip, 2379, timeout=10, source_address=(source, 0))
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_each_source_keeps_one_keyspace_and_metrics_add_up(tmp_path) -> None:
    proc, ip, events = start(tmp_path, "--keyspace-per-worker")
    try:
        for i, source in enumerate(SOURCES):  # every request on a fresh connection, as curl-driven attackers do
            status, _ = request(ip, source, "PUT", f"/v2/keys/w/k{i}", f"value=v{i}")
            assert status == 201
        for source in SOURCES:
            status, body = request(ip, source, "GET", "/v2/keys/w")
            assert status == 200
            seen = {node["value"] for node in json.loads(body)["node"]["nodes"]}
            expected = {f"v{j}" for j, other in enumerate(SOURCES) if worker_for(other, 2) == worker_for(source, 2)}
            assert seen == expected  # its own write, and only those of sources on the same worker
        assert len({worker_for(s, 2) for s in SOURCES}) == 2
    finally:
        assert stop(proc) == 0
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    starts = sorted(e["worker"] for e in lines if e["eventid"] == "etcdsec.sensor.start")
    stops = sorted(e["worker"] for e in lines if e["eventid"] == "etcdsec.sensor.stop")
    assert starts == stops == [0, 1]
    requests = [e for e in lines if e["eventid"] == "etcdsec.http.request"]
    assert len(requests) == 2 * len(SOURCES) and {e["src_ip"] for e in requests} == set(SOURCES)


def metric(ip: str, name: str) -> float:
    text = urllib.request.urlopen(f"http://{ip}:9108/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in {text}")


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_metrics_are_summed_and_a_killed_worker_is_replaced(tmp_path) -> None:
    proc, ip, _ = start(tmp_path)
    try:
        # a second sensor on the same port must not join the first one's SO_REUSEPORT group
        second = subprocess.run([sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{ip}:2379", "--workers",
                                 "2", "--state", str(tmp_path / "s2.json")], capture_output=True, timeout=30)
        assert second.returncode == 2 and "cannot listen" in second.stderr.decode()
        for source in SOURCES:
            assert request(ip, source, "GET", "/version")[0] == 200
        assert metric(ip, "etcdsec_honeypot_workers") == 2
        assert metric(ip, "etcdsec_honeypot_sessions_total") == len(SOURCES)
        workers = children(proc.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: len(children(proc.pid)) == 2 and workers[0] not in children(proc.pid))
        for source in SOURCES:  # both workers' sources are answered again
            assert request(ip, source, "GET", "/version")[0] == 200
        wait_for(lambda: metric(ip, "etcdsec_honeypot_workers") == 2)
    finally:
        assert stop(proc) == 0
    assert proc.stderr is not None
    assert "exited with -9; starting it again" in proc.stderr.read().decode()


def test_kill_9_of_the_supervisor_under_load_stops_the_workers_and_loses_no_answered_request(tmp_path) -> None:
    proc, ip, events = start(tmp_path, "--rate", "0")
    workers = children(proc.pid)
    answered = 0
    deadline = time.monotonic() + 3.0
    try:
        while time.monotonic() < deadline and answered < 300:  # bounded load loop, sources on both workers
            request(ip, SOURCES[answered % len(SOURCES)], "GET", f"/load/{answered}")
            answered += 1
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status")
                             .read_text().lower() for pid in workers))  # parent-death signal: they stop
    logged = {json.loads(x)["path"] for x in events.read_text().splitlines() if '"etcdsec.http.request"' in x}
    assert answered >= 50 and [i for i in range(answered) if f"/load/{i}" not in logged] == []


def _append(path: Path, writer_id: int, count: int) -> None:
    writer = JsonlWriter(path, max_bytes=16 << 10, backups=500, shared=True)
    for i in range(count):
        writer({"writer": writer_id, "i": i, "pad": "x" * (i % 97)})
    writer.close()


def test_workers_share_one_event_file_and_its_rotation_without_splitting_or_losing_a_line(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    count = 3000
    pids = []
    for writer_id in range(3):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _append(path, writer_id, count)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    assert all(os.waitpid(pid, 0)[1] == 0 for pid in pids)
    files = sorted(tmp_path.glob("events.jsonl*"))
    assert len(files) > 10  # rotated many times while three processes wrote
    seen = Counter()
    for f in files:
        data = f.read_bytes()
        assert data.endswith(b"\n")
        for line in data.splitlines():
            event = json.loads(line)  # every line whole
            seen[(event["writer"], event["i"])] += 1
    assert len(seen) == 3 * count and set(seen.values()) == {1}


def test_bad_worker_counts_are_one_line_errors(tmp_path) -> None:
    for value, message in (("0", "expected a number from 1 to 256"), ("x", "expected a number"),):
        out = subprocess.run([sys.executable, "-m", "etcdsec", "honeypot", "--workers", value,
                              "--state", str(tmp_path / "s.json")], capture_output=True, timeout=20, cwd=tmp_path)
        err = out.stderr.decode()
        assert out.returncode == 2 and err.startswith("etcdsec: error: ") and message in err and err.count("\n") == 1
    both = subprocess.run([sys.executable, "-m", "etcdsec", "honeypot", "--workers", "2", "--shared-keyspace",
                           "--keyspace-per-worker"], capture_output=True, timeout=20, cwd=tmp_path)
    err = both.stderr.decode()
    assert both.returncode == 2 and "not allowed with" in err and err.count("\n") == 1, err
    bad_seed = tmp_path / "seed.yaml"
    bad_seed.write_text("keys: [unclosed\n")
    for extra, message in ((["--events", "."], "cannot open event file"),
                           (["--seed", str(bad_seed)], "cannot read seed file")):
        out = subprocess.run([sys.executable, "-m", "etcdsec", "honeypot", "--workers", "2", *extra,
                              "--listen", f"{free_loopback_ip()}:2379", "--state", str(tmp_path / "s.json")],
                             capture_output=True, timeout=20, cwd=tmp_path)
        err = out.stderr.decode()
        assert out.returncode == 2 and message in err and err.count("\n") == 1, err

"""The keyspace survives restarts (issue 15): what attackers write, delete and lease is still there
after a clean stop and after `kill -9` (less at most the last flush interval); a torn or garbled
log is cut where it breaks, a damaged snapshot stops the start with one line; the default state
directory is the user's XDG state directory."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import etcd_binaries

SEED = {"keys": {"/registry/configmaps/default/app": "v1", "/registry/secrets/default/db": "hunter2"}}


class Honeypot:
    """`etcdsec honeypot` as a process on a loopback address, with its state where the test says."""

    def __init__(self, tmp: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.tmp, self.extra, self.env = tmp, extra, env
        self.ip = free_loopback_ip((2379,))
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = b""

    def start(self) -> Honeypot:
        seed = self.tmp / "seed.yaml"
        seed.write_text(yaml.safe_dump(SEED))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{self.ip}:2379", "--rate", "0",
             "--seed", str(seed), "--enable-v2", "true", *self.extra],
            stderr=subprocess.PIPE, cwd=self.tmp, env={**os.environ, **(self.env or {})})
        assert self.proc.stderr is not None
        self.stderr = b""  # this start's lines only
        while True:  # warnings (a damaged log) come before the "listening" line
            line = self.proc.stderr.readline()
            self.stderr += line
            if not line or b"listening on" in line:
                break
        assert b"listening on" in line, self.stderr.decode()
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(20)
        assert code == (0 if sig == signal.SIGTERM else -sig), code

    @property
    def endpoint(self) -> str:
        return f"http://{self.ip}:2379"

    def ctl(self, *args: str, stdin: str | None = None) -> str:
        env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}
        out = subprocess.run([str(etcd_binaries("3.5")[1]), f"--endpoints={self.endpoint}", "--command-timeout=5s",
                              *args], env=env, capture_output=True, timeout=20, input=(stdin or "").encode())
        assert out.returncode == 0, out.stderr.decode()
        return out.stdout.decode()

    def keys(self, prefix: str = "/") -> dict[str, str]:
        out = json.loads(self.ctl("get", prefix, "--prefix", "-w", "json"))
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
                for kv in out.get("kvs", [])}

    def revision(self) -> int:
        return int(json.loads(self.ctl("get", "/nothing", "-w", "json"))["header"]["revision"])

    def v2(self, method: str, key: str, value: str | None = None) -> tuple[int, dict]:
        data = f"value={value}".encode() if value is not None else None
        req = urllib.request.Request(f"{self.endpoint}/v2/keys{key}", data=data, method=method,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def test_writes_deletes_leases_and_txns_survive_a_restart(tmp_path: Path) -> None:
    hp = Honeypot(tmp_path, "--state", f"{tmp_path}/state/").start()
    try:
        hp.ctl("put", "/README-RANSOM", "send 1 BTC to bc1q...")
        hp.ctl("del", "/registry/secrets/default/db")
        lease = int(hp.ctl("lease", "grant", "300").split()[1], 16)
        hp.ctl("put", "--lease", f"{lease:x}", "/attacker/leased", "held")
        hp.ctl("txn", stdin="\nput /attacker/txn-a 1\nput /attacker/txn-b 2\n\n\n")
        assert hp.v2("PUT", "/v2/ransom", "pay")[0] == 201
        assert hp.v2("PUT", "/v2/gone", "x")[0] == 201
        assert hp.v2("DELETE", "/v2/gone")[0] == 200
        before_keys, before_rev = hp.keys(), hp.revision()
        before_v2 = hp.v2("GET", "/v2/ransom")[1]["node"]
    finally:
        hp.stop()
    stopped = time.monotonic()
    assert (tmp_path / "state" / "keyspace.snap").is_file()
    time.sleep(2)  # lets the lease's remaining TTL visibly shrink while the sensor is down

    hp.start()
    try:
        assert hp.keys() == before_keys
        assert "/registry/secrets/default/db" not in before_keys and "/README-RANSOM" in before_keys
        assert hp.revision() == before_rev  # this seed has no control-plane heartbeat: nothing else writes
        ttl = json.loads(hp.ctl("lease", "timetolive", f"{lease:x}", "--keys", "-w", "json"))
        down = time.monotonic() - stopped
        assert 0 < ttl["ttl"] <= 300 - int(down) and ttl["granted-ttl"] == 300, ttl
        assert [base64.b64decode(k).decode() for k in ttl["keys"]] == ["/attacker/leased"]
        assert hp.v2("GET", "/v2/ransom")[1]["node"] == before_v2
        assert hp.v2("GET", "/v2/gone")[0] == 404
        hp.ctl("lease", "revoke", f"{lease:x}")  # its key goes with it, and stays gone after a restart
    finally:
        hp.stop()
    hp.start()
    try:
        keys = hp.keys()
        assert "/attacker/leased" not in keys and keys["/attacker/txn-b"] == "2"
    finally:
        hp.stop()


def put_via_gateway(conn: http.client.HTTPConnection, key: str) -> None:
    body = json.dumps({"key": base64.b64encode(key.encode()).decode(), "value": "eA=="})
    conn.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200


def test_kill_9_mid_flood_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    flush, slack = 0.5, 1.0  # slack: a shared 2-core machine delays the flusher's turn
    hp = Honeypot(tmp_path, "--state", f"{tmp_path}/s/", "--state-flush", str(flush)).start()
    acked: list[float] = []
    conn = http.client.HTTPConnection(hp.ip, 2379, timeout=10)
    try:
        end = time.monotonic() + 4.0
        while time.monotonic() < end and len(acked) < 200_000:
            put_via_gateway(conn, f"/flood/{len(acked):07d}")
            acked.append(time.monotonic())
        killed = time.monotonic()
        hp.stop(signal.SIGKILL)
    finally:
        conn.close()
        if hp.proc is not None and hp.proc.poll() is None:
            hp.proc.kill()
    hp.start()
    try:
        kept = sorted(hp.keys("/flood/"))
    finally:
        hp.stop()
    assert kept == [f"/flood/{i:07d}" for i in range(len(kept))]  # a prefix: nothing lost in the middle
    lost = len(acked) - len(kept)
    recent = sum(1 for t in acked if t > killed - flush - slack)
    print(f"acknowledged {len(acked)}, kept {len(kept)}, lost {lost}, acknowledged in the last "
          f"{flush + slack} s {recent}")
    assert len(acked) > 200  # a flood, not a trickle
    assert 0 <= lost <= recent


def crash_with_log(tmp_path: Path, n: int) -> tuple[Honeypot, Path]:
    """n keys written, flushed to the log, then kill -9 (so the log, not a final snapshot, holds them)."""
    hp = Honeypot(tmp_path, "--state", f"{tmp_path}/s/", "--state-flush", "0.2").start()
    conn = http.client.HTTPConnection(hp.ip, 2379, timeout=10)
    try:
        for i in range(n):
            put_via_gateway(conn, f"/k/{i:03d}")
    finally:
        conn.close()
    time.sleep(1.5)
    hp.stop(signal.SIGKILL)
    log = tmp_path / "s" / "keyspace.log"
    assert log.stat().st_size > 100 * n // 2
    return hp, log


def test_a_torn_log_tail_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    hp, log = crash_with_log(tmp_path, 20)
    data = log.read_bytes()
    log.write_bytes(data[:-7])  # kill -9 in the middle of the last record's write
    hp.start()
    try:
        assert sorted(hp.keys("/k/")) == [f"/k/{i:03d}" for i in range(19)]
        assert b"torn or damaged" in hp.stderr and b"Traceback" not in hp.stderr
        assert (tmp_path / "s" / "keyspace.log.damaged").read_bytes() == data[:-7]  # kept as evidence
        hp.ctl("put", "/k/after", "1")  # and the keyspace takes writes again
    finally:
        hp.stop()


def test_a_garbled_log_record_ends_the_replay_there(tmp_path: Path) -> None:
    hp, log = crash_with_log(tmp_path, 20)
    data = bytearray(log.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in a record in the middle: its checksum fails
    log.write_bytes(bytes(data))
    hp.start()
    try:
        kept = sorted(hp.keys("/k/"))
        assert 0 < len(kept) < 20 and kept == [f"/k/{i:03d}" for i in range(len(kept))]
        assert b"Traceback" not in hp.stderr
    finally:
        hp.stop()


def test_a_damaged_snapshot_stops_the_start_with_one_line(tmp_path: Path) -> None:
    hp = Honeypot(tmp_path, "--state", f"{tmp_path}/s/").start()
    hp.stop()
    snap = tmp_path / "s" / "keyspace.snap"
    for damage in (snap.read_bytes()[:-3], b"\x00" * 64, b"\xff\xff\xff\x7f" + b"x" * 40):
        snap.write_bytes(damage)
        out = subprocess.run([sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{hp.ip}:2379",
                              "--state", f"{tmp_path}/s/"], capture_output=True, timeout=30, cwd=tmp_path)
        err = out.stderr.decode()
        assert out.returncode == 2 and "keyspace.snap" in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err


def test_the_default_state_directory_is_under_xdg_state_home(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    work = tmp_path / "work"
    work.mkdir()
    # a sensor of the version before kept its ids in the working directory: they are taken over once
    old = Honeypot(work, "--state", str(work / "etcdsec-honeypot.state.json"), "--forget-writes").start()
    try:
        member = json.loads(old.ctl("member", "list", "-w", "json"))["header"]["member_id"]
    finally:
        old.stop()
    before = {p.name for p in work.iterdir()}
    hp = Honeypot(work, env={"XDG_STATE_HOME": str(xdg)}).start()
    try:
        assert b"taken over" in hp.stderr
        assert json.loads(hp.ctl("member", "list", "-w", "json"))["header"]["member_id"] == member
        hp.ctl("put", "/mine", "1")
    finally:
        hp.stop()
    state = xdg / "etcdsec" / "honeypot"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert {p.name for p in state.iterdir()} >= {"state.json", "keyspace.snap", "keyspace.log"}
    assert {p.name for p in work.iterdir()} == before  # nothing new in the working directory
    hp.start()
    try:
        assert hp.keys()["/mine"] == "1" and b"taken over" not in hp.stderr
    finally:
        hp.stop()


def test_past_the_state_cap_puts_fail_as_etcds_quota_does(tmp_path: Path) -> None:
    hp = Honeypot(tmp_path, "--state", f"{tmp_path}/s/", "--state-max-bytes", "40000").start()
    try:
        env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}
        errors = []
        for i in range(100):
            for _attempt in range(3):  # a put that timed out on a loaded host is tried again
                out = subprocess.run([str(etcd_binaries("3.5")[1]), f"--endpoints={hp.endpoint}",
                                      "--command-timeout=5s", "put", f"/fill/{i}", "x" * 1000],
                                     env=env, capture_output=True, timeout=20)
                if b"deadline exceeded" not in out.stderr:
                    break
            if out.returncode:
                errors.append(out.stderr.decode())
                break
        assert errors and "etcdserver: mvcc: database space exceeded" in errors[0], errors
        assert hp.v2("PUT", "/v2/more", "x")[0] == 500
        lease = subprocess.run([str(etcd_binaries("3.5")[1]), f"--endpoints={hp.endpoint}", "lease", "grant", "60"],
                               env=env, capture_output=True, timeout=20)
        assert b"database space exceeded" in lease.stderr  # etcd's capped applier refuses grants too
        hp.ctl("del", "/fill/", "--prefix")  # deletes still work, as under etcd's NOSPACE alarm
    finally:
        hp.stop()


def test_a_snapshot_written_by_a_forked_child_while_writes_go_on(tmp_path: Path) -> None:
    """The periodic snapshot is serialised in a forked child; writes made meanwhile land in the old
    log and open the new one, so a crash at any point (here: no clean stop) keeps all flushed writes."""
    import asyncio

    from etcdsec.honeypot.sensor import Sensor, SensorConfig

    config = SensorConfig(listen=(free_loopback_ip((2379,)), 0), state_file=tmp_path / "s.json",
                          keyspace_state=tmp_path / "ks", seed_file=tmp_path / "seed.yaml")
    config.seed_file.write_text(yaml.safe_dump(SEED))  # type: ignore[union-attr]

    async def write_through_two_snapshots() -> tuple[int, int]:
        sensor = Sensor(config)
        journal, ns = sensor.keyspace, sensor.v3_state.namespaces()[0][1]
        assert journal is not None
        first = journal.journal.generation
        for generation in range(2):
            for i in range(45_000):  # ~5 MiB of log: past the size that calls for a snapshot
                with ns.store.txn() as txn:
                    txn.put(f"/big/{i}".encode(), b"v%d" % generation, 0)
                    txn.commit()
            await journal.flush()  # forks the snapshot's writer (it may be done by the time this returns)
            for n in range(200):
                with ns.store.txn() as txn:
                    txn.put(f"/during/{generation}/{n}".encode(), b"x", 0)
                    txn.commit()
                await journal.flush()
                if journal._child is None:
                    break
                await asyncio.sleep(0.05)
        assert journal._child is None and journal.journal.generation == first + 2
        with ns.store.txn() as txn:
            txn.put(b"/last", b"flushed", 0)
            txn.commit()
        await journal.flush()
        return ns.store.revision, ns.store.live_keys  # and no stop(): as after kill -9

    revision, live = asyncio.run(write_through_two_snapshots())
    again = Sensor(config).v3_state.namespaces()[0][1]
    assert again.store.revision == revision and again.store.live_keys == live
    assert again.store.get(b"/big/7").value == b"v1" and again.store.get(b"/last").value == b"flushed"
    assert again.store.get(b"/during/0/0") is not None


def test_hostile_state_files_with_valid_checksums(tmp_path: Path) -> None:
    """Checksums prove nothing against someone who writes the file: content is checked field by field."""
    from etcdsec.honeypot.persist.journal import MAGIC, VERSION, encode, frame

    state = tmp_path / "s"
    hp = Honeypot(tmp_path, "--state", f"{state}/").start()
    hp.stop()

    def snapshot(body: object) -> bytes:
        return encode({"magic": MAGIC, "version": VERSION, "generation": 7}) + frame(json.dumps(body).encode())

    def log(*records: dict) -> bytes:
        return encode({"magic": MAGIC, "generation": 7}) + b"".join(encode(r) for r in records)

    far = {"wall": -1e300, "v3": [["", {"rev": 9, "compact": 0, "raft": 9, "keys": [["/x", 9, 9, 1, "y", 5]],
                                          "leases": [[5, 60, 1e308]]}]],
           "v2": {"index": 9, "nodes": [["/ttl", "v", 8, 8, 1e308]]}}
    file_as_dir = {"index": 9, "nodes": [["/ttl", "v", 8, 8, 1e308], ["/ttl/under/a/file", "v", 9, 9, None]]}
    for body in ({"wall": "x"}, [], {"wall": 1.0, "v3": [["", {"rev": -1}]], "v2": {}}, {**far, "v2": file_as_dir}):
        (state / "keyspace.snap").write_bytes(snapshot(body))
        out = subprocess.run([sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{hp.ip}:2379",
                              "--state", f"{state}/"], capture_output=True, timeout=30, cwd=tmp_path)
        err = out.stderr.decode()
        assert out.returncode == 2 and len(err.strip().splitlines()) == 1 and "damaged" in err, err

    # far-off deadlines are clamped, not fatal; a log record with nonsense in it ends the replay there
    (state / "keyspace.snap").write_bytes(snapshot(far))
    (state / "keyspace.log").write_bytes(log({"t": "kv", "n": "", "r": 10, "f": 10, "w": 1.0,
                                              "c": [["/ok", 10, 10, 1, "1", 0]]},
                                             {"t": "kv", "n": "", "r": -3, "f": 0, "w": 0, "c": []},
                                             {"t": "kv", "n": "", "r": 12, "f": 12, "w": 1.0,
                                              "c": [["/after", 12, 12, 1, "1", 0]]}))
    hp.start()
    try:
        assert b"log record 2 is damaged" in hp.stderr and b"Traceback" not in hp.stderr
        assert hp.keys() == {"/x": "y", "/ok": "1"}
        assert json.loads(hp.ctl("lease", "timetolive", "5", "-w", "json"))["ttl"] > 0
        status, body = hp.v2("GET", "/ttl")
        assert status == 200 and body["node"]["expiration"].startswith("21")  # clamped to 100 years
    finally:
        hp.stop()


def get_via_gateway(ip: str, source: str, key: str) -> str | None:
    conn = http.client.HTTPConnection(ip, 2379, timeout=10, source_address=(source, 0))
    try:
        conn.request("POST", "/v3/kv/range", json.dumps({"key": base64.b64encode(key.encode()).decode()}),
                     {"Content-Type": "application/json"})
        kvs = json.loads(conn.getresponse().read()).get("kvs", [])
    finally:
        conn.close()
    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


def put_from(ip: str, source: str, key: str) -> None:
    conn = http.client.HTTPConnection(ip, 2379, timeout=10, source_address=(source, 0))
    try:
        put_via_gateway(conn, key)
    finally:
        conn.close()


def test_per_source_namespaces_and_workers_keep_their_own_keyspaces(tmp_path: Path) -> None:
    sources = [f"127.0.0.{i}" for i in range(1, 7)]
    for mode in (["--namespace-writes"], ["--workers", "2", "--keyspace-per-worker"], ["--workers", "2"]):
        where = tmp_path / "-".join(m.strip("-") for m in mode)
        where.mkdir()
        hp = Honeypot(where, "--state", f"{where}/s/", *mode).start()
        try:
            for source in sources:
                put_from(hp.ip, source, f"/mine/{source}")
        finally:
            hp.stop()
        hp.start()
        try:
            for source in sources:
                assert get_via_gateway(hp.ip, source, f"/mine/{source}") == "x", (mode, source)
                other = sources[(sources.index(source) + 1) % len(sources)]
                if mode == ["--namespace-writes"]:  # one source never sees another's writes
                    assert get_via_gateway(hp.ip, source, f"/mine/{other}") is None
                if mode == ["--workers", "2"]:  # one keyspace: every source sees every write, after a restart too
                    assert get_via_gateway(hp.ip, source, f"/mine/{other}") == "x", (mode, source)
        finally:
            hp.stop()
        kept = {p.name for p in (where / "s").glob("keyspace*.snap")}
        if "--keyspace-per-worker" in mode:
            assert kept == {"keyspace.w0.snap", "keyspace.w1.snap"}
        elif mode[0] == "--workers":  # worker 0 journals the one keyspace
            assert kept == {"keyspace.snap"}


def test_namespace_writes_with_a_journalled_v2_store(tmp_path: Path) -> None:
    """The per-source v2 copy leaves the journal's hook behind (a deepcopy of its lock was a 500)."""
    from etcdsec.honeypot.sensor import SensorConfig
    from tests.support.harness import BackgroundSensor

    from .test_workers import request

    config = SensorConfig(persona="3.5.1", enable_v2=True, namespace_writes=True, state_file=None,
                          keyspace_state=tmp_path / "keyspace")
    with BackgroundSensor(config) as hp:
        assert request(hp.ip, "127.0.0.5", "PUT", "/v2/keys/ns/one", "value=a")[0] == 201
        assert request(hp.ip, "127.0.0.6", "GET", "/v2/keys/ns/one")[0] == 404
        assert request(hp.ip, "127.0.0.5", "GET", "/v2/keys/ns/one")[0] == 200

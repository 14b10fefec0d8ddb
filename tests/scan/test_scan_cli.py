"""`etcdsec scan` end to end: the real CLI in a subprocess, real listeners and a real etcd on loopback."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from etcdsec.store.engine import open_engine
from etcdsec.store.scans import ScanStore
from etcdsec.store.schema import endpoints, progress
from etcdsec.testbed.addresses import port_free
from etcdsec.testbed.etcd import EtcdConfig
from tests.support.fakes import FakeServers

from .helpers import CountingListeners

PORT = 23799  # an unusual port, so nothing else on loopback answers inside our ranges


def etcdsec(*args, check=False, timeout=120):
    proc = subprocess.run([sys.executable, "-m", "etcdsec", *args], capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def random_block(prefix_len=20):
    """A random 127.x.y.0/prefix in 127.20-99.x (the test bed hands out 127.100+)."""
    second = random.randrange(20, 100)
    third = random.randrange(0, 256) & ~((1 << (24 - prefix_len)) - 1) if prefix_len <= 24 else 0
    return f"127.{second}.{third}.0/{prefix_len}", (second, third)


def listeners_in(block, count):
    second, third = block
    span = 1 << (24 - 20)
    chosen = set()
    while len(chosen) < count:
        chosen.add((f"127.{second}.{third + random.randrange(span)}.{random.randrange(1, 255)}", PORT))
    return sorted(chosen)


def stored(db):
    store = ScanStore(open_engine(db))
    with store.engine.connect() as conn:
        rows = conn.execute(select(endpoints.c.ip, endpoints.c.port)).all()
        swept = conn.execute(select(func.sum(progress.c.swept))).scalar()
    return [(r.ip, r.port) for r in rows], swept


def test_scan_finds_real_etcd_among_fakes_and_prints_jsonl(tmp_path, etcd_factory):
    etcd = etcd_factory("scan-open-3.5", EtcdConfig(version="3.5", name="kube-master-1"))
    etcd.put("/registry/secrets/default/token", "x")
    base = etcd.ip.rsplit(".", 1)[0]
    # two free neighbours in the etcd's /24 (the suite's other servers take random loopback addresses)
    json_ip, tarpit_ip = [ip for ip in (f"{base}.{last}" for last in range(250, 1, -1))
                          if ip != etcd.ip and port_free(ip, 2379) and port_free(ip, 2380)][:2]
    with FakeServers() as fakes:
        fakes.start("json", json_ip, 2379)
        fakes.start("tarpit", tarpit_ip, 2379)
        db = str(tmp_path / "scan.db")
        proc = etcdsec("scan", f"{base}.0/24", "--db", db, "--format", "jsonl", "--timeout", "4", "--seed", "3",
                       "--name", "t1", check=True)
    found = {(r["ip"], r["port"]): r for r in map(json.loads, proc.stdout.splitlines())}
    real = found[(etcd.ip, 2379)]
    assert real["is_etcd"] is True and real["version"] == "3.5.1" and real["exposed"] is True
    assert real["members"][0]["name"] == "kube-master-1"
    assert found[(etcd.ip, 2380)]["reachable"] is True
    assert found[(json_ip, 2379)]["is_etcd"] is False
    assert found[(tarpit_ip, 2379)]["is_etcd"] is not True
    # The same results are in the store, with the scan's totals.
    scans = ScanStore(open_engine(db)).list_scans()
    assert scans[0]["status"] == "finished" and scans[0]["counts"]["swept"] == 512
    assert scans[0]["counts"]["etcd"] >= 1
    assert set(stored(db)[0]) >= set(found)


def wait_for_progress(db, proc, limit=30.0):
    """Until the scan has written its first batch (bounded)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if (stored(db)[1] or 0) > 0:
                return
        except Exception:  # the schema is not there yet
            pass
        time.sleep(0.1)
    raise AssertionError("the scan wrote no progress in time")


def test_kill_9_then_resume_probes_everything_once(tmp_path):
    cidr, block = random_block(20)
    addresses = listeners_in(block, 40)
    db = str(tmp_path / "scan.db")
    with CountingListeners(addresses) as listeners:
        proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "scan", cidr, "-p", str(PORT), "--no-probe",
                                 "--rate", "1500", "--db", db, "--seed", "9", "-q"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_progress(db, proc)
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        partial, swept_before = stored(db)
        assert 0 < swept_before < 4096  # it really was cut short
        resumed = etcdsec("scan", "--resume", "--db", db, "-q", check=True)
        assert resumed.returncode == 0
        rows, swept = stored(db)
    assert swept == 4096  # every pair counted exactly once across the two runs
    assert sorted(rows) == addresses and len(rows) == len(set(rows))
    assert set(partial) <= set(rows)
    # What was written before the kill is never connected again; only pairs in flight or finished
    # in the last 0.25 s before it (not yet written) can have been connected twice.
    assert all(listeners.accepted[a] == 1 for a in partial)
    assert all(1 <= listeners.accepted[a] <= 2 for a in addresses)


def test_ctrl_c_stops_resumably_and_resume_finishes(tmp_path):
    cidr, block = random_block(20)
    addresses = listeners_in(block, 10)
    db = str(tmp_path / "scan.db")
    with CountingListeners(addresses):
        proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "scan", cidr, "-p", str(PORT), "--no-probe",
                                 "--rate", "1500", "--db", db, "--seed", "4"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_progress(db, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert "etcdsec scan --resume --scan 1" in err and "Traceback" not in err
        etcdsec("scan", "--resume", "--scan", "1", "--db", db, "-q", check=True)
        rows, swept = stored(db)
    assert swept == 4096 and sorted(rows) == addresses


def test_shards_in_parallel_processes_cover_the_range_once(tmp_path, pg_url):
    cidr, block = random_block(20)
    addresses = listeners_in(block, 30)
    with CountingListeners(addresses) as listeners:
        procs = [subprocess.Popen([sys.executable, "-m", "etcdsec", "scan", cidr, "-p", str(PORT), "--no-probe",
                                   "--shard", f"{k}/3", "--name", "sharded", "--db", pg_url, "-q"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for k in (1, 2, 3)]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    rows, swept = stored(pg_url)
    assert swept == 4096 and sorted(rows) == addresses
    assert all(listeners.accepted[a] == 1 for a in addresses)
    scans = ScanStore(open_engine(pg_url)).list_scans()
    assert len(scans) == 1 and scans[0]["status"] == "finished" and scans[0]["shards"] == 3


def test_import_then_scan_keeps_shodan_org(tmp_path):
    import gzip

    addresses = listeners_in(random_block(20)[1], 3)
    path = tmp_path / "shodan.json.gz"
    with gzip.open(path, "wt") as fh:
        for i, (ip, port) in enumerate(addresses):
            fh.write(json.dumps({"ip_str": ip, "port": port, "org": f"Org {i}", "asn": f"AS6450{i}"}) + "\n")
        fh.write("garbage\n")
    db = str(tmp_path / "scan.db")
    with CountingListeners(addresses):
        proc = etcdsec("scan", "--import", str(path), "--no-probe", "--db", db, "--format", "jsonl", check=True)
    assert "1 malformed skipped" in proc.stderr
    assert sorted((r["ip"], r["port"]) for r in map(json.loads, proc.stdout.splitlines())) == addresses
    metas = {r.ip: m for r, m in ScanStore(open_engine(db)).endpoint_results(1)}
    assert metas[addresses[0][0]]["org"] == "Org 0"


@pytest.mark.parametrize(("args", "message", "code"), [
    (["10.0.0.0/33x"], "cannot parse target", 2),
    (["203.0.113.0/24"], "nothing left to scan", 2),
    (["127.0.0.1", "--ports", "0"], "bad port list", 2),
    (["--import", "/nonexistent/masscan.json"], "cannot read import file", 2),
    (["127.0.0.1", "--db", "/nonexistent/dir/x.db"], "database directory does not exist", 3),
    (["127.0.0.1", "--shard", "3/2"], "--shard", 2),
    (["127.0.0.1", "--shard", "1/2"], "same --seed", 2),
    (["--resume"], "nothing to resume", 2),
    (["127.0.0.1", "--rate", "0"], "--rate", 2),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message, code):
    if "--db" not in args:
        args = [*args, "--db", str(tmp_path / "x.db")]
    proc = etcdsec("scan", *args, "-q")
    assert proc.returncode == code
    assert proc.stderr.startswith("etcdsec: error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_excluded_target_is_announced(tmp_path):
    proc = etcdsec("scan", "127.0.0.1", "192.0.2.0/24", "-p", str(PORT), "--no-probe", "--db",
                   str(tmp_path / "x.db"), check=True)
    assert "192.0.2.0/24 excluded" in proc.stderr and "TEST-NET-1" in proc.stderr
    assert "1 pairs swept" in proc.stdout




def test_ipv6_loopback_and_host_names(tmp_path):
    with CountingListeners([("::1", PORT)]):
        proc = etcdsec("scan", "::1", "localhost", "-p", str(PORT), "--no-probe", "--db", str(tmp_path / "x.db"),
                       "--format", "jsonl", check=True)
    found = [(r["ip"], r["port"]) for r in map(json.loads, proc.stdout.splitlines())]
    assert found == [("::1", PORT)]  # localhost's ::1 is the same address: merged, swept once


def test_database_gone_mid_scan_is_one_line_and_resume_finishes(tmp_path, pg_server):
    """The PostgreSQL database stops accepting the scan mid-way: exit 3 with one line, the batches
    already written stay, and once the database is back `--resume` finishes the scan exactly."""
    url = pg_server.new_database()
    name = url.rsplit("/", 1)[1]
    cidr, block = random_block(20)
    addresses = listeners_in(block, 20)
    with CountingListeners(addresses):
        proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "scan", cidr, "-p", str(PORT), "--no-probe",
                                 "--rate", "1500", "--db", url, "--seed", "5", "-q"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for_progress(url, proc)
        pg_server.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        pg_server.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
        assert err.startswith("etcdsec: error: database error while") and len(err.strip().splitlines()) == 1
        pg_server.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        rows_before, swept_before = stored(url)
        assert 0 < swept_before < 4096
        etcdsec("scan", "--resume", "--db", url, "-q", check=True)
        rows, swept = stored(url)
    assert swept == 4096 and sorted(rows) == addresses and set(rows_before) <= set(rows)


def test_resume_picks_the_unfinished_shard(tmp_path):
    cidr, block = random_block(20)
    addresses = listeners_in(block, 10)
    db = str(tmp_path / "scan.db")
    common = [cidr, "-p", str(PORT), "--no-probe", "--db", db, "--name", "two", "--seed", "8", "-q"]
    with CountingListeners(addresses):
        cut = etcdsec("scan", *common, "--shard", "1/2", "--rate", "1000", "--max-time", "0.5")
        assert cut.returncode == 130 and "--resume --scan 1" in cut.stderr and "--shard 1/2" in cut.stderr
        etcdsec("scan", *common, "--shard", "2/2", check=True)
        assert ScanStore(open_engine(db)).list_scans()[0]["status"] == "running"
        etcdsec("scan", "--resume", "--db", db, "-q", check=True)  # no --shard: only 1/2 is left
        rows, swept = stored(db)
    assert swept == 4096 and sorted(rows) == addresses
    assert ScanStore(open_engine(db)).list_scans()[0]["status"] == "finished"


def test_resume_errors_never_print_the_database_password(pg_server) -> None:
    """The server trusts every login, so the URL's password reaches etcdsec intact and must not be shown."""
    url = pg_server.url().replace("@", ":hunter2-canary@", 1)  # postgresql://user:password@host:port/db
    for extra in ((), ("--scan", "99")):
        proc = etcdsec("scan", "--resume", *extra, "--db", url)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert "hunter2-canary" not in proc.stderr + proc.stdout, proc.stderr
        assert "nothing to resume" in proc.stderr or "no scan 99" in proc.stderr, proc.stderr

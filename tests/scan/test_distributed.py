"""`etcdsec scan --workers` and `--cluster`: a real Dask LocalCluster of processes, a real `dask scheduler`
with two `dask worker` processes, a real PostgreSQL, real etcd and misbehaving servers on loopback.

The guarantee under test: whatever dies (a worker, the submitting command), the finished scan holds
every (address, port) of the target set exactly once, with the same endpoints and verdicts as a
one-process scan of the same targets and seed.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from etcdsec.store.engine import open_engine
from etcdsec.store.scans import ScanStore
from etcdsec.store.schema import endpoints, progress, scans
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig
from tests.support.dask_cluster import DaskCluster, environment_without_etcdsec
from tests.support.fakes import FakeServers

ETCDSEC = str(Path(sys.executable).parent / "etcdsec")  # the console script, as a user runs it
PORTS = "2379,2380"
PAIRS = 516  # (256 + 2 addresses) x 2 ports


def etcdsec(*args, check=False, timeout=300):
    proc = subprocess.run([ETCDSEC, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def bed(etcd_factory, tmp_path_factory):
    """`@targets-file`: the /24 of a real open etcd 3.5 (both ports), plus a JSON service that is not
    etcd and a tarpit on addresses of their own (free ones: the suite shares loopback with others)."""
    open_etcd = etcd_factory("dist-open-3.5", EtcdConfig(version="3.5", name="kube-master-1"))
    open_etcd.put("/registry/secrets/default/token", "x")
    json_ip, tarpit_ip = free_loopback_ip(), free_loopback_ip()
    path = tmp_path_factory.mktemp("bed") / "targets.txt"
    path.write_text(f"{open_etcd.ip.rsplit('.', 1)[0]}.0/24\n{json_ip}\n{tarpit_ip}\n")
    with FakeServers() as fakes:
        fakes.start("json", json_ip, 2379)
        fakes.start("tarpit", tarpit_ip, 2379)
        yield f"@{path}"


@pytest.fixture(scope="module")
def baseline(bed, tmp_path_factory):
    """The one-process scan of the bed: what every distributed scan must match."""
    db = str(tmp_path_factory.mktemp("baseline") / "one.db")
    proc = etcdsec("scan", bed, "-p", PORTS, "--db", db, "--seed", "11", "--timeout", "3", "--format", "jsonl",
                   "-q", check=True)
    return verdicts(proc.stdout.splitlines())


@pytest.fixture(scope="module")
def cluster():
    c = DaskCluster(workers=2).start()
    try:
        yield c
    finally:
        c.stop()


def verdicts(lines):
    """(address, port) -> what the scan concluded about it."""
    out = {}
    for line in lines:
        r = json.loads(line)
        key = (r["ip"], r["port"])
        assert key not in out, f"{key} printed twice"
        out[key] = (r["reachable"], r["is_etcd"], r["exposed"], r["severity"], r.get("version"))
    return out


def store_state(db):
    """(every stored endpoint's verdict, pairs swept over all shards, scans, finished scans)."""
    engine = open_engine(db)
    with engine.connect() as conn:
        rows = conn.execute(select(endpoints.c.result)).all()
        swept = conn.execute(select(func.sum(progress.c.swept))).scalar()
        statuses = [r.status for r in conn.execute(select(scans.c.status))]
    engine.dispose()
    return verdicts(r.result for r in rows), swept, statuses


def wait_for_progress(db, proc, at_least=1, limit=120.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            swept = store_state(db)[1] or 0
            if swept >= at_least:
                return swept
        except Exception:  # the schema is not there yet
            pass
        time.sleep(0.2)
    raise AssertionError(f"no progress in time (rc={proc.poll()})")


def test_local_workers_same_output_and_store_as_one_process(bed, baseline, tmp_path):
    db = str(tmp_path / "two.db")
    # Many more tasks than workers: several processes write the one SQLite file all along.
    proc = etcdsec("scan", bed, "-p", PORTS, "--db", db, "--seed", "11", "--timeout", "3", "--format", "jsonl",
                   "--workers", "2", "--tasks", "24", "-q", check=True)
    assert verdicts(proc.stdout.splitlines()) == baseline
    stored, swept, statuses = store_state(db)
    assert stored == baseline and swept == PAIRS and statuses == ["finished"]
    report = json.loads(etcdsec("report", "--db", db, "--format", "json", check=True).stdout)
    etcd = sum(v[1] is True for v in baseline.values())
    assert report["totals"]["swept"] == PAIRS and report["totals"]["etcd"] == etcd
    # Text output is the one-process summary line.
    text = etcdsec("scan", bed, "-p", PORTS, "--db", str(tmp_path / "t.db"), "--seed", "11", "--timeout", "3",
                   "--workers", "auto", "-q", check=True).stdout
    assert text.startswith(f"scan 1: {PAIRS} pairs swept, ") and "(etcdsec report --scan 1)" in text


def _sigint_default() -> None:
    # as a terminal's foreground job: a suite started in the background by a shell inherits SIGINT
    # ignored, and a command started from it would never see the Ctrl-C this test sends
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_local_ctrl_c_stops_resumably_and_resume_finishes(bed, baseline, tmp_path):
    db = str(tmp_path / "cut.db")
    # A new session, signalled as a whole: a terminal's Ctrl-C reaches the workers too.
    proc = subprocess.Popen([ETCDSEC, "scan", bed, "-p", PORTS, "--db", db, "--seed", "11", "--timeout", "3",
                             "--workers", "2", "--rate", "25"],  # ~20 s in all: Ctrl-C lands mid-scan on a loaded CI
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_sigint_default)
    wait_for_progress(db, proc, at_least=40)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "etcdsec scan --resume --scan 1" in err and "--workers 2" in err and "Traceback" not in err
    assert store_state(db)[1] < PAIRS
    etcdsec("scan", "--resume", "--db", db, "--workers", "2", "-q", check=True)
    stored, swept, statuses = store_state(db)
    assert stored == baseline and swept == PAIRS and statuses == ["finished"]


def test_cluster_worker_killed_mid_scan(bed, baseline, cluster, pg_url):
    pids = cluster.worker_pids()
    proc = subprocess.Popen([ETCDSEC, "scan", bed, "-p", PORTS, "--db", pg_url, "--seed", "11", "--timeout", "3",
                             "--cluster", cluster.address, "--rate", "60", "--name", "killed-worker", "-q",
                             "--tasks", "2"],  # one long task per worker: the killed one is mid-shard
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_progress(pg_url, proc, at_least=60)
    os.kill(next(iter(pids.values())), signal.SIGKILL)  # its task dies with it
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err + cluster.logs()
    stored, swept, statuses = store_state(pg_url)
    assert stored == baseline and swept == PAIRS and statuses == ["finished"]
    assert out.startswith(f"scan 1: {PAIRS} pairs swept")
    runs = ScanStore(open_engine(pg_url)).shard_states(1)
    assert max(s["runs"] for s in runs) >= 2  # some shard really was resumed by a second run
    cluster.wait_for_workers(2)  # the nanny restarted it


def test_cluster_submitter_killed_then_resumed(bed, baseline, cluster, pg_url):
    args = [ETCDSEC, "scan", bed, "-p", PORTS, "--db", pg_url, "--seed", "11", "--timeout", "3",
            "--cluster", cluster.address, "--rate", "60", "-q", "--format", "jsonl"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_progress(pg_url, proc, at_least=60)
    proc.kill()
    first, _ = proc.communicate(timeout=30)
    assert store_state(pg_url)[1] < PAIRS  # it really was cut short
    resumed = etcdsec("scan", "--resume", "--db", pg_url, "--cluster", cluster.address, "--format", "jsonl", "-q",
                      check=True)
    stored, swept, statuses = store_state(pg_url)
    assert stored == baseline and swept == PAIRS and statuses == ["finished"]
    # Between them, the two runs printed every endpoint (the resumed one prints what it finds in the store).
    assert set(verdicts(resumed.stdout.splitlines())) | set(verdicts(first.splitlines())) == set(baseline)


def test_cluster_detach_then_reattach(bed, baseline, cluster, pg_url):
    submitted = etcdsec("scan", bed, "-p", PORTS, "--db", pg_url, "--seed", "11", "--timeout", "3",
                        "--cluster", cluster.address, "--rate", "100", "--detach", check=True)
    assert "submitted" in submitted.stdout and "--resume --scan 1 --cluster" in submitted.stdout
    assert "etcdsec@" in submitted.stdout or "postgresql://" in submitted.stdout
    attached = etcdsec("scan", "--resume", "--db", pg_url, "--cluster", cluster.address, "-q", check=True)
    assert attached.stdout.startswith(f"scan 1: {PAIRS} pairs swept")
    stored, swept, statuses = store_state(pg_url)
    assert stored == baseline and swept == PAIRS and statuses == ["finished"]
    runs = ScanStore(open_engine(pg_url)).shard_states(1)
    # Re-attached to the running tasks: none started twice.
    assert all(s["runs"] == 1 for s in runs), [(s["shard_index"], s["runs"]) for s in runs]


def one_error_line(proc, text, code):
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("etcdsec: error: ") and text in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def no_scan_written(db):
    engine = open_engine(db)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(scans)).scalar() == 0
    finally:
        engine.dispose()


def test_cluster_with_sqlite_is_refused(tmp_path):
    db = str(tmp_path / "x.db")
    one_error_line(etcdsec("scan", "127.0.0.1", "--cluster", "tcp://127.0.0.1:1", "--db", db),
                   "--cluster needs --db postgresql://", 2)
    assert not Path(db).exists()


def test_unreachable_scheduler_is_one_line(pg_url):
    nobody = free_loopback_ip((8786,))
    proc = etcdsec("scan", "127.0.0.1", "--cluster", f"tcp://{nobody}:8786", "--db", pg_url)
    one_error_line(proc, f"cannot reach the Dask scheduler at tcp://{nobody}:8786", 3)
    assert no_scan_written(pg_url)


def test_scheduler_that_never_answers_is_one_line_within_the_connect_timeout(pg_url):
    """A port that accepts and then says nothing (a firewall's tarpit, a wrong service): the Dask
    handshake never comes, and the command gives up after its connect timeout (10 s), not never."""
    silent_ip = free_loopback_ip((8786,))
    with FakeServers() as fakes:
        fakes.start("silent", silent_ip, 8786)
        proc = etcdsec("scan", "127.0.0.1", "--cluster", f"tcp://{silent_ip}:8786", "--db", pg_url, timeout=120)
    one_error_line(proc, f"cannot reach the Dask scheduler at tcp://{silent_ip}:8786", 3)
    assert no_scan_written(pg_url)


def test_wrong_database_url_is_one_line(cluster, pg_server):
    url = pg_server.url("no_such_database")
    proc = etcdsec("scan", "127.0.0.1", "--cluster", cluster.address, "--db", url)
    one_error_line(proc, "database error", 3)
    assert "no_such_database" in proc.stderr


def test_worker_without_etcdsec_is_one_line(tmp_path, pg_url):
    python = environment_without_etcdsec(tmp_path / "env")
    bare = DaskCluster(workers=1, python=python).start()
    try:
        proc = etcdsec("scan", "127.0.0.1", "--cluster", bare.address, "--db", pg_url)
    finally:
        bare.stop()
    one_error_line(proc, "etcdsec is not installed there", 3)
    assert no_scan_written(pg_url)


@pytest.mark.parametrize(("args", "message"), [
    (["--workers", "0"], "--workers must be"),
    (["--workers", "many"], "expected a number or auto"),
    (["--workers", "2", "--cluster", "tcp://127.0.0.1:8786"], "pick one"),
    (["--workers", "2", "--shard", "1/2", "--seed", "1"], "--shard is for machines"),
    (["--workers", "2", "--detach"], "--detach needs --cluster"),
])
def test_bad_scale_out_arguments(tmp_path, args, message):
    one_error_line(etcdsec("scan", "127.0.0.1", *args, "--db", str(tmp_path / "x.db")), message, 2)


def test_one_worker_is_the_one_process_scan(tmp_path):
    db = str(tmp_path / "one.db")
    proc = etcdsec("scan", "127.0.0.1", "-p", "23797", "--no-probe", "--workers", "1", "--db", db, check=True)
    assert proc.stdout.startswith("scan 1: 1 pairs swept") and "shard tasks" not in proc.stderr
    assert ScanStore(open_engine(db)).list_scans()[0]["shards"] == 1


def test_probe_concurrency_is_per_worker_process():
    """A worker that runs two tasks at once gives each half of --probe-concurrency (a real Dask worker
    with two threads); outside a worker, and on a one-thread worker, a task gets all of it."""
    from distributed import Client, LocalCluster

    from etcdsec.scan.distributed import per_worker_share
    from etcdsec.scan.sweep import SweepConfig

    config = SweepConfig(probe_concurrency=64)
    assert per_worker_share(config).probe_concurrency == 64
    for threads, share in ((2, 32), (1, 64)):
        # In this process (inproc://, no traffic); the HTTP servers on loopback, not every interface.
        with LocalCluster(n_workers=1, threads_per_worker=threads, processes=False, dashboard_address=None,
                          scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                          worker_dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
            assert client.submit(per_worker_share, config, pure=False).result().probe_concurrency == share

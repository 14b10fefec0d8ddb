"""`etcdsec monitor exposure --workers` and `--cluster`: a real Dask LocalCluster of processes, a real
`dask scheduler` with two `dask worker` processes, the suite's PostgreSQL, real etcd 3.4 and 3.5.

The guarantees under test: the same report and drift events as one process for the same targets,
each target observed once per round, and a worker killed with SIGKILL loses no target: its
partitions resume on a worker from the history in the database, and a change is reported once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from etcdsec.store.engine import open_engine
from etcdsec.store.schema import monitor_events, monitor_observations
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.support.dask_cluster import DaskCluster
from tests.support.etcd_admin import enable_v3_auth, etcdctl
from tests.support.waiting import wait_for

from .conftest import read_events

CHANGED = "etcdsec.monitor.exposure.changed"


def etcdsec(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etcdsec", "monitor", "exposure", *args], capture_output=True,
                          text=True, timeout=timeout)


def counts(db: str) -> dict[str, int]:
    """Observations per target in the store."""
    engine = open_engine(db)
    try:
        with engine.connect() as conn:
            t = monitor_observations
            return dict(conn.execute(select(t.c.target, func.count()).group_by(t.c.target)).all())
    except Exception:  # the tables are not there yet
        return {}
    finally:
        engine.dispose()


def stored_changes(db: str, target: str) -> int:
    engine = open_engine(db)
    try:
        with engine.connect() as conn:
            e = monitor_events
            return conn.execute(select(func.count()).select_from(e).where(e.c.eventid == CHANGED,
                                                                           e.c.target == target)).scalar()
    finally:
        engine.dispose()


def changes(path: Path) -> list[tuple]:
    """What each change event says, without its times."""
    return sorted((e["target"], e["changes"], e["added"], e["removed"], e["worse"])
                  for e in read_events(path) if e["eventid"] == CHANGED)


def without_times(stdout: str) -> str:
    return re.sub(r"^worse: \S+ ", "worse: ", stdout, flags=re.M)


def test_local_workers_once_same_as_one_process(etcd_factory, tmp_path: Path) -> None:
    open_34 = etcd_factory("monitor-scale-3.4", EtcdConfig(version="3.4"))
    closed = [f"{free_loopback_ip()}:2379" for _ in range(3)]
    with EtcdServer(EtcdConfig(version="3.5")) as etcd:
        enable_v3_auth(etcd)
        targets = [etcd.client_addr, open_34.client_addr, *closed]
        runs = {"one": (), "two": ("--workers", "2")}

        def round_() -> dict[str, subprocess.CompletedProcess[str]]:
            return {name: etcdsec("--once", *targets, "--db", str(tmp_path / f"{name}.db"), "--events",
                                  str(tmp_path / f"{name}.jsonl"), "--timeout", "5s", *extra)
                    for name, extra in runs.items()}

        first = round_()
        etcdctl(etcd, "--user", "root:rootpw", "auth", "disable")  # between two runs, as from cron
        second = round_()
    for name in runs:
        assert first[name].returncode == 0, first[name].stderr
        assert second[name].returncode == 4, second[name].stderr
        assert "Traceback" not in first[name].stderr + second[name].stderr
    assert "partitions on 2 local workers" in first["two"].stderr
    assert first["two"].stdout == first["one"].stdout
    assert without_times(second["two"].stdout) == without_times(second["one"].stdout)
    lines = second["two"].stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines[:len(targets)]] == targets  # the order given
    assert lines[len(targets)].startswith("worse: ") and "+ETCD-ANON-READ-V3" in lines[len(targets)]
    assert changes(tmp_path / "two.jsonl") == changes(tmp_path / "one.jsonl")
    assert [c[0] for c in changes(tmp_path / "two.jsonl")] == [targets[0]]
    assert counts(str(tmp_path / "two.db")) == dict.fromkeys(targets, 2)  # each target once per round


def test_local_workers_ctrl_c_ends_cleanly(tmp_path: Path) -> None:
    """Ctrl-C in a terminal reaches the whole process group: the command stops its partitions, they
    write their last observations, and it exits 0 as the one-process monitor does."""
    targets = [f"{free_loopback_ip()}:2379" for _ in range(3)]
    db = tmp_path / "m.db"
    proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "monitor", "exposure", *targets, "--every", "0.3s",
                             "--db", str(db), "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert wait_for(lambda: len(counts(str(db))) == len(targets), timeout=120)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and out == ""  # closed ports from the first probe: no change to report
    before = counts(str(db))
    assert set(before) == set(targets)
    time.sleep(1.5)  # several --every: a worker left behind would have observed again
    assert counts(str(db)) == before


def test_cluster_worker_killed_partitions_resume(etcd_factory, pg_url: str, tmp_path: Path) -> None:
    open_34 = etcd_factory("monitor-scale-3.4", EtcdConfig(version="3.4"))
    closed = [f"{free_loopback_ip()}:2379" for _ in range(5)]
    ev = tmp_path / "events.jsonl"
    with EtcdServer(EtcdConfig(version="3.5")) as etcd, DaskCluster(workers=2) as cluster:
        enable_v3_auth(etcd)
        watched, address = etcd.client_addr, cluster.address
        targets = [watched, open_34.client_addr, *closed]
        proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "monitor", "exposure", *targets, "--every", "0.5s",
                                 "--timeout", "3s", "--cluster", cluster.address, "--db", pg_url, "--events", str(ev),
                                 "--partitions", "6"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert wait_for(lambda: len(counts(pg_url)) == len(targets) and min(counts(pg_url).values()) >= 2,
                            timeout=120), proc.stderr.read() if proc.poll() is not None else cluster.logs()
            with cluster.client() as client:
                busy = {w: keys for w, keys in client.processing().items() if keys}
            pids = cluster.worker_pids()
            victim = next(iter(busy))
            os.kill(pids[victim], signal.SIGKILL)  # its partitions die with it
            at_kill = counts(pg_url)
            assert wait_for(lambda: all(counts(pg_url)[t] >= at_kill[t] + 3 for t in targets), timeout=120), \
                cluster.logs()
            etcdctl(etcd, "--user", "root:rootpw", "auth", "disable")
            assert wait_for(lambda: [e for e in changes(ev) if e[0] == watched], timeout=60)
            seen = counts(pg_url)[watched]
            assert wait_for(lambda: counts(pg_url)[watched] >= seen + 3, timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err + cluster.logs()
        cluster.wait_for_workers(2)  # the nanny restarted the killed one
    assert "Traceback" not in err and f"partitions on {address}" in err
    # One watcher per target: the change was seen once, though two processes watched partitions.
    assert [e[0] for e in changes(ev)] == [watched]
    assert stored_changes(pg_url, watched) == 1
    lines = ev.read_text().splitlines()
    assert all(json.loads(line) for line in lines) and len(set(lines)) == len(lines)  # whole lines, each once
    assert [line for line in out.splitlines() if line] and all(watched in line for line in out.splitlines())
    assert "+ETCD-ANON-READ-V3" in out and out.count("\n") == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--cluster", "tcp://127.0.0.1:1"], "--cluster needs --db postgresql://"),
    (["--workers", "2", "--cluster", "tcp://127.0.0.1:1"], "pick one"),
    (["--workers", "0"], "--workers must be"),
    (["--partitions", "3"], "--partitions needs --workers or --cluster"),
    (["--workers", "2", "--metrics-listen", "127.0.0.1:9109"], "--metrics-listen serves one process's figures"),
])
def test_bad_scale_out_arguments_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "x.db"
    proc = etcdsec("127.0.0.1:2379", "--once", "--db", str(db), *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("etcdsec: error: ") and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not db.exists()  # refused before anything was written


def test_a_second_run_of_a_partition_waits_for_the_first(pg_url: str) -> None:
    """What keeps a target from being watched twice when Dask runs a task again while its first run
    still goes on (a worker it gave up on): the partition's lease. Held here as a first run holds it,
    a second run of the same partition waits, then gives up without observing anything."""
    from etcdsec.errors import StoreError
    from etcdsec.monitor.exposure import ExposureConfig
    from etcdsec.monitor.partition import lease_key
    from etcdsec.monitor.partition_task import PartitionJob, run_partition
    from etcdsec.store.shared import advisory_lease
    from etcdsec.targets import parse_target

    target = f"{free_loopback_ip()}:2379"
    config = ExposureConfig(targets=[parse_target(target)], db=pg_url, every=0.2)
    engine = open_engine(pg_url)
    try:
        with advisory_lease(engine, lease_key("run-1", 0), "the first run"):
            with pytest.raises(StoreError, match="partition 1/1 of the monitor is still held by another run"):
                run_partition(PartitionJob(config, 0, 1, "run-1", deadline=time.time() + 1.0))
            assert counts(pg_url) == {}
            # Another run's partition 0 is not this one's: it is not held back.
            run_partition(PartitionJob(dataclasses.replace(config, once=True), 0, 1, "run-2"))
            assert counts(pg_url) == {target: 1}
    finally:
        engine.dispose()

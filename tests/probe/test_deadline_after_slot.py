"""A probe's deadline covers the probe, not its wait for a concurrency slot: with one slot, an etcd
queued behind endpoints that each use their whole deadline (they accept and never answer) is still
probed in full and recognised. Checked on the three paths that queue probes: the API
(`probe_many`), `scan --probe-concurrency`, `monitor exposure --concurrency`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from etcdsec.probe.api import probe_many
from etcdsec.probe.options import ProbeOptions
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig
from tests.support.fakes import FakeServers

DEADLINE = 1.5


@pytest.fixture(scope="module")
def queue_bed(etcd_factory):
    """(the endpoints that use their whole deadline, an open etcd 3.4)."""
    etcd = etcd_factory("monitor-scale-3.4", EtcdConfig(version="3.4"))
    silent = [free_loopback_ip() for _ in range(3)]
    with FakeServers() as fakes:
        for ip in silent:
            fakes.start("silent", ip, 2379)
        yield [f"{ip}:2379" for ip in silent], etcd


def etcdsec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etcdsec", *args], capture_output=True, text=True, timeout=120)


def test_probe_many_one_slot(queue_bed) -> None:
    silent, etcd = queue_bed
    options = ProbeOptions(deadline=DEADLINE, connect_timeout=DEADLINE, request_timeout=DEADLINE)
    results = asyncio.run(probe_many([*silent, etcd.client_addr], options, concurrency=1))
    assert all("deadline" in (r.error or "") for r in results[:-1]), [r.error for r in results]
    assert results[-1].is_etcd is True and not results[-1].error and results[-1].version.startswith("3.4")


def test_monitor_one_slot(queue_bed, tmp_path) -> None:
    silent, etcd = queue_bed
    proc = etcdsec("monitor", "exposure", "--once", *silent, etcd.client_addr, "--concurrency", "1", "--timeout",
                   f"{DEADLINE}s", "--db", str(tmp_path / "m.db"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(line.endswith(" not exposed severity=none findings=-") for line in lines[:-1]), lines
    assert lines[-1].startswith(f"{etcd.client_addr} exposed ") and "ETCD-VERSION-DISCLOSED" in lines[-1]


def test_scan_one_probe_slot(queue_bed, tmp_path) -> None:
    silent, etcd = queue_bed
    proc = etcdsec("scan", *(t.split(":")[0] for t in silent), etcd.ip, "-p", "2379", "--probe-concurrency", "1",
                   "--timeout", str(DEADLINE), "--db", str(tmp_path / "s.db"), "--format", "jsonl", "-q")
    assert proc.returncode == 0, proc.stderr
    results = {r["ip"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert len(results) == 4
    assert all("deadline" in (results[t.split(":")[0]]["error"] or "") for t in silent)
    assert results[etcd.ip]["is_etcd"] is True and not results[etcd.ip]["error"]

"""`etcdsec probe` as a user runs it: formats, exit status, stdin, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

SECRET = "cli-planted-secret-91ab"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etcdsec", *args], input=stdin, capture_output=True,
                          text=True, timeout=60)


def open_server(etcd_factory) -> EtcdServer:
    return etcd_factory("cli-open", EtcdConfig(version="3.5", enable_v2=True),
                        lambda s: s.put("/registry/secrets/default/x", SECRET))


def test_json_and_exit_status_reflect_the_worst_severity(etcd_factory) -> None:
    s = open_server(etcd_factory)
    out = run("probe", s.client_addr, "--format", "json")
    assert out.returncode == 6, out.stderr  # critical
    [doc] = json.loads(out.stdout)
    assert doc["is_etcd"] is True and doc["severity"] == "critical" and doc["exposed"] is True
    for key in ("target", "ip", "port", "reachable", "error", "duration_ms", "scheme", "tls",
                "client_cert_required", "is_etcd", "role", "version", "cluster_version", "cluster_id",
                "member_id", "members", "leader", "start_time", "uptime_s", "db_size", "apis", "auth", "access",
                "data", "leaks", "exposed", "severity", "findings"):
        assert key in doc
    assert SECRET not in out.stdout + out.stderr
    # --fail-on above the worst severity: success.
    assert run("probe", s.client_addr, "--format", "json", "--fail-on", "none").returncode == 6
    closed = f"{free_loopback_ip((2379,))}:2379"
    assert run("probe", closed, "--format", "json").returncode == 0


def test_stdin_jsonl_csv_and_default_peer_port(etcd_factory) -> None:
    s = open_server(etcd_factory)
    out = run("probe", "-", "--format", "jsonl", stdin=f"# my cluster\n{s.ip}\n\n")
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert {(d["port"], d["role"]) for d in lines} == {(2379, "client"), (2380, "peer")}
    out = run("probe", s.client_addr, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert rows[0]["is_etcd"] == "True" and "ETCD-ANON-READ-V3" in rows[0]["finding_ids"]
    assert SECRET not in out.stdout


def test_table_names_the_verdict(etcd_factory) -> None:
    s = open_server(etcd_factory)
    out = run("probe", s.client_addr)
    assert "critical" in out.stdout and "ETCD-ANON-READ-V3" in out.stdout and "3.5.1" in out.stdout
    assert SECRET not in out.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path) -> None:
    for args in (["probe", "10.0.0.1:99999"], ["probe", "not a host"], ["probe"], ["probe", "--nope", "x"],
                 ["probe", "-f", str(tmp_path / "missing.txt")], ["probe", "x", "--cert", "/nonexistent"],
                 ["probe", "x", "--fail-on", "bogus"], ["nosuchcommand"]):
        out = run(*args)
        assert out.returncode == 2, args
        assert out.stderr.startswith("etcdsec: error: ") and out.stderr.count("\n") == 1, out.stderr
        assert "Traceback" not in out.stderr


def test_python_api_async_and_sync(etcd_factory) -> None:
    import asyncio

    import etcdsec

    s = open_server(etcd_factory)
    r = asyncio.run(etcdsec.probe(s.client_addr))
    assert isinstance(r, etcdsec.ProbeResult) and r.is_etcd is True
    import etcdsec.probe.api  # the package name must stay callable after this

    assert asyncio.run(etcdsec.probe(s.client_addr, etcdsec.ProbeOptions(collect_data=False))).data.key_count == 1
    assert etcdsec.probe_sync(s.client_addr).exposed
    many = asyncio.run(etcdsec.probe_many([s.client_addr, "127.0.0.1:1"], concurrency=2))
    assert [x.reachable for x in many] == [True, False]


def test_jsonl_streams_fast_endpoints_before_slow_ones(etcd_factory, fakes) -> None:
    s = open_server(etcd_factory)
    tarpit = free_loopback_ip((2379,))
    fakes.start("tarpit", tarpit)
    out = run("probe", f"{tarpit}:2379", s.client_addr, "--format", "jsonl", "--timeout", "3")
    first, second = (json.loads(line) for line in out.stdout.splitlines())
    assert first["target"] == s.client_addr and first["is_etcd"] is True
    assert second["target"] == f"{tarpit}:2379" and second["error"]

"""Audit real etcd processes through /proc, and check the semantics against what etcd really does.

Other tests may run etcd at the same time: every audit here is limited to the pid this test started.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcdsec.audit.engine import AuditReport, audit
from etcdsec.cli import main
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.support.etcd_admin import enable_v3_auth


def _live(server: EtcdServer) -> AuditReport:
    assert server.proc is not None
    return audit([], pids={server.proc.pid}, live=True)


def _by_id(report: AuditReport) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in report.findings:
        out.setdefault(f.id, []).extend([f.title, *f.evidence])
    return out


@pytest.fixture(scope="module", params=["3.4", "3.5"])
def insecure(request: pytest.FixtureRequest) -> Iterator[EtcdServer]:
    """Plain HTTP on a loopback address, a bare --enable-pprof flag and v2 switched on by ETCD_ENABLE_V2."""
    config = EtcdConfig(version=request.param, extra_flags=["--enable-pprof"],
                        extra_env={"ETCD_ENABLE_V2": "true"})
    with EtcdServer(config) as server:
        yield server


def test_live_process_argv_and_environ(insecure: EtcdServer) -> None:
    # What etcd really did with a bare flag and an environment variable:
    assert insecure.http("GET", "/debug/pprof/")[0] == 200
    assert insecure.http("GET", "/v2/keys/")[0] == 200
    report = _live(insecure)
    assert insecure.proc is not None
    pid = insecure.proc.pid
    (instance,) = report.instances
    assert instance["pid"] == pid
    found = _by_id(report)
    assert f"pid {pid} argv: --enable-pprof (bare: true)" in found["ETCD-PPROF"]
    assert f"pid {pid} environ: ETCD_ENABLE_V2=true" in found["ETCD-V2-API"]
    severities = Counter((f.id, f.severity) for f in report.findings)
    # Plain HTTP, but on 127.x: a local problem, not exposure.
    assert severities[("ETCD-CLIENT-TLS", "medium")] == 1
    assert "ETCD-LISTEN-EXPOSED" not in found
    # The data dir etcd created is 700; its owner is not `etcd` (the test runs etcd as itself).
    assert all("has mode" not in t for t in found.get("ETCD-DATA-DIR", []))
    assert any("owned by" in t for t in found["ETCD-DATA-DIR"])


def test_live_config_file_replaces_flags_and_env(tmp_path: Path) -> None:
    config_path = tmp_path / "etcd.conf.yml"
    server = EtcdServer(EtcdConfig(version="3.5", extra_flags=[f"--config-file={config_path}"],
                                   extra_env={"ETCD_ENABLE_V2": "true"}))
    peer = f"http://{server.ip}:{server.config.peer_port}"
    config_path.write_text(
        f"name: cfg\ndata-dir: {server.dir / 'cfgdata'}\n"
        f"listen-client-urls: {server.client_url}\nadvertise-client-urls: {server.client_url}\n"
        f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: cfg={peer}\ninitial-cluster-state: new\n"
        "log-level: warn\nenable-pprof: true\n"
        "client-cert-auth: true\n")  # top level: etcd ignores it
    with server:
        # etcd ran from the file alone: pprof on (file), v2 off (the env var was ignored).
        assert server.http("GET", "/debug/pprof/")[0] == 200
        assert server.http("GET", "/v2/keys/")[0] == 404
        assert (server.dir / "cfgdata").is_dir()
        report = _live(server)
    found = _by_id(report)
    assert f"{config_path}:10: enable-pprof=true" in found["ETCD-PPROF"]
    assert "ETCD-V2-API" not in found
    ignored = found["ETCD-IGNORED-SETTING"]
    assert any("ETCD_ENABLE_V2=true" in e and "--config-file" in e for e in ignored)
    assert any(f"{config_path}:11: client-cert-auth=true" in e for e in ignored)
    assert any("plain client URL" in t for t in found["ETCD-CLIENT-CERT-AUTH"])


def test_live_mutual_tls_member_is_clean_on_the_client_side(capsys: pytest.CaptureFixture[str]) -> None:
    with EtcdServer(EtcdConfig(version="3.5", client_cert_auth=True)) as server:
        assert server.proc is not None
        code = main(["audit", "--pid", str(server.proc.pid), "--format", "json"])
        doc = json.loads(capsys.readouterr().out)
    ids = {f["id"] for f in doc["findings"]}
    assert not ids & {"ETCD-CLIENT-TLS", "ETCD-CLIENT-CERT-AUTH", "ETCD-LISTEN-EXPOSED", "ETCD-CORS",
                      "ETCD-AUTH-TOKEN", "ETCD-FILE-PERMS"}
    assert code == 0  # what remains (plain peer URL on loopback, data-dir owner) is low
    assert [s["path"] for s in doc["sources"] if s["kind"] == "private key"]  # server.key was checked


def test_endpoint_adds_anonymous_access_seen_at_runtime(insecure: EtcdServer,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert insecure.proc is not None
    code = main(["audit", "--pid", str(insecure.proc.pid), "--endpoint", insecure.client_url, "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    rbac = [f for f in doc["findings"] if f["id"] == "ETCD-RBAC"]
    assert [(f["severity"], f["title"].split(" (")[0]) for f in rbac] == [
        ("critical", "anonymous clients can read and write keys over v3"),
        ("high", "the v2 API answers anonymous reads")]  # v2 is on in this server (ETCD_ENABLE_V2)
    assert rbac[0]["evidence"] == [f"live endpoint {insecure.client_url}"]
    assert code == 1


def test_endpoint_with_v3_auth_on_flags_simple_tokens_instead() -> None:
    with EtcdServer(EtcdConfig(version="3.5")) as server:
        enable_v3_auth(server)
        from etcdsec.commands.audit import _probe

        assert server.proc is not None
        report = audit([], pids={server.proc.pid}, live=True, probes=_probe([server.client_url]))
    found = _by_id(report)
    assert "ETCD-RBAC" not in found
    assert any("v3 auth is enabled with simple tokens" in t for t in found["ETCD-AUTH-TOKEN"])


def test_endpoint_requiring_client_certificates_passes_rbac_and_unreachable_is_reported() -> None:
    from etcdsec.commands.audit import _probe

    with EtcdServer(EtcdConfig(version="3.5", client_cert_auth=True)) as server:
        probes = _probe([server.client_url])
    assert probes[0].client_cert_required
    closed = _probe([server.client_url])  # the server is gone now: nothing listens there
    report = audit([], probes=probes + closed)
    found = [(f.id, f.severity, f.title) for f in report.findings]
    assert len(found) == 1 and found[0][:2] == ("ETCD-RBAC", "medium") and "not reachable" in found[0][2]


@pytest.mark.parametrize(("extra", "env", "etcd_says", "audit_says"), [
    (["--auto-tls", "false"], {}, "'false' is not a valid flag", "'false' is not a valid flag"),
    (["--enable-pprof=false"], {"ETCD_ENABLE_PPROF": "true"}, "conflicting environment variable",
     "conflicting environment variable"),
])
def test_configurations_etcd_refuses_are_reported(tmp_path: Path, extra: list[str], env: dict[str, str],
                                                   etcd_says: str, audit_says: str) -> None:
    import os
    import subprocess

    from etcdsec.testbed.addresses import free_loopback_ip
    from etcdsec.testbed.etcd import etcd_binaries

    ip = free_loopback_ip()
    etcd, _ = etcd_binaries("3.4")
    args = [f"--data-dir={tmp_path / 'd'}", f"--listen-client-urls=http://{ip}:2379",
            f"--advertise-client-urls=http://{ip}:2379", f"--listen-peer-urls=http://{ip}:2380",
            f"--initial-advertise-peer-urls=http://{ip}:2380", f"--initial-cluster=default=http://{ip}:2380", *extra]
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    ran = subprocess.run([str(etcd), *args], env={**clean_env, "ETCD_UNSUPPORTED_ARCH": "", **env},
                         capture_output=True, timeout=20)
    assert ran.returncode != 0 and etcd_says in ran.stderr.decode()
    unit = tmp_path / "etcd.service"
    env_lines = "".join(f"Environment={k}={v}\n" for k, v in env.items())
    unit.write_text(f"[Service]\n{env_lines}ExecStart={etcd} {' '.join(args)}\n")
    report = audit([unit])
    invalid = [f.title for f in report.findings if f.id == "ETCD-INVALID-CONFIG"]
    assert len(invalid) == 1 and audit_says in invalid[0]


def test_live_kube_apiserver_argv_and_a_shared_ca(tmp_path: Path) -> None:
    """kube-apiserver cannot run here; a process started under that name carries its argv in /proc."""
    import subprocess
    import sys

    with EtcdServer(EtcdConfig(version="3.5", client_cert_auth=True)) as server:
        assert server.proc is not None and server.ca is not None
        flags = ["--etcd-servers=http://127.0.0.1:2379", f"--client-ca-file={server.ca.cert_path}",
                 "--audit-policy-file=/etc/kubernetes/audit.yaml", "--audit-log-path=-"]
        stand_in = subprocess.Popen(["bash", "-c", 'exec -a kube-apiserver "$0" -c "import time; time.sleep(30)" "$@"',
                                     sys.executable, *flags])
        try:
            for _ in range(100):  # bounded wait for exec to replace bash
                if Path(f"/proc/{stand_in.pid}/cmdline").read_bytes().startswith(b"kube-apiserver\0"):
                    break
                subprocess.run(["sleep", "0.02"], check=True)
            report = audit([], pids={server.proc.pid, stand_in.pid}, live=True)
        finally:
            stand_in.kill()
            stand_in.wait(5)
    found = _by_id(report)
    assert {i["kind"] for i in report.instances} == {"etcd", "kube-apiserver"}
    assert "kube-apiserver talks to etcd over plain HTTP: http://127.0.0.1:2379" in found["K8S-ETCD-CLIENT"]
    assert any("no --encryption-provider-config" in t for t in found["K8S-ENCRYPTION"])
    assert any("rotation" in t for t in found["K8S-AUDIT-LOG"])
    # etcd's --trusted-ca-file and the API server's --client-ca-file are the same certificate.
    assert any(e == f"pid {stand_in.pid} argv: --client-ca-file={server.ca.cert_path}" for e in found["ETCD-UNIQUE-CA"])


def test_endpoint_findings_join_the_instance_they_belong_to(insecure: EtcdServer) -> None:
    from etcdsec.commands.audit import _probe

    assert insecure.proc is not None
    report = audit([], pids={insecure.proc.pid}, live=True, probes=_probe([insecure.client_url]))
    rbac = [f for f in report.findings if f.id == "ETCD-RBAC"]
    assert rbac and all(f.subject == f"etcd (pid {insecure.proc.pid})" for f in rbac)

"""Whole host trees, as kubeadm, kubespray, Debian, k3s and OpenShift lay them out, plus the traps."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from etcdsec.audit.engine import AuditReport, audit


def _ids(report: AuditReport) -> Counter[tuple[str, str]]:
    return Counter((f.id, f.severity) for f in report.findings)


def _one(report: AuditReport, rule: str) -> list[str]:
    found = [f for f in report.findings if f.id == rule]
    assert len(found) == 1, [f.title for f in found]
    return [found[0].title, *found[0].evidence]


EXPECTED: dict[str, dict[tuple[str, str], int]] = {
    # kubeadm's own defaults are clean for etcd; what kubeadm leaves undone is on the API server.
    "kubeadm": {("K8S-ENCRYPTION", "high"): 1, ("K8S-AUDIT-LOG", "medium"): 1},
    "kubespray": {("ETCD-METRICS-EXPOSED", "medium"): 1},
    # k3s's own secrets encryption writes aescbc first.
    "k3s": {("K8S-ENCRYPTION", "medium"): 1},
    "openshift": {},
    # Debian's package: plain HTTP, but on localhost only.
    "debian-default": {("ETCD-CLIENT-TLS", "medium"): 1, ("ETCD-CLIENT-CERT-AUTH", "medium"): 1,
                       ("ETCD-PEER-TLS", "low"): 1, ("ETCD-PEER-CERT-AUTH", "low"): 1,
                       ("ETCD-CORS", "low"): 2, ("ETCD-AUTH-TOKEN", "low"): 1},
    "exposed-host": {("ETCD-LISTEN-EXPOSED", "critical"): 1, ("ETCD-CLIENT-TLS", "critical"): 1,
                     ("ETCD-CLIENT-CERT-AUTH", "critical"): 2, ("ETCD-AUTO-TLS", "high"): 1,
                     ("ETCD-PPROF", "medium"): 1, ("ETCD-V2-API", "medium"): 1, ("ETCD-PEER-TLS", "low"): 1,
                     ("ETCD-PEER-CERT-AUTH", "low"): 1, ("ETCD-CORS", "low"): 2, ("ETCD-AUTH-TOKEN", "low"): 1},
    "config-file": {("ETCD-PEER-CERT-AUTH", "critical"): 1, ("ETCD-IGNORED-SETTING", "low"): 1},
    "kubeadm-traps": {("ETCD-LISTEN-EXPOSED", "critical"): 1, ("ETCD-CLIENT-TLS", "critical"): 1,
                      ("ETCD-CLIENT-CERT-AUTH", "critical"): 1, ("ETCD-CLIENT-CERT-AUTH", "info"): 1,
                      ("ETCD-UNIQUE-CA", "high"): 1, ("K8S-ENCRYPTION", "high"): 1, ("K8S-AUDIT-LOG", "low"): 1,
                      ("ETCD-CORS", "low"): 2, ("ETCD-AUTH-TOKEN", "low"): 1},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_tree_findings(tree: Callable[[str], Path], name: str) -> None:
    report = audit([tree(name)])
    assert _ids(report) == Counter(EXPECTED[name])
    assert not [s for s in report.sources if s.status not in ("read", "absent-optional")]


def test_debian_env_file_is_read_through_the_package_unit(tree: Callable[[str], Path]) -> None:
    report = audit([tree("debian-default")])
    (etcd,) = report.instances
    assert etcd["label"] == "etcd (systemd etcd.service)"
    assert etcd["settings"]["data-dir"]["value"] == "/var/lib/etcd/default"  # from the unit's Environment=
    kinds = {Path(s.path).name: s.kind for s in report.sources}
    assert kinds["etcd"] == "environment file" and kinds["default"] == "etcd data dir"


def test_exposed_host_evidence_points_at_the_lines(tree: Callable[[str], Path]) -> None:
    report = audit([tree("exposed-host")])
    exposed = _one(report, "ETCD-LISTEN-EXPOSED")
    assert "http://0.0.0.0:2379" in exposed[0] and "alongside https://10.0.0.5:2379" in exposed[0]
    assert exposed[1].endswith("etc/default/etcd:7: ETCD_LISTEN_CLIENT_URLS=https://10.0.0.5:2379,http://0.0.0.0:2379")
    # A bare --auto-tls inside DAEMON_ARGS: true, and traced to the line that set DAEMON_ARGS.
    auto = _one(report, "ETCD-AUTO-TLS")
    assert "bare --auto-tls means true" in auto[0]
    assert auto[1].endswith("etc/default/etcd:10: --auto-tls (bare: true)")
    assert _one(report, "ETCD-V2-API")[1].endswith("etc/default/etcd:9: ETCD_ENABLE_V2=true")
    cors = next(f for f in report.findings if f.id == "ETCD-CORS" and f.title.startswith("cors"))
    assert cors.evidence[0].endswith("etcd.service.d/override.conf:3: ETCD_CORS=*")


def test_config_file_overrides_insecure_flags_and_env(tree: Callable[[str], Path]) -> None:
    report = audit([tree("config-file")])
    (etcd,) = report.instances
    assert etcd["config_file"].endswith("etc/systemd/system/etcd.service:10")
    assert etcd["settings"]["listen-client-urls"]["value"] == "https://10.0.0.21:2379,https://127.0.0.1:2379"
    assert "auto-tls" not in etcd["settings"] and "enable-pprof" not in etcd["settings"]
    ignored = _one(report, "ETCD-IGNORED-SETTING")
    assert any("etcd.conf.yml:18: peer-client-cert-auth=true" in e and "peer-transport-security" in e
               for e in ignored)
    assert any("--listen-client-urls=http://0.0.0.0:2379 — ignored because --config-file" in e for e in ignored)
    assert any("etcd.env:2: ETCD_CLIENT_CERT_AUTH=false" in e for e in ignored)
    # The misplaced keys leave peer certificate auth off for real.
    assert "https://10.0.0.21:2380" in _one(report, "ETCD-PEER-CERT-AUTH")[0]


def test_kubeadm_traps(tree: Callable[[str], Path]) -> None:
    report = audit([tree("kubeadm-traps")])
    etcd = next(i for i in report.instances if i["kind"] == "etcd")
    assert etcd["settings"]["client-cert-auth"]["value"] == "false"  # the later extraArgs flag wins
    assert "identity" in _one(report, "K8S-ENCRYPTION")[0]
    assert _one(report, "K8S-ENCRYPTION")[1].endswith("encryption-config.yaml:8")
    unique = _one(report, "ETCD-UNIQUE-CA")
    assert "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt" in unique[1]  # different path, same cert
    assert "--client-ca-file=/etc/kubernetes/pki/ca.crt" in unique[2]


def test_openshift_script_env_and_mounts(tree: Callable[[str], Path]) -> None:
    root = tree("openshift")
    report = audit([root])
    (etcd,) = report.instances
    assert etcd["settings"]["listen-client-urls"]["value"].startswith("https://0.0.0.0:2379")
    assert etcd["settings"]["cipher-suites"]["via"] == "env"
    key = root / "etc/kubernetes/static-pod-resources/etcd-certs/secrets/etcd-all-certs/etcd-serving-master-0.key"
    assert any(s.real == key and s.status == "read" for s in report.sources)  # found through the hostPath mount


def test_k3s_config_file_is_found_and_clean(tree: Callable[[str], Path]) -> None:
    report = audit([tree("k3s")])
    etcd, apiserver = report.instances
    assert apiserver["label"] == "kube-apiserver (k3s embedded)"
    assert apiserver["settings"]["audit-log-maxage"]["from"].endswith("etc/rancher/k3s/config.yaml:7")
    assert etcd["settings"]["client-cert-auth"] == {
        "value": "true", "via": "config-file",
        "from": etcd["settings"]["client-cert-auth"]["from"]}
    assert etcd["settings"]["client-cert-auth"]["from"].endswith("db/etcd/config:4")


def test_k3s_without_secrets_encryption_stores_secrets_in_plaintext(tree: Callable[[str], Path]) -> None:
    root = tree("k3s")
    config = root / "etc/rancher/k3s/config.yaml"
    config.write_text(config.read_text().replace("secrets-encryption: true", "secrets-encryption: false"))
    dropin = root / "etc/rancher/k3s/config.yaml.d/50-audit.yaml"
    dropin.parent.mkdir()
    dropin.write_text("kube-apiserver-arg+:\n  - audit-log-maxage=7\n")
    dropin.chmod(0o644)
    report = audit([root])
    got = {(f.id, f.severity): f for f in report.findings}
    assert set(got) == {("K8S-ENCRYPTION", "high"), ("ETCD-FILE-PERMS", "medium")}
    assert "no --encryption-provider-config" in got[("K8S-ENCRYPTION", "high")].title
    assert got[("ETCD-FILE-PERMS", "medium")].subject.endswith("50-audit.yaml")
    apiserver = report.instances[1]
    assert apiserver["settings"]["audit-log-maxage"]["value"] == "7"  # `+` appends; the later entry wins

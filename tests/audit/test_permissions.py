"""File modes: manifests, env and config files, private keys, the data directory (CIS 1.1.7, 1.1.11)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from etcdsec.audit.engine import audit


def _perms(root: Path) -> dict[str, tuple[str, str]]:
    report = audit([root])
    return {f.subject: (f.id, f.severity) for f in report.findings if f.id in ("ETCD-FILE-PERMS", "ETCD-DATA-DIR")}


def test_a_host_with_right_modes_has_no_permission_findings(tree: Callable[[str], Path]) -> None:
    assert _perms(tree("kubeadm")) == {}


def test_loose_modes_are_reported_per_file(tree: Callable[[str], Path]) -> None:
    root = tree("kubeadm")
    manifest = root / "etc/kubernetes/manifests/etcd.yaml"
    key = root / "etc/kubernetes/pki/etcd/peer.key"
    client_key = root / "etc/kubernetes/pki/apiserver-etcd-client.key"
    data = root / "var/lib/etcd"
    manifest.chmod(0o644)
    key.chmod(0o640)
    client_key.chmod(0o400)  # stricter than 600 is fine
    data.chmod(0o750)
    got = _perms(root)
    shown = {Path(k).name: v for k, v in got.items()}
    assert shown == {"etcd.yaml": ("ETCD-FILE-PERMS", "medium"), "peer.key": ("ETCD-FILE-PERMS", "high"),
                     "etcd": ("ETCD-DATA-DIR", "high")}
    report = audit([root])
    titles = {f.title for f in report.findings if f.id in ("ETCD-FILE-PERMS", "ETCD-DATA-DIR")}
    assert any("has mode 640 (want 600 or stricter)" in t for t in titles)
    assert any("has mode 750 (want 700 or stricter)" in t for t in titles)


def test_encryption_config_readable_by_others_is_high(tree: Callable[[str], Path]) -> None:
    root = tree("kubeadm-traps")
    (root / "etc/kubernetes/enc/encryption-config.yaml").chmod(0o644)
    assert _perms(root)[str(root / "etc/kubernetes/enc/encryption-config.yaml")] == ("ETCD-FILE-PERMS", "high")


def test_a_missing_key_file_is_reported_not_skipped(tree: Callable[[str], Path]) -> None:
    root = tree("kubespray")
    (root / "etc/ssl/etcd/ssl/member-node1-key.pem").unlink()
    report = audit([root])
    missing = [f for f in report.findings if f.id == "AUDIT-SOURCE"]
    assert len(missing) == 1 and "member-node1-key.pem is missing" in missing[0].title

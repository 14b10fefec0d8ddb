"""Single files and partial trees: what is recognised, and what a stock unit would make of an env file."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

from etcdsec.audit.engine import audit
from etcdsec.audit.reporters import render_text


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_debian_env_file_without_its_unit_assumes_the_package_unit(tmp_path: Path) -> None:
    _write(tmp_path / "etc/default/etcd", 'ETCD_LISTEN_CLIENT_URLS="http://10.1.1.1:2379"\n')
    report = audit([tmp_path])
    (etcd,) = report.instances
    assert etcd["label"].startswith("etcd (Debian/Ubuntu etcd-server unit")
    assert etcd["settings"]["data-dir"] == {"value": "/var/lib/etcd/default", "via": "env",
                                            "from": "Debian/Ubuntu etcd-server unit default (assumed)"}
    exposed = [f for f in report.findings if f.id == "ETCD-LISTEN-EXPOSED"]
    assert exposed[0].severity == "high" and "routable private address" in exposed[0].title


def test_rpm_style_env_conf_and_yaml_conf_are_told_apart(tmp_path: Path) -> None:
    env_tree, yaml_tree = tmp_path / "rpm", tmp_path / "yaml"
    _write(env_tree / "etc/etcd/etcd.conf", "ETCD_NAME=a\nETCD_ENABLE_PPROF=true\n")
    _write(yaml_tree / "etc/etcd/etcd.conf", "name: a\nenable-pprof: true\n")
    for root, via in ((env_tree, "env"), (yaml_tree, "config-file")):
        report = audit([root])
        (etcd,) = report.instances
        assert etcd["settings"]["enable-pprof"]["via"] == via
        assert [f.id for f in report.findings].count("ETCD-PPROF") == 1


def test_single_config_file_with_weak_tls_parameters(tmp_path: Path) -> None:
    config = _write(tmp_path / "member.yml", (
        "name: m\nlisten-client-urls: https://127.0.0.1:2379\nlisten-peer-urls: https://127.0.0.1:2380\n"
        "tls-min-version: TLS1.1\n"
        "cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n"
        "experimental-peer-skip-client-san-verification: true\n"
        "client-transport-security: {cert-file: /c, key-file: /k, trusted-ca-file: /ca, client-cert-auth: true}\n"
        "peer-transport-security: {cert-file: /c, key-file: /k, trusted-ca-file: /ca, client-cert-auth: true}\n"))
    report = audit([config], root=tmp_path)
    got = Counter((f.id, f.severity) for f in report.findings if f.id != "AUDIT-SOURCE")
    assert got == {("ETCD-TLS-PARAMS", "medium"): 2, ("ETCD-PEER-CERT-AUTH", "medium"): 1}
    weak = next(f for f in report.findings if "non-AEAD" in f.title)
    assert "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA" in weak.title and "GCM" not in weak.title
    assert weak.evidence == [f"{config}:5: cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
                             "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"]
    # /k under --root does not exist: the missing key is reported, not skipped.
    assert any(f.id == "AUDIT-SOURCE" and "/k is missing" in f.title for f in report.findings)


def test_single_encryption_configuration_file(tmp_path: Path) -> None:
    enc = _write(tmp_path / "enc.yaml", (
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
        "- resources: [secrets]\n  providers:\n  - aesgcm: {keys: []}\n"))
    (finding,) = audit([enc]).findings
    assert (finding.id, finding.severity) == ("K8S-ENCRYPTION", "low")
    assert finding.evidence == [f"{enc}:6"]


def test_text_output_is_coloured_on_a_terminal(tmp_path: Path) -> None:
    env = _write(tmp_path / "etc/default/etcd", 'ETCD_LISTEN_CLIENT_URLS="http://0.0.0.0:2379"\n')
    report = audit([env.parent.parent.parent])
    coloured, plain = io.StringIO(), io.StringIO()
    render_text(report, coloured, colour=True)
    render_text(report, plain, colour=False)
    assert "\x1b[" in coloured.getvalue() and "\x1b[" not in plain.getvalue()
    assert "CRITICAL ETCD-LISTEN-EXPOSED" in plain.getvalue()


def test_shell_lines_in_a_default_file_do_not_hide_it(tmp_path: Path) -> None:
    _write(tmp_path / "etc/default/etcd", 'if [ -r /etc/etcd-extra ]; then . /etc/etcd-extra; fi\n'
                                          'ETCD_LISTEN_CLIENT_URLS="http://0.0.0.0:2379"\n')
    assert "ETCD-LISTEN-EXPOSED" in {f.id for f in audit([tmp_path]).findings}


def test_root_and_its_etc_directory_are_audited_as_the_tree(tmp_path: Path) -> None:
    _write(tmp_path / "etc/default/etcd", 'ETCD_LISTEN_CLIENT_URLS="http://0.0.0.0:2379"\n')
    _write(tmp_path / "etc/unrelated.conf", "x = 1\n")
    for path in (tmp_path, tmp_path / "etc"):
        report = audit([path], root=tmp_path)
        assert [s.path for s in report.sources if s.status == "unrecognised"] == []
        assert "ETCD-LISTEN-EXPOSED" in {f.id for f in report.findings}


def test_kube_apiserver_systemd_unit_the_hard_way(tmp_path: Path) -> None:
    _write(tmp_path / "etc/systemd/system/kube-apiserver.service", (
        "[Service]\nExecStart=/usr/local/bin/kube-apiserver \\\n"
        "  --etcd-servers=https://10.0.0.5:2379,http://10.0.0.6:2379 \\\n"
        "  --etcd-cafile=/var/lib/kubernetes/ca.pem \\\n"
        "  --encryption-provider-config /var/lib/kubernetes/encryption-config.yaml\n"), 0o644)
    _write(tmp_path / "var/lib/kubernetes/encryption-config.yaml", (
        "kind: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io/v1\nresources:\n"
        "  - resources: [secrets]\n    providers:\n      - aescbc: {keys: [{name: key1, secret: c2VjcmV0}]}\n"
        "      - identity: {}\n"))
    report = audit([tmp_path])
    got = Counter((f.id, f.severity) for f in report.findings)
    assert got == {("K8S-ETCD-CLIENT", "critical"): 1, ("K8S-ETCD-CLIENT", "high"): 1,
                   ("K8S-ENCRYPTION", "medium"): 1, ("K8S-AUDIT-LOG", "medium"): 1}
    enc = next(f for f in report.findings if f.id == "K8S-ENCRYPTION")
    assert "aescbc" in enc.title and enc.evidence[0].endswith("encryption-config.yaml:6")
    client = next(f for f in report.findings if f.id == "K8S-ETCD-CLIENT" and f.severity == "high")
    assert "--etcd-certfile, --etcd-keyfile" in client.title


def test_kubeadm_cluster_configuration_is_rendered_with_extra_args(tmp_path: Path) -> None:
    config = Path(__file__).parent / "fixtures/kubeadm-config/kubeadm-config.yaml"
    report = audit([config], root=tmp_path)  # nothing deployed under this root yet
    got = Counter((f.id, f.severity) for f in report.findings)
    assert got == {("ETCD-METRICS-EXPOSED", "medium"): 1, ("ETCD-CLIENT-CERT-AUTH", "info"): 1,
                   ("K8S-AUDIT-LOG", "medium"): 1, ("K8S-ENCRYPTION", "info"): 1}
    etcd = report.instances[0]
    assert etcd["settings"]["listen-metrics-urls"]["from"].endswith("kubeadm-config.yaml:16")
    assert etcd["settings"]["advertise-client-urls"]["value"] == "https://10.0.0.40:2379"  # InitConfiguration
    assert etcd["settings"]["cert-file"]["from"] == "kubeadm default"
    assert [s.status for s in report.sources if s.kind != "kubeadm config"] == ["absent-optional"]


def test_kubeadm_v1beta3_map_and_external_plain_etcd(tmp_path: Path) -> None:
    config = _write(tmp_path / "cluster.yaml", (
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
        "etcd:\n  external:\n    endpoints: [http://10.0.0.7:2379]\n"
        "apiServer:\n  extraArgs:\n    audit-policy-file: /etc/k/audit.yaml\n    audit-log-path: /var/log/a.log\n"))
    report = audit([config], root=tmp_path)
    got = {(f.id, f.severity): f.title for f in report.findings}
    assert "kube-apiserver talks to etcd over plain HTTP: http://10.0.0.7:2379" in got[("K8S-ETCD-CLIENT", "critical")]
    assert ("K8S-ETCD-CLIENT", "high") in got  # no etcd client certificate for the external etcd
    assert ("K8S-ENCRYPTION", "high") in got and ("K8S-AUDIT-LOG", "low") in got
    assert [i["kind"] for i in report.instances] == ["kube-apiserver"]


def test_loose_directory_with_a_symlink_loop_and_a_huge_file(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    _write(bundle / "etcd.conf.yml", "name: a\nenable-pprof: true\n")
    (bundle / "loop").symlink_to(bundle, target_is_directory=True)
    with (bundle / "huge.yaml").open("wb") as handle:
        handle.truncate(5 << 20)  # sparse: 5 MiB of zeros
    report = audit([bundle])
    assert [f.id for f in report.findings if f.id == "ETCD-PPROF"] == ["ETCD-PPROF"]
    huge = next(s for s in report.sources if s.path.endswith("huge.yaml"))
    assert huge.status == "unreadable" and "larger than 4 MiB" in huge.detail


def test_absolute_symlinks_in_a_tree_resolve_inside_the_tree(tmp_path: Path) -> None:
    tree = tmp_path / "host"
    _write(tree / "etc/etcd/real.env", 'ETCD_LISTEN_CLIENT_URLS="http://0.0.0.0:2379"\n')
    (tree / "etc/default").mkdir(parents=True)
    (tree / "etc/default/etcd").symlink_to("/etc/etcd/real.env")  # absolute, as on the original host
    report = audit([tree])
    assert "ETCD-LISTEN-EXPOSED" in {f.id for f in report.findings}
    assert all(str(tree) in s.path or not s.path.startswith("/") for s in report.sources)

"""systemd units, env files, shell scripts in pods, listen URLs and EncryptionConfiguration verdicts."""

from __future__ import annotations

from pathlib import Path

from etcdsec.audit import encryption, systemd
from etcdsec.audit.envfile import parse_env_file
from etcdsec.audit.model import host_path
from etcdsec.audit.shellcmd import find_invocation
from etcdsec.audit.urls import parse_urls
from etcdsec.audit.yamllines import load_all


def _unit(*texts: str, name: str = "etcd.service") -> systemd.Unit:
    unit = systemd.Unit(name)
    for i, text in enumerate(texts):
        systemd.apply_unit_file(unit, Path(f"f{i}"), text)
    return unit


def test_dropin_replaces_execstart_after_an_empty_reset_and_adds_environment() -> None:
    unit = _unit("[Service]\nEnvironment=A=1 \"B=two words\"\nExecStart=/usr/bin/etcd --a\n",
                 "[Service]\nExecStart=\nExecStart=/usr/bin/etcd \\\n  --b\nEnvironment=A=3\n")
    assert unit.exec_start is not None and unit.exec_start.value == "/usr/bin/etcd --b"
    assert (unit.exec_start.path, unit.exec_start.line) == (Path("f1"), 3)
    assert [(k, v.value) for k, v in unit.environment] == [("A", "1"), ("B", "two words"), ("A", "3")]


def test_specifiers_and_optional_environment_files() -> None:
    unit = _unit("[Service]\nEnvironmentFile=-/etc/default/%p\nEnvironmentFile=/etc/%N.env\n")
    assert [(p, opt) for p, opt, _ in unit.environment_files] == [("/etc/default/etcd", True),
                                                                   ("/etc/etcd.env", False)]


def test_unquoted_variable_splits_into_words_braced_one_stays_one_word() -> None:
    env = {"DAEMON_ARGS": "--auto-tls --enable-pprof", "URL": "http://a b"}
    words = systemd.exec_words("/usr/bin/etcd $DAEMON_ARGS --x=${URL}", env)
    assert words == [("/usr/bin/etcd", None), ("--auto-tls", "DAEMON_ARGS"), ("--enable-pprof", "DAEMON_ARGS"),
                     ("--x=http://a b", "URL")]


def test_unit_files_are_overridden_by_etc_and_dropins_sorted(tmp_path: Path) -> None:
    for rel in ("lib/systemd/system/etcd.service", "etc/systemd/system/etcd.service",
                "lib/systemd/system/etcd.service.d/20-b.conf", "etc/systemd/system/etcd.service.d/10-a.conf"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("[Service]\n")
    got = [p.relative_to(tmp_path).as_posix() for p in systemd.unit_files(tmp_path, "etcd.service")]
    assert got == ["etc/systemd/system/etcd.service", "etc/systemd/system/etcd.service.d/10-a.conf",
                   "lib/systemd/system/etcd.service.d/20-b.conf"]


def test_env_file_quotes_comments_export_and_continuations() -> None:
    text = ("# c\nexport A='x y'\nB=\"http://a,http://b\" # trailing\nC=one\\\ntwo\n"
            "; also a comment\nnot an assignment\n")
    assert [(e.key, e.value, e.line) for e in parse_env_file(text)] == [
        ("A", "x y", 2), ("B", "http://a,http://b", 3), ("C", "onetwo", 4)]


def test_shell_script_invocation_through_wrappers() -> None:
    script = ("set -x\netcdctl member list || true\nexec nice -n -19 ionice -c2 -n0 etcd \\\n"
              "  --cert-file=/c \\\n  --listen-client-urls=https://0.0.0.0:2379 || mv a b\n")
    assert find_invocation(script, "etcd") == ["--cert-file=/c", "--listen-client-urls=https://0.0.0.0:2379"]
    assert find_invocation("echo hi", "etcd") is None


def test_container_paths_map_to_host_paths_through_mounts() -> None:
    mounts = [("/etc/kubernetes/static-pod-certs", "/etc/kubernetes/static-pod-resources/etcd-certs"),
              ("/etc/kubernetes", "/etc/kubernetes")]
    assert host_path("/etc/kubernetes/static-pod-certs/secrets/a.key", mounts) == \
        "/etc/kubernetes/static-pod-resources/etcd-certs/secrets/a.key"
    assert host_path("/var/lib/etcd", mounts) == "/var/lib/etcd"


def test_listen_urls_are_classified_by_reach() -> None:
    reach = {u.text: u.reach for u in parse_urls(
        "http://0.0.0.0:2379, http://[::]:2379,http://127.0.0.5:2379,http://localhost:2379,"
        "http://10.1.2.3:2379,http://8.8.8.8:2379,http://etcd.example:2379,unix://sock:0,http://:2379")}
    assert reach == {"http://0.0.0.0:2379": "wildcard", "http://[::]:2379": "wildcard",
                     "http://127.0.0.5:2379": "loopback", "http://localhost:2379": "loopback",
                     "http://10.1.2.3:2379": "private", "http://8.8.8.8:2379": "public",
                     "http://etcd.example:2379": "name", "unix://sock:0": "local-socket",
                     "http://:2379": "wildcard"}


def _verdict(resources: str) -> encryption.Verdict:
    doc = load_all("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n" + resources)[0]
    return encryption.secrets_verdict(doc)


def test_first_provider_of_the_first_matching_entry_decides() -> None:
    identity_first = _verdict("resources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n"
                              "  - aescbc: {keys: []}\n- resources: ['*.*']\n  providers:\n  - aescbc: {}\n")
    assert identity_first.severity == "high" and "identity" in identity_first.title
    assert identity_first.line == 6
    assert _verdict("resources:\n- resources: ['*.*']\n  providers:\n  - secretbox: {}\n").severity is None
    assert _verdict("resources:\n- resources: [secrets]\n  providers:\n  - kms: {apiVersion: v2}\n").severity is None
    assert _verdict("resources:\n- resources: [secrets]\n  providers:\n  - aescbc: {}\n").severity == "medium"
    assert _verdict("resources:\n- resources: [configmaps]\n  providers:\n  - aescbc: {}\n").severity == "high"
    # The first entry matching Secrets wins, even when a later, more specific one would encrypt.
    assert _verdict("resources:\n- resources: ['*.']\n  providers:\n  - identity: {}\n"
                    "- resources: [secrets]\n  providers:\n  - kms: {}\n").severity == "high"

"""Hostile files planted where etcd configuration lives: the audit stays bounded and reports each one.

Bombs run the real CLI in a child process under a 1 GiB address-space limit, so a regression fails
(MemoryError, traceback) instead of taking the machine down.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdsec.audit.engine import audit
from etcdsec.audit.yamllines import UnsafeYAMLError, check_aliasing, load_all

SAFETY_TIMEOUT = 300  # a bound on a hung child, not a speed claim
MEMORY_LIMIT = 1 << 30


def _anchors(prefix: str = "") -> list[str]:
    """Nine levels of anchors, nine aliases each: 9**9 leaves if expanded."""
    lines = [f"{prefix}a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{prefix}{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return lines


def bomb_manifest() -> str:
    text = "\n".join(_anchors("x-")) + """
apiVersion: v1
kind: Pod
metadata: {name: etcd, namespace: kube-system}
spec:
  containers:
  - name: etcd
    command: [etcd, *i]
    args: *i
"""
    assert len(text) < 1024
    return text


def bomb_config() -> str:
    return "\n".join(_anchors()) + "\nname: etcd-1\nlisten-client-urls: *i\n"  # 35 MB of text output before


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etcdsec", *args], capture_output=True, text=True,
                          timeout=SAFETY_TIMEOUT, preexec_fn=_limit_memory)


def _source_findings(doc: dict, name: str) -> list[dict]:
    return [f for f in doc["findings"] if f["id"] == "AUDIT-SOURCE" and f["subject"].endswith(name)]


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_alias_bomb_in_static_pod_manifest_is_refused(tmp_path: Path, fmt: str) -> None:
    manifest = tmp_path / "etc/kubernetes/manifests/etcd.yaml"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(bomb_manifest())
    done = run_cli("audit", str(tmp_path), "--format", fmt, "--fail-on", "none")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "excessive aliasing" in done.stdout
    assert len(done.stdout) < 50_000
    if fmt == "json":
        (finding,) = _source_findings(json.loads(done.stdout), "etcd.yaml")
        assert finding["severity"] == "medium"
        assert "unparsable" in finding["title"]


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_alias_bomb_in_etcd_config_file_is_refused(tmp_path: Path, fmt: str) -> None:
    config = tmp_path / "etcd.conf.yml"
    config.write_text(bomb_config())
    done = run_cli("audit", str(config), "--format", fmt, "--fail-on", "none")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "excessive aliasing" in done.stdout
    assert len(done.stdout) < 50_000  # was 17 MB from a 700-byte file


def test_alias_bomb_in_a_tree_config_leaves_the_rest_audited(tmp_path: Path) -> None:
    (tmp_path / "etc/etcd").mkdir(parents=True)
    (tmp_path / "etc/etcd/etcd.conf.yml").write_text(bomb_config())
    manifests = tmp_path / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    (manifests / "etcd.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: etcd\n"
        "    command: [etcd, --listen-client-urls=http://0.0.0.0:2379]\n")
    report = audit([tmp_path])
    sources = {Path(s.path).name: s for s in report.sources}
    assert sources["etcd.conf.yml"].status == "unparsable"
    assert "excessive aliasing" in sources["etcd.conf.yml"].detail
    assert any(f.id == "ETCD-LISTEN-EXPOSED" and f.severity == "critical" for f in report.findings)


def test_ordinary_anchors_still_load() -> None:
    text = "defaults: &d {cert-file: /a.crt, key-file: /a.key}\n" \
           "client-transport-security: *d\npeer-transport-security: *d\n"
    (doc,) = load_all(text)
    assert doc["peer-transport-security"]["key-file"] == "/a.key"


def test_anchor_that_contains_itself_is_refused() -> None:
    with pytest.raises(UnsafeYAMLError, match="contains itself"):
        load_all("name: &a [x, *a]\n")


def test_alias_budget_follows_go_yaml() -> None:
    """Mostly aliases past 1,000 nodes: refused; the same document unaliased: accepted."""
    import yaml

    wide = "a: &a [" + ",".join(["x"] * 20) + "]\nb: [" + ",".join(["*a"] * 500) + "]\n"
    with pytest.raises(UnsafeYAMLError):
        check_aliasing(yaml.compose(wide, Loader=yaml.SafeLoader))
    flat = "a: [" + ",".join(["x"] * 1300) + "]\n"
    assert check_aliasing(yaml.compose(flat, Loader=yaml.SafeLoader)) > 1300


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_long_values_are_cut_in_every_format(tmp_path: Path, fmt: str) -> None:
    config = tmp_path / "etcd.conf.yml"
    config.write_text(f"name: x\nlisten-client-urls: http://0.0.0.0:2379\nauto-tls: {'A' * 300_000}\n")
    done = run_cli("audit", str(config), "--format", fmt, "--fail-on", "none")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "more characters cut" in done.stdout
    assert len(done.stdout) < 60_000


def test_control_characters_are_visible_in_text_and_exact_in_json(tmp_path: Path) -> None:
    config = tmp_path / "etcd.conf.yml"
    config.write_text('name: x\nlisten-client-urls: http://127.0.0.1:2379\n'
                      'auto-tls: "\\e]0;pwned\\a\\e[2J\\r\\nCRITICAL forged"\n')
    text = run_cli("audit", str(config), "--fail-on", "none").stdout
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\r\\nCRITICAL forged" in text
    doc = json.loads(run_cli("audit", str(config), "--format", "json", "--fail-on", "none").stdout)
    assert any("\x1b]0;pwned\x07" in e for f in doc["findings"] for e in f["evidence"])


def test_symlink_loops_are_findings_and_the_audit_goes_on(tmp_path: Path) -> None:
    manifests = tmp_path / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    (manifests / "etcd.yaml").symlink_to("etcd.yaml")
    (tmp_path / "etc/etcd").mkdir()
    (tmp_path / "etc/etcd/etcd.conf.yml").symlink_to("etcd.conf.yml")
    (manifests / "kube-apiserver.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n"
        "    command: [kube-apiserver, --etcd-servers=http://127.0.0.1:2379]\n")
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "loopme").symlink_to("loopme")
    done = run_cli("audit", str(tmp_path), str(loose / "loopme"), str(loose), "--format", "json",
                   "--fail-on", "none")
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    for name in ("etcd.yaml", "etcd.conf.yml", "loopme"):
        (finding,) = _source_findings(doc, name)
        assert "symbolic links" in finding["title"]
    assert any(f["id"] == "K8S-ETCD-CLIENT" for f in doc["findings"])  # the rest was audited


def test_fifo_and_device_are_reported_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "etcd.conf.yml"
    os.mkfifo(fifo)
    tree_fifo = tmp_path / "host/etc/kubernetes/manifests/etcd.yaml"
    tree_fifo.parent.mkdir(parents=True)
    os.mkfifo(tree_fifo)
    done = run_cli("audit", str(fifo), "/dev/zero", str(tmp_path / "host"), "--format", "json",
                   "--fail-on", "none")
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert "a FIFO" in _source_findings(doc, "etcd.conf.yml")[0]["title"]
    assert "a FIFO" in _source_findings(doc, "etcd.yaml")[0]["title"]
    assert "a character device" in _source_findings(doc, "/dev/zero")[0]["title"]


@pytest.mark.parametrize("url", ["http://[zz]:2379", "http://1\\e[2J27.0.0.1:2379", "http://a\\r\\nb:2379",
                                 "http://127.0.0.1:99999"])
def test_listen_url_that_is_not_an_address_is_a_finding(tmp_path: Path, url: str) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(f'name: x\nlisten-client-urls: "{url}"\n')
    good = tmp_path / "good.yml"
    good.write_text("name: y\nlisten-client-urls: http://0.0.0.0:2379\n")
    done = run_cli("audit", str(bad), str(good), "--fail-on", "none")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "is not a valid URL" in done.stdout and "ETCD-INVALID-CONFIG" in done.stdout
    assert "\x1b" not in done.stdout and "\r" not in done.stdout
    assert "ETCD-LISTEN-EXPOSED" in done.stdout  # the other file was still audited


def test_a_file_name_too_long_is_a_finding_in_sarif_too(tmp_path: Path) -> None:
    unit = tmp_path / "etcd.service"
    unit.write_text("[Service]\nEnvironmentFile=/etc/" + "A" * 300 + "\n"
                    "ExecStart=/usr/bin/etcd --listen-client-urls=http://127.0.0.1:2379\n")
    done = run_cli("audit", str(unit), "--format", "sarif", "--fail-on", "none")
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)["runs"][0]["results"]
    assert any(r["ruleId"] == "AUDIT-SOURCE" and "File name too long" in r["message"]["text"] for r in results)


@st.composite
def aliased_yaml(draw: st.DrawFn) -> str:
    """Anchors built from earlier anchors with random fan-out: from harmless to exponential."""
    lines = [f"a0: &a0 [{', '.join(['x'] * draw(st.integers(1, 9)))}]"]
    for i in range(1, draw(st.integers(1, 12))):
        refs = draw(st.lists(st.integers(0, i - 1), min_size=1, max_size=12))
        lines.append(f"a{i}: &a{i} [" + ", ".join(f"*a{r}" for r in refs) + "]")
    lines.append(f"listen-client-urls: *a{len(lines) - 1}")
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None)
@given(aliased_yaml())
def test_any_aliasing_is_loaded_within_budget_or_refused(text: str) -> None:
    import yaml

    try:
        load_all(text)
    except UnsafeYAMLError:
        return
    assert expanded_size(yaml.compose(text, Loader=yaml.SafeLoader)) <= max(1000, 100 * len(text))


def expanded_size(node: Any, memo: dict[int, int] | None = None) -> int:
    """Nodes in `node` with every alias expanded (counted independently of the loader's own walk)."""
    memo = {} if memo is None else memo
    if id(node) not in memo:
        children = node.value if isinstance(node.value, list) else []
        parts = [p for child in children for p in (child if isinstance(child, tuple) else (child,))]
        memo[id(node)] = 1 + sum(expanded_size(p, memo) for p in parts)
    return memo[id(node)]

"""`etcdsec audit` on the command line: formats, exit status, --fail-on, --root, bad input."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from etcdsec.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["audit", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_exit_status_follows_fail_on(tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    kubespray = str(tree("kubespray"))  # one medium finding
    assert _run(capsys, kubespray)[0] == 0  # default --fail-on high
    assert _run(capsys, kubespray, "--fail-on", "medium")[0] == 1
    assert _run(capsys, kubespray, "--fail-on", "MEDIUM")[0] == 1
    assert _run(capsys, str(tree("exposed-host")))[0] == 1
    assert _run(capsys, str(tree("openshift")), "--fail-on", "info")[0] == 0
    assert _run(capsys, str(tree("exposed-host")), "--fail-on", "none")[0] == 0


def test_json_lists_findings_and_sources(tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(tree("exposed-host")), "--format", "json")
    doc = json.loads(out)
    assert code == 1
    assert set(doc["findings"][0]) >= {"id", "severity", "title", "evidence", "remediation", "cis"}
    assert doc["findings"][0]["severity"] == "critical"  # worst first
    tls = next(f for f in doc["findings"] if f["id"] == "ETCD-CLIENT-TLS")
    assert tls["cis"] == ["2.1"]
    assert {Path(s["path"]).name for s in doc["sources"]} >= {"etcd.service", "override.conf", "etcd"}


def test_sarif_2_1_0_shape(tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = tree("kubeadm-traps")
    _, out, _ = _run(capsys, str(root), "--format", "sarif")
    doc = json.loads(out)
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    (run,) = doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert len({r["id"] for r in rules}) == len(rules)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note") and result["message"]["text"]
    enc = next(r for r in run["results"] if r["ruleId"] == "K8S-ENCRYPTION")
    location = enc["locations"][0]["physicalLocation"]
    uri = location["artifactLocation"]["uri"]
    assert uri == (root / "etc/kubernetes/enc/encryption-config.yaml").as_uri()  # absolute: a file:// URI
    assert location["region"] == {"startLine": 8}


def test_text_output_is_grouped_without_colour_when_piped(tree: Callable[[str], Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, str(tree("kubespray")))
    assert "\x1b[" not in out
    assert out.splitlines()[0] == "etcd (systemd etcd.service)"
    assert "MEDIUM   ETCD-METRICS-EXPOSED" in out
    assert out.rstrip().endswith("1 finding(s): 1 medium; 1 instance(s) from 4 source(s) read")


def test_root_resolves_paths_inside_a_single_file(tree: Callable[[str], Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = tree("kubespray")
    unit = root / "etc/systemd/system/etcd.service"
    code, out, _ = _run(capsys, str(unit), "--root", str(root), "--format", "json")
    doc = json.loads(out)
    assert [f["id"] for f in doc["findings"]] == ["ETCD-METRICS-EXPOSED"]  # /etc/etcd.env read under --root
    assert code == 0


def test_the_etc_directory_itself_is_a_tree(tree: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = tree("kubespray")
    _, out, _ = _run(capsys, str(root / "etc"), "--format", "json")
    assert [f["id"] for f in json.loads(out)["findings"]] == ["ETCD-METRICS-EXPOSED"]


def test_unreadable_and_broken_files_are_reported(tree: Callable[[str], Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = tree("config-file")
    config = root / "etc/etcd/etcd.conf.yml"
    config.unlink()
    config.mkdir()  # unreadable whoever runs the test (root can read any mode)
    code, out, _ = _run(capsys, str(root), "--format", "json")
    assert code == 0  # an incomplete audit is a medium finding, below the default --fail-on
    doc = json.loads(out)
    source = next(s for s in doc["sources"] if s["path"].endswith("etcd.conf.yml"))
    assert source["status"] == "unreadable"
    ids = [f["id"] for f in doc["findings"]]
    assert "AUDIT-SOURCE" in ids
    assert "ETCD-PEER-CERT-AUTH" not in ids  # nothing guessed about an etcd whose config is unknown
    shutil.rmtree(config)
    config.write_text("name: [unclosed\n")
    _, out, _ = _run(capsys, str(root), "--format", "json")
    source = next(s for s in json.loads(out)["sources"] if s["path"].endswith("etcd.conf.yml"))
    assert source["status"] == "unparsable" and "line" in source["detail"]


def test_unrecognised_single_file_is_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    code, out, _ = _run(capsys, str(other), "--format", "json")
    doc = json.loads(out)
    assert doc["sources"][0]["status"] == "unrecognised"
    assert doc["findings"][0]["severity"] == "info" and code == 0


@pytest.mark.parametrize(("args", "message"), [
    (["/nonexistent/etcd.conf"], "etcdsec: error: /nonexistent/etcd.conf: no such file or directory"),
    (["--fail-on", "severe", "."], "etcdsec: error: --fail-on: unknown severity 'severe'"),
    (["--root", "/nonexistent", "."], "etcdsec: error: --root /nonexistent: not a directory"),
    (["--format", "xml", "."], "etcdsec: error: "),
    (["--pid", "999999999"], "etcdsec: error: --pid 999999999: no such process"),
    (["--endpoint", "10.0.0.1", "."], "etcdsec: error: --endpoint '10.0.0.1': expected a URL"),
])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], args: list[str],
                                          message: str) -> None:
    code, out, err = _run(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1

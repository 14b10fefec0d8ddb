"""rules.yaml: loaded and checked once; every mistake in it is a one-line error naming file and line."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from etcdsec.audit.checks.flags import CONDITIONS
from etcdsec.audit.engine import audit
from etcdsec.audit.ruledata import CodeCheck, FlagTest, RuleDataError, parse_rules, shipped_text
from etcdsec.audit.rules import CODE_CHECKS, rule_ids, rules
from etcdsec.errors import UserError
from etcdsec.model import Severity
from tests.audit.conftest import FIXTURES
from tests.test_wheel import wheel, wheel_names  # noqa: F401  (the fixtures: the wheel is built once for this module)

ROOT = Path(__file__).resolve().parents[2]

# The public contract: ids (and their order in SARIF), worst severities, CIS references.
SHIPPED = {
    "ETCD-CLIENT-TLS": ("critical", ("2.1",)),
    "ETCD-CLIENT-CERT-AUTH": ("critical", ("2.2",)),
    "ETCD-AUTO-TLS": ("high", ("2.3",)),
    "ETCD-PEER-TLS": ("critical", ("2.4",)),
    "ETCD-PEER-CERT-AUTH": ("critical", ("2.5",)),
    "ETCD-PEER-AUTO-TLS": ("high", ("2.6",)),
    "ETCD-UNIQUE-CA": ("high", ("2.7",)),
    "ETCD-LISTEN-EXPOSED": ("critical", ()),
    "ETCD-METRICS-EXPOSED": ("medium", ()),
    "ETCD-PPROF": ("medium", ()),
    "ETCD-V2-API": ("medium", ()),
    "ETCD-AUTH-TOKEN": ("medium", ()),
    "ETCD-TLS-PARAMS": ("medium", ()),
    "ETCD-CORS": ("low", ()),
    "ETCD-FILE-PERMS": ("high", ("1.1.7", "1.1.8")),
    "ETCD-DATA-DIR": ("high", ("1.1.11", "1.1.12")),
    "K8S-ETCD-CLIENT": ("critical", ("1.2.23", "1.2.26")),
    "K8S-ENCRYPTION": ("high", ("1.2.27", "1.2.28")),
    "K8S-AUDIT-LOG": ("medium", ("1.2.16", "1.2.17", "1.2.18", "1.2.19")),
    "ETCD-RBAC": ("critical", ()),
    "ETCD-IGNORED-SETTING": ("low", ()),
    "ETCD-INVALID-CONFIG": ("medium", ()),
    "AUDIT-SOURCE": ("medium", ()),
}

BASE = """\
practices: [enable auth]
rules:
  - id: ETCD-X
    title: x
    severity: medium
    practice: enable auth
    cis: ["2.1"]
    remediation: fix it
    summary: what it checks
    severity_note: medium
    scope: etcd
    checks:
      - settings: [enable-pprof]
        op: enabled
        report: one
        title: pprof on
"""


def _parse(text: str, code: set[str] | None = None) -> tuple:
    return parse_rules(text, code or set(), CONDITIONS)


def test_the_shipped_rules_keep_their_ids_severities_and_cis() -> None:
    assert rule_ids() == tuple(SHIPPED)
    assert {r.id: (r.severity, r.cis) for r in rules()} == SHIPPED
    assert rules() is rules()  # read once


def test_the_audit_names_the_practices_as_the_probe_does() -> None:
    import yaml

    from etcdsec.probe.catalogue import AT_REST, AUDIT, AUTH, CATALOGUE, MTLS, NETWORK

    practices = yaml.safe_load(shipped_text())["practices"]
    assert practices[:5] == [NETWORK, AUTH, MTLS, AT_REST, AUDIT]
    assert {f.practice for f in CATALOGUE} <= set(practices)
    assert {r.practice for r in rules()} <= set(practices)


def test_the_base_document_of_these_tests_is_valid() -> None:
    (rule,) = _parse(BASE)
    assert rule.checks == (FlagTest(("enable-pprof",), "enabled", "pprof on", "one", "medium", "etcd", "fix it"),)


def test_code_checks_stay_code_and_flag_checks_are_data() -> None:
    kinds = {r.id: {type(c).__name__ for c in r.checks} for r in rules()}
    assert kinds["ETCD-PPROF"] == kinds["ETCD-V2-API"] == kinds["ETCD-CORS"] == {"FlagTest"}
    assert kinds["K8S-AUDIT-LOG"] == {"FlagTest"}
    assert kinds["ETCD-TLS-PARAMS"] == kinds["K8S-ETCD-CLIENT"] == kinds["ETCD-PEER-CERT-AUTH"] == {
        "FlagTest", "CodeCheck"}
    assert kinds["ETCD-FILE-PERMS"] == kinds["ETCD-UNIQUE-CA"] == kinds["ETCD-RBAC"] == {"CodeCheck"}
    used = {c.name for r in rules() for c in r.checks if isinstance(c, CodeCheck)}
    assert used == set(CODE_CHECKS)


BAD = [
    # (replace this, with that, the error expected)
    ("    scope: etcd\n", "    scope: etcd\n    sevrity: low\n",
     r"^rules\.yaml:12: rule ETCD-X: unknown key 'sevrity' \(expected: id, title, severity,"),
    ("        report: one\n", "        report: one\n        flag: x\n",
     r"^rules\.yaml:16: rule ETCD-X check 1: unknown key 'flag'"),
    ("practices: [enable auth]\n", "practices: []\nversion: 2\n",
     r"^rules\.yaml:2: top level: unknown key 'version'"),
    ("    summary: what it checks\n", "", r"^rules\.yaml:3: rule ETCD-X: missing summary$"),
    ("        title: pprof on\n", "", r"^rules\.yaml:13: rule ETCD-X check 1: missing title$"),
    ("    severity: medium\n", "    severity: medium\n    severity: low\n",
     r"^rules\.yaml:6: key 'severity' given twice$"),
    ("severity: medium", "severity: severe",
     r"^rules\.yaml:5: rule ETCD-X: severity 'severe' is not one of info, low, medium, high, critical$"),
    ("severity: medium", "severity: 3",
     r"^rules\.yaml:5: rule ETCD-X: severity must be a string, not a number \(quote it\)$"),
    ('cis: ["2.1"]', "cis: [2.1]", r'^rules\.yaml:7: rule ETCD-X: every item of cis must be a string \(quote numbers'),
    ("id: ETCD-X", "id: etcd x", r"^rules\.yaml:3: rule etcd x: an id is upper-case words joined by '-'"),
    ("practice: enable auth", "practice: luck",
     r"^rules\.yaml:6: rule ETCD-X: practice 'luck' is not one of enable auth$"),
    ("    scope: etcd\n", "    scope: cluster\n", r"^rules\.yaml:11: rule ETCD-X: scope 'cluster' is not one of etcd,"),
    ("    checks:\n      - settings", "    checks: []\n    unused:\n      - settings", r"unknown key 'unused'"),
    ("op: enabled", "op: true",
     r"^rules\.yaml:14: rule ETCD-X check 1: op must be a string, not true/false \(quote it\)$"),
    ("op: enabled", "op: equals", r"^rules\.yaml:14: rule ETCD-X check 1: op 'equals' is not one of enabled,"),
    ("op: enabled", "op: one-of", r"^rules\.yaml:14: rule ETCD-X check 1: op one-of needs values$"),
    ("report: one", "report: all", r"^rules\.yaml:15: rule ETCD-X check 1: report 'all' is not one of each, one$"),
    ("title: pprof on", "title: '{value} is on'",
     r"^rules\.yaml:16: rule ETCD-X check 1: title field \{value\} is not one of flags \(report: one\)$"),
    ("report: one\n        title: pprof on", "report: each\n        title: '{setting.__class__}'",
     r"title field \{setting\.__class__\} is not one of setting, value \(report: each\)$"),
    ("        op: enabled\n", "        op: enabled\n        severity: critical\n",
     r"^rules\.yaml:15: rule ETCD-X check 1: severity critical is worse than the rule's medium$"),
    ("        op: enabled\n", "        op: enabled\n        when: sunny\n",
     r"^rules\.yaml:15: rule ETCD-X check 1: no condition named 'sunny' \(known: plain-client-url\)$"),
    ("        op: enabled\n", "        op: enabled\n        when: plain-client-url\n        scope: apiserver\n",
     r"when conditions are about etcd; this test's scope is apiserver$"),
    ("title: pprof on", "title: 'pprof {'",
     r"^rules\.yaml:16: rule ETCD-X check 1: title is not a template \(.*\); write \{\{ or \}\} for a literal brace$"),
    ("report: one\n        title: pprof on", "report: each\n        title: '{value:>99999999}'",
     r"title field \{value:>99999999\} is not one of setting, value \(report: each\)$"),
    ("report: one\n        title: pprof on", "report: each\n        title: '{value!r}'",
     r"title field \{value!r\} is not one of setting, value"),
    ("title: pprof on", "title: '{} on'", r"title field \{\} is not one of flags"),
    ("[enable-pprof]", "[--enable-pprof]",
     r"^rules\.yaml:13: rule ETCD-X check 1: '--enable-pprof' is not a flag name \(lower case, no leading dashes"),
    ("[enable-pprof]", "[ETCD_ENABLE_PPROF]", r"'ETCD_ENABLE_PPROF' is not a flag name"),
    ("op: enabled", "op: enabled\n        values: [x]", r"check 1: values is for op one-of or lists, not enabled$"),
    ("op: enabled", "op: unset\n        alternatives: {enable-v2: [x]}",
     r"^rules\.yaml:15: rule ETCD-X check 1: alternatives for 'enable-v2', which is not in settings$"),
    ("op: enabled", "op: unset\n        alternatives: {enable-pprof: x}", r"alternatives map a setting to a list"),
    ("op: enabled", "op: enabled\n        alternatives: {enable-pprof: [x]}", r"alternatives is for op unset, not"),
    ("report: one", "report: each\n        join: ' / '", r"check 1: join is for report one$"),
    ("      - settings: [enable-pprof]\n", "      - code: pprof\n        settings: [enable-pprof]\n",
     r"^rules\.yaml:14: rule ETCD-X check 1: unknown key 'settings'"),
    ("      - settings: [enable-pprof]\n        op: enabled\n        report: one\n        title: pprof on\n",
     "      - code: pprof\n", r"^rules\.yaml:13: rule ETCD-X check 1: no code check named 'pprof'$"),
    ("rules:\n", "rules: {}\nlist:\n", r"^rules\.yaml:2: top level: rules must be a list, not a mapping$"),
    ("    checks:", "    checks: [1]\n    x:", r"unknown key 'x'"),
    ("  - id: ETCD-X\n", "  - id: [ETCD-X\n", r"^rules\.yaml: .* at line \d+$"),
]


@pytest.mark.parametrize(("old", "new", "expected"), BAD, ids=[b[2][:60] for b in BAD])
def test_a_mistake_in_the_data_is_a_one_line_error(old: str, new: str, expected: str) -> None:
    assert old in BASE
    with pytest.raises(RuleDataError) as caught:
        _parse(BASE.replace(old, new, 1))
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(expected, message), message
    assert isinstance(caught.value, UserError)  # the CLI prints it as `etcdsec: error: ...`, exit 2


def test_two_rules_with_one_id_are_refused() -> None:
    second = BASE.split("rules:\n")[1]
    with pytest.raises(RuleDataError, match=r"^rules\.yaml:17: rule ETCD-X is given twice \(first as rule 1\)$"):
        _parse(BASE + second)


def test_a_check_with_no_rule_and_empty_checks_are_refused() -> None:
    with pytest.raises(RuleDataError, match=r"^rules\.yaml: code checks no rule uses: orphan$"):
        _parse(BASE, code={"orphan"})
    with pytest.raises(RuleDataError, match=r"rule ETCD-X: checks is empty$"):
        _parse(BASE.split("    checks:")[0] + "    checks: []\n")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "a: 1\n---\nb: 2\n", "&a [*a]\n", "a: &a {b: *a}\n"])
def test_a_document_of_the_wrong_shape_is_refused(text: str) -> None:
    with pytest.raises(RuleDataError, match=r"^rules\.yaml: "):
        _parse(text)


# --- the flag engine, on instances read from real files ---------------------------------------------
def _findings(tmp_path: Path, env: str, rule_text: str) -> list[tuple[str, str, list[str]]]:
    """Audit an etcd env file with only the given rules (flag tests run through run_rules' engine)."""
    from etcdsec.audit.checks.base import AuditContext
    from etcdsec.audit.checks.flags import run_flag_test
    from etcdsec.audit.collector import Collector
    from etcdsec.audit.sources import add_tree

    (tmp_path / "etc/default").mkdir(parents=True)
    (tmp_path / "etc/default/etcd").write_text(env)
    collector = Collector()
    add_tree(collector, tmp_path)
    (inst,) = collector.etcd
    ctx = AuditContext(collector, live_host=False)
    out = []
    for rule in _parse(rule_text):
        for check in rule.checks:
            assert isinstance(check, FlagTest)
            out += [(h.severity, h.title, h.evidence) for h in run_flag_test(check, inst, ctx)]
    return out


def _rule(*test_lines: str) -> str:
    return BASE.split("      - settings:")[0] + "      - " + "\n        ".join(test_lines) + "\n"


def test_each_reports_every_matching_setting_with_its_value(tmp_path: Path) -> None:
    env = "ETCD_ENABLE_PPROF=true\nETCD_ENABLE_V2=false\nETCD_EXPERIMENTAL_ENABLE_V2V3=1\n"
    hits = _findings(tmp_path, env, _rule("settings: [enable-pprof, enable-v2, experimental-enable-v2v3]",
                                          "op: enabled", "report: each", "severity: low",
                                          "title: '{setting} is {value}'"))
    assert [(s, t) for s, t, _e in hits] == [("low", "enable-pprof is true"), ("low", "experimental-enable-v2v3 is 1")]
    assert hits[0][2] == [f"{tmp_path}/etc/default/etcd:1: ETCD_ENABLE_PPROF=true"]


def test_one_reports_once_and_quotes_the_evidence_asked_for(tmp_path: Path) -> None:
    env = "ETCD_EXPERIMENTAL_ENABLE_V2V3=true\n"
    hits = _findings(tmp_path, env, _rule("settings: [enable-v2, experimental-enable-v2v3]", "op: enabled",
                                          "report: one", "evidence: [enable-v2]", "title: v2 on ({flags})"))
    assert len(hits) == 1
    severity, title, evidence = hits[0]
    assert (severity, title) == ("medium", "v2 on (--experimental-enable-v2v3)")  # the rule's severity
    assert evidence[0].endswith(": enable-v2 not set")


def test_one_of_and_lists_judge_etcds_default_when_unset(tmp_path: Path) -> None:
    rule = _rule("settings: [auth-token, cors, host-whitelist]", "op: one-of", "values: [simple, '*']",
                 "report: each", "title: '{setting}={value}'")
    hits = _findings(tmp_path, "ETCD_CORS=https://a.example,*\n", rule)
    assert [t for _s, t, _e in hits] == ["auth-token=simple", "host-whitelist=*"]  # cors is a list, not '*'
    assert hits[0][2][0].endswith("auth-token not set (default simple)")
    rule = _rule("settings: [cors, host-whitelist]", "op: lists", "values: ['*']", "report: each",
                 "title: '{setting}'")
    hits = _findings(tmp_path / "2", "ETCD_CORS=https://a.example, *\nETCD_HOST_WHITELIST=a.example\n", rule)
    assert [t for _s, t, _e in hits] == ["cors"]


def test_unset_counts_alternatives_and_when_set_gates(tmp_path: Path) -> None:
    rule = _rule("settings: [cert-file, key-file]", "op: unset", "alternatives: {cert-file: [auto-tls]}",
                 "report: one", "join: ' / '", "title: 'no {flags}'")
    assert [t for _s, t, _e in _findings(tmp_path, "ETCD_NAME=a\n", rule)] == ["no --cert-file / --key-file"]
    assert [t for _s, t, _e in _findings(tmp_path / "2", "ETCD_AUTO_TLS=true\n", rule)] == ["no --key-file"]
    gated = rule.replace("op: unset", "op: unset\n        when_set: [trusted-ca-file]")
    assert _findings(tmp_path / "3", "ETCD_NAME=a\n", gated) == []
    assert len(_findings(tmp_path / "4", "ETCD_TRUSTED_CA_FILE=/ca.crt\n", gated)) == 1


def test_a_condition_in_code_gates_a_flag_test(tmp_path: Path) -> None:
    rule = _rule("settings: [enable-pprof]", "op: enabled", "when: plain-client-url", "report: one", "title: pprof")
    https = "ETCD_ENABLE_PPROF=true\nETCD_LISTEN_CLIENT_URLS=https://127.0.0.1:2379\n"
    assert _findings(tmp_path, https, rule) == []
    assert len(_findings(tmp_path / "2", "ETCD_ENABLE_PPROF=true\n", rule)) == 1  # default http://localhost


def test_values_from_a_file_are_inserted_never_formatted(tmp_path: Path) -> None:
    rule = _rule("settings: [tls-min-version]", "op: one-of", "values: ['{0}{flags}', '{setting.__class__}']",
                 "report: each", "title: 'version {value}'")
    hits = _findings(tmp_path, "ETCD_TLS_MIN_VERSION={0}{flags}\n", rule)
    assert [t for _s, t, _e in hits] == ["version {0}{flags}"]


# --- one place for the facts: findings, docs and the wheel read rules.yaml ----------------------------
@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir() if p.name != "pki"))
def test_findings_carry_the_facts_of_their_rule(name: str, tree: Callable[[str], Path]) -> None:
    root = tree(name)
    report = audit([root / "kubeadm-config.yaml"] if name == "kubeadm-config" else [root])
    by_id = {r.id: r for r in rules()}
    for finding in report.findings:
        rule = by_id[finding.id]
        assert Severity.parse(finding.severity) <= Severity.parse(rule.severity), finding
        assert finding.cis == list(rule.cis)
        assert finding.remediation in {rule.remediation, *(c.remediation for c in rule.checks)}


def test_the_docs_rule_table_is_generated_from_the_data() -> None:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_audit_rules_doc.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    doc = (ROOT / "docs" / "audit.md").read_text()
    assert doc == gen.render(doc), "run scripts/gen_audit_rules_doc.py"
    assert all(f"| {rule_id} |" in doc for rule_id in SHIPPED)


def test_the_wheel_ships_the_rules(wheel_names: list[str]) -> None:  # noqa: F811
    assert "etcdsec/audit/rules.yaml" in wheel_names
    assert shipped_text().startswith("# The facts of every `etcdsec audit` rule")


def test_the_command_line_prints_a_data_mistake_in_one_line(
    tree: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from etcdsec.audit import rules as rules_module
    from etcdsec.cli import main

    broken = shipped_text().replace("    severity: low\n", "    severity: lowest\n", 1)
    monkeypatch.setattr(rules_module, "shipped_text", lambda: broken)
    rules_module.rules.cache_clear()
    try:
        code = main(["audit", str(tree("kubespray"))])
    finally:
        monkeypatch.undo()
        rules_module.rules.cache_clear()
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert re.fullmatch(r"etcdsec: error: rules\.yaml:\d+: rule ETCD-CORS: severity 'lowest' is not one of .*\n", err)
    assert len(rules_module.rules()) == len(SHIPPED)  # the shipped data again

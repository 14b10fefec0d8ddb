"""The audit rules' facts, read from rules.yaml and checked before any rule runs.

A mistake in the data (an unknown or repeated key, a missing field or one of the wrong type, a
repeated id, a bad severity, a flag name spelled with dashes, a title template naming a field it
will not get) is a `RuleDataError` naming the file and line, never a rule that silently does
something else. The Python side says which code checks and conditions exist.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from etcdsec.audit.yamllines import line_of, load_all, yaml_problem
from etcdsec.errors import UserError
from etcdsec.model import Severity

SHIPPED = "rules.yaml"
_ID = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)+")
_SETTING = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
SCOPES = ("etcd", "apiserver", "audit")
OPS = ("enabled", "unset", "one-of", "lists")
# Title fields a flag test fills in, by how it reports (values from audited files are inserted, never parsed).
FIELDS = {"each": frozenset({"setting", "value"}), "one": frozenset({"flags"})}
SEVERITIES = tuple(s.name for s in Severity if s is not Severity.none)

_RULE_KEYS = {"id": str, "title": str, "severity": str, "practice": str, "cis": list, "remediation": str,
              "summary": str, "severity_note": str, "scope": str, "checks": list}
_RULE_OPTIONAL = {"order": int, "on_incomplete": bool}
_CODE_KEYS = {"code": str}
_CODE_OPTIONAL = {"scope": str, "remediation": str}
_TEST_KEYS = {"settings": list, "op": str, "title": str, "report": str}
_TEST_OPTIONAL = {"severity": str, "values": list, "evidence": list, "when": str, "when_set": list,
                  "alternatives": dict, "join": str, "scope": str, "remediation": str}
_STRING_LISTS = {"practices", "cis", "settings", "values", "evidence", "when_set"}


class RuleDataError(UserError):
    """rules.yaml is not what the audit engine expects (file:line: what is wrong)."""


@dataclass(frozen=True)
class CodeCheck:
    """A check that needs code: etcdsec.audit.rules maps `name` to the function."""

    name: str
    scope: str
    remediation: str


@dataclass(frozen=True)
class FlagTest:
    """A flag-only check: settings that must be on/off/set/not equal, run by checks/flags.py."""

    settings: tuple[str, ...]
    op: str
    title: str
    report: str  # "each" matching setting, or "one" finding for all matches
    severity: str
    scope: str
    remediation: str
    values: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()  # quoted instead of the matching settings
    when: str | None = None  # a named condition (code) that must hold first
    when_set: tuple[str, ...] = ()
    alternatives: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # unset: also satisfied by
    join: str = ", "


Check = CodeCheck | FlagTest


@dataclass(frozen=True)
class RuleFacts:
    id: str
    title: str
    severity: str  # the worst its findings can be
    practice: str
    cis: tuple[str, ...]
    remediation: str
    summary: str  # what it checks, for docs/audit.md
    severity_note: str  # the usual severities, for docs/audit.md
    checks: tuple[Check, ...]
    order: int = 0
    on_incomplete: bool = False


def _kind(of: type) -> str:
    for base, name in ((bool, "true/false"), (int, "a number"), (float, "a number"), (str, "a string"),
                       (dict, "a mapping"), (list, "a list")):
        if issubclass(of, base):
            return name
    return "empty" if of is type(None) else of.__name__


class _Reader:
    """Walks the loaded document, naming file and line in every complaint."""

    def __init__(self, origin: str, code: Collection[str], conditions: Collection[str]) -> None:
        self.origin, self.code, self.conditions = origin, code, conditions

    def fail(self, container: Any, key: Any, message: str) -> RuleDataError:
        line = line_of(container, key)
        return RuleDataError(f"{self.origin}:{line}: {message}" if line else f"{self.origin}: {message}")

    def fields(self, item: Any, where: Any, index: int, what: str, required: Mapping[str, type],
               optional: Mapping[str, type]) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise self.fail(where, index, f"{what} must be a mapping, not {_kind(type(item))}")
        allowed = {**required, **optional}
        for key, value in item.items():
            if key not in allowed:
                raise self.fail(item, key, f"{what}: unknown key {key!r} (expected: {', '.join(allowed)})")
            want = allowed[key]
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                raise self.fail(item, key, f"{what}: {key} must be {_kind(want)}, not {_kind(type(value))}"
                                + (" (quote it)" if want is str and isinstance(value, int | float | bool) else ""))
            if key in _STRING_LISTS and not all(isinstance(v, str) for v in value):
                raise self.fail(item, key, f"{what}: every item of {key} must be a string (quote numbers: \"2.1\")")
        missing = [k for k in required if k not in item]
        if missing:
            raise self.fail(where, index, f"{what}: missing {', '.join(missing)}")
        return item

    def severity(self, item: Any, key: str, what: str) -> str:
        if item[key] not in SEVERITIES:
            raise self.fail(item, key, f"{what}: severity {item[key]!r} is not one of {', '.join(SEVERITIES)}")
        return str(item[key])

    def scope(self, item: Any, default: str, what: str, allowed: tuple[str, ...] = SCOPES) -> str:
        scope = item.get("scope", default)
        if scope not in allowed:
            raise self.fail(item, "scope", f"{what}: scope {scope!r} is not one of {', '.join(allowed)}")
        return str(scope)

    def rule(self, item: Any, where: Any, index: int, practices: Collection[str]) -> RuleFacts:
        named = isinstance(item, dict) and isinstance(item.get("id"), str)
        rule = self.fields(item, where, index, f"rule {item['id'] if named else index + 1}", _RULE_KEYS,
                           _RULE_OPTIONAL)
        what = f"rule {rule['id']}"
        severity = self.severity(rule, "severity", what)
        if rule["practice"] not in practices:
            raise self.fail(rule, "practice", f"{what}: practice {rule['practice']!r} is not one of "
                            f"{', '.join(practices)}")
        scope = self.scope(rule, "", what)
        if not _ID.fullmatch(rule["id"]):
            raise self.fail(rule, "id", f"{what}: an id is upper-case words joined by '-' (ETCD-PPROF)")
        if not rule["checks"]:
            raise self.fail(rule, "checks", f"{what}: checks is empty")
        checks = tuple(self.check(c, rule["checks"], i, what, scope, rule["remediation"], severity)
                       for i, c in enumerate(rule["checks"]))
        return RuleFacts(rule["id"], rule["title"], severity, rule["practice"], tuple(rule["cis"]),
                         rule["remediation"], rule["summary"], rule["severity_note"], checks,
                         rule.get("order", 0), rule.get("on_incomplete", False))

    def check(self, item: Any, where: Any, index: int, rule: str, scope: str, remediation: str,
              severity: str) -> Check:
        what = f"{rule} check {index + 1}"
        if isinstance(item, dict) and "code" in item:
            item = self.fields(item, where, index, what, _CODE_KEYS, _CODE_OPTIONAL)
            if item["code"] not in self.code:
                raise self.fail(item, "code", f"{what}: no code check named {item['code']!r}")
            return CodeCheck(item["code"], self.scope(item, scope, what), item.get("remediation", remediation))
        item = self.fields(item, where, index, what, _TEST_KEYS, _TEST_OPTIONAL)
        return self.flag_test(item, what, scope, remediation, severity)

    def title(self, item: dict[str, Any], what: str) -> None:
        """Only the plain fields the report fills in: no format spec, conversion, index or attribute."""
        allowed = FIELDS[item["report"]]
        try:
            parts = list(string.Formatter().parse(item["title"]))
        except ValueError as exc:
            raise self.fail(item, "title", f"{what}: title is not a template ({exc}); "
                            "write {{ or }} for a literal brace") from None
        for _text, name, spec, conversion in parts:
            if name is not None and (name not in allowed or spec or conversion):
                raise self.fail(item, "title", f"{what}: title field {{{name}{'!' + conversion if conversion else ''}"
                                f"{':' + spec if spec else ''}}} is not one of "
                                f"{', '.join(sorted(allowed))} (report: {item['report']})")

    def names(self, item: dict[str, Any], what: str) -> None:
        """Setting names as flags are spelled without dashes: a typo here would silently never match."""
        alternatives = item.get("alternatives", {})
        for key, value in alternatives.items():
            if key not in item["settings"]:
                raise self.fail(alternatives, key, f"{what}: alternatives for {key!r}, which is not in settings")
            if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
                raise self.fail(alternatives, key, f"{what}: alternatives map a setting to a list of settings")
        named = [*item["settings"], *item.get("evidence", ()), *item.get("when_set", ()),
                 *(n for v in alternatives.values() for n in v)]
        bad = [n for n in named if not _SETTING.fullmatch(n)]
        if bad:
            raise self.fail(item, "settings", f"{what}: {bad[0]!r} is not a flag name (lower case, no leading "
                            "dashes: enable-pprof)")

    def flag_test(self, item: dict[str, Any], what: str, scope: str, remediation: str, worst: str) -> FlagTest:
        if item["op"] not in OPS:
            raise self.fail(item, "op", f"{what}: op {item['op']!r} is not one of {', '.join(OPS)}")
        if item["report"] not in FIELDS:
            raise self.fail(item, "report", f"{what}: report {item['report']!r} is not one of {', '.join(FIELDS)}")
        if not item["settings"]:
            raise self.fail(item, "settings", f"{what}: settings is empty")
        if item["op"] in ("one-of", "lists") and not item.get("values"):
            raise self.fail(item, "op", f"{what}: op {item['op']} needs values")
        severity = self.severity(item, "severity", what) if "severity" in item else worst
        if Severity.parse(severity) > Severity.parse(worst):
            raise self.fail(item, "severity", f"{what}: severity {severity} is worse than the rule's {worst}")
        self.title(item, what)
        self.names(item, what)
        if "when" in item and item["when"] not in self.conditions:
            raise self.fail(item, "when", f"{what}: no condition named {item['when']!r} "
                            f"(known: {', '.join(self.conditions)})")
        alternatives = item.get("alternatives", {})
        for key, only in (("values", ("one-of", "lists")), ("alternatives", ("unset",))):
            if key in item and item["op"] not in only:
                raise self.fail(item, key, f"{what}: {key} is for op {' or '.join(only)}, not {item['op']}")
        if "join" in item and item["report"] != "one":
            raise self.fail(item, "join", f"{what}: join is for report one")
        scope = self.scope(item, scope, what, ("etcd", "apiserver"))
        if "when" in item and scope != "etcd":
            raise self.fail(item, "when", f"{what}: when conditions are about etcd; this test's scope is {scope}")
        return FlagTest(tuple(item["settings"]), item["op"], item["title"], item["report"], severity, scope,
                        item.get("remediation", remediation), tuple(item.get("values", ())),
                        tuple(item.get("evidence", ())), item.get("when"), tuple(item.get("when_set", ())),
                        {k: tuple(v) for k, v in alternatives.items()}, item.get("join", ", "))


def _refuse_repeated_keys(text: str, origin: str) -> None:
    """YAML keeps the last of two equal keys without a word; a repeated `severity:` must not pass."""
    stack = [yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))]
    seen_nodes: set[int] = set()  # an alias is a node met twice: walk it once (no loop on `&a [*a]`)
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value in seen:
                    raise RuleDataError(f"{origin}:{key.start_mark.line + 1}: key {key.value!r} given twice")
                seen.add(getattr(key, "value", ""))
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def parse_rules(text: str, code: Collection[str], conditions: Collection[str],
                origin: str = SHIPPED) -> tuple[RuleFacts, ...]:
    """Every rule in `text`, checked; `code` and `conditions` are the names the Python side provides."""
    try:
        docs = load_all(text)  # first: it refuses alias bombs and self-containing anchors
        _refuse_repeated_keys(text, origin)
    except yaml.YAMLError as exc:
        raise RuleDataError(f"{origin}: {yaml_problem(exc)}") from None
    reader = _Reader(origin, code, conditions)
    top = docs[0] if len(docs) == 1 else None
    if not isinstance(top, dict):
        raise RuleDataError(f"{origin}: expected one mapping with `practices` and `rules`")
    top = reader.fields(top, None, 0, "top level", {"practices": list, "rules": list}, {})
    practices = tuple(top["practices"])
    rules = tuple(reader.rule(item, top["rules"], i, practices) for i, item in enumerate(top["rules"]))
    seen: dict[str, int] = {}
    for i, rule in enumerate(rules):
        if rule.id in seen:
            raise reader.fail(top["rules"], i, f"rule {rule.id} is given twice (first as rule {seen[rule.id] + 1})")
        seen[rule.id] = i
    unused = sorted(set(code) - {c.name for r in rules for c in r.checks if isinstance(c, CodeCheck)})
    if unused:
        raise RuleDataError(f"{origin}: code checks no rule uses: {', '.join(unused)}")
    return rules


def shipped_text() -> str:
    return resources.files("etcdsec.audit").joinpath(SHIPPED).read_text(encoding="utf-8")

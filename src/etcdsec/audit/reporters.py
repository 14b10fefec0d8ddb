"""Audit output: grouped text (coloured on a terminal), JSON, and SARIF 2.1.0 for code-scanning dashboards."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.markup import escape

from etcdsec.audit.engine import AuditReport
from etcdsec.audit.rules import rules
from etcdsec.output import SHOWN_CHARS, visible
from etcdsec.version import __version__

_COLOURS = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}
_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
_SARIF_SCORE = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}
_LOCATION = re.compile(r"^(?P<path>[^\s:()][^:()]*?)(?::(?P<line>\d+))?(?:\s|:|$)")


def _shown(text: str) -> str:
    """Text from an audited file, for rich markup: controls visible, long values cut (etcdsec.output)."""
    return escape(visible(text, SHOWN_CHARS))


def render_text(report: AuditReport, out: IO[str], colour: bool) -> None:
    console = Console(file=out, force_terminal=colour, no_color=not colour, highlight=False, width=120,
                      soft_wrap=True)
    groups: dict[str, list[Any]] = defaultdict(list)
    for finding in report.findings:
        groups[finding.subject].append(finding)
    for subject, findings in groups.items():
        console.print(f"[bold]{_shown(subject)}[/bold]")
        for f in findings:
            style = _COLOURS.get(f.severity, "")
            cis = f" (CIS {', '.join(f.cis)})" if f.cis else ""
            console.print(f"  [{style}]{f.severity.upper():8}[/{style}] {f.id}{cis}: {_shown(f.title)}")
            for item in f.evidence:
                console.print(f"           at {_shown(item)}")
            console.print(f"           fix: {_shown(f.remediation)}", style="dim")
        console.print()
    counts: dict[str, int] = defaultdict(int)
    for finding in report.findings:
        counts[finding.severity] += 1
    order = ("critical", "high", "medium", "low", "info")
    summary = ", ".join(f"{counts[s]} {s}" for s in order if counts[s])
    read = sum(1 for s in report.sources if s.status == "read")
    problems = [s for s in report.sources if s.status not in ("read", "absent-optional")]
    console.print(f"{len(report.findings)} finding(s){': ' + summary if summary else ''}; "
                  f"{len(report.instances)} instance(s) from {read} source(s) read"
                  + (f", {len(problems)} could not be used" if problems else ""))


def render_json(report: AuditReport, out: IO[str]) -> None:
    json.dump(report.to_dict(), out, indent=2)
    out.write("\n")


def _uri(path: str) -> str:
    """Relative paths stay relative (to where the audit ran); absolute ones become file:// URIs."""
    return Path(path).as_uri() if Path(path).is_absolute() else path


def _location(evidence: str) -> dict[str, Any] | None:
    """A SARIF physicalLocation for `file:line` evidence; None for process or default evidence."""
    match = _LOCATION.match(evidence)
    try:
        exists = bool(match) and Path(match.group("path")).exists()  # type: ignore[union-attr]
    except (OSError, ValueError):  # a name too long, a NUL byte: evidence text, not a file
        exists = False
    if not match or not exists:
        return None  # a default, an assumption, or a process: no file to point at
    location: dict[str, Any] = {"artifactLocation": {"uri": _uri(match.group("path"))}}
    if match.group("line"):
        location["region"] = {"startLine": int(match.group("line"))}
    return {"physicalLocation": location}


def sarif(report: AuditReport) -> dict[str, Any]:
    sarif_rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for rule in rules():
        index[rule.id] = len(sarif_rules)
        cis = f" CIS Kubernetes Benchmark {', '.join(rule.cis)}." if rule.cis else ""
        sarif_rules.append({"id": rule.id, "name": rule.id.title().replace("-", ""),
                            "shortDescription": {"text": rule.title},
                            "help": {"text": rule.remediation + cis},
                            "properties": {"tags": ["security", "etcd"] + [f"CIS-{c}" for c in rule.cis]}})
    results = []
    for f in report.findings:
        locations = [loc for loc in (_location(e) for e in f.evidence) if loc]
        result: dict[str, Any] = {
            "ruleId": f.id, "ruleIndex": index[f.id], "level": _SARIF_LEVEL.get(f.severity, "note"),
            "message": {"text": f"{f.subject}: {f.title}"},
            "properties": {"severity": f.severity, "security-severity": _SARIF_SCORE.get(f.severity, "0.0"),
                           "evidence": f.evidence, "cis": f.cis},
        }
        if locations:
            result["locations"] = locations[:1]
            if len(locations) > 1:
                result["relatedLocations"] = [dict(loc, id=i) for i, loc in enumerate(locations[1:], 1)]
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "etcdsec audit", "version": __version__, "rules": sarif_rules}},
            "results": results,
            "artifacts": [{"location": {"uri": _uri(s.path)}} for s in report.sources
                          if s.status == "read" and not s.path.startswith("/proc/")],
        }],
    }


def render_sarif(report: AuditReport, out: IO[str]) -> None:
    json.dump(sarif(report), out, indent=2)
    out.write("\n")

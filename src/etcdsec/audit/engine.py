"""Run an audit: gather sources, resolve instances, apply the rules, return a report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etcdsec.audit.collector import Collector
from etcdsec.audit.model import AuditFinding, Source
from etcdsec.audit.procfs import add_process, live_processes
from etcdsec.audit.rules import AuditContext, run_rules
from etcdsec.audit.shown import clip
from etcdsec.audit.sources import add_path, add_tree
from etcdsec.model import Severity


@dataclass
class AuditReport:
    findings: list[AuditFinding]
    sources: list[Source]
    instances: list[dict[str, Any]] = field(default_factory=list)

    def worst(self) -> Severity:
        return max((Severity.parse(f.severity) for f in self.findings), default=Severity.none)

    def to_dict(self) -> dict[str, Any]:
        return {"findings": [f.to_dict() for f in self.findings],
                "sources": [s.to_dict() for s in self.sources],
                "instances": self.instances}


def _instances(collector: Collector) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for inst in collector.etcd:
        out.append({"kind": "etcd", "label": inst.label, "origin": str(inst.origin), "pid": inst.live_pid,
                    "config_file": str(inst.config_file) if inst.config_file else None,
                    "incomplete": inst.incomplete,
                    "settings": _settings(inst.settings)})
    for api in collector.apiservers:
        out.append({"kind": "kube-apiserver", "label": api.label, "origin": str(api.origin),
                    "pid": api.live_pid,
                    "settings": _settings(api.flags)})
    return out


def _settings(settings: dict[str, Any]) -> dict[str, Any]:
    return {clip(k): {"value": clip(s.value), "from": clip(str(s.origin)), "via": s.via}
            for k, s in sorted(settings.items())}


def _clipped(finding: AuditFinding) -> AuditFinding:
    return AuditFinding(finding.id, finding.severity, clip(finding.title), [clip(e) for e in finding.evidence],
                        finding.remediation, finding.cis, clip(finding.subject))


def audit(paths: list[Path], root: Path | None = None, pids: set[int] | None = None,
          live: bool = False, probes: list[Any] | None = None) -> AuditReport:
    """Audit `paths` (files or trees), `root` when no path is given, and live processes when `live`.

    `pids` restricts the live audit to those processes.
    """
    collector = Collector()
    for path in paths:
        add_path(collector, path, root)
    if root is not None and not paths:
        add_tree(collector, root)
    live_host = live or (root is not None and root.resolve() == Path("/"))
    if live:
        for pid, program in live_processes(pids):
            add_process(collector, pid, program)
    ctx = AuditContext(collector, live_host=live_host, probes=probes or [])
    hits = run_rules(ctx)
    findings = [_clipped(AuditFinding(rule.id, hit.severity, hit.title, hit.evidence, check.remediation,
                                      list(rule.cis), subject)) for rule, check, hit, subject in hits]
    findings.sort(key=lambda f: (-Severity.parse(f.severity), f.subject, f.id))
    for source in collector.sources:
        source.path, source.detail = clip(source.path), clip(source.detail)
    return AuditReport(findings, collector.sources, _instances(collector))

"""Text output of the report's newer parts (comparison, honeypot sessions, monitor), next to
report.render's tables. Values from the wire are made visible before rich prints them, and rich
markup in them is escaped."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from etcdsec.output import visible

SHOWN = 15


def _cell(value: Any) -> str:
    return escape(visible(value))


def _table(title: str, columns: list[str], rows: list[list[Any]], console: Console) -> None:
    if not rows:
        return
    table = Table(title=title + (f" (first {SHOWN} of {len(rows)})" if len(rows) > SHOWN else ""))
    for column in columns:
        table.add_column(column)
    for row in rows[:SHOWN]:
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def render_more_text(report: dict[str, Any], console: Console) -> None:
    if report.get("compare"):
        cmp = report["compare"]
        console.print(f"[bold]changes since scan {cmp['earlier']['id']}[/bold]: "
                      + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in cmp["counts"].items())
                      + ("" if cmp["same_targets"] else " (the scans covered different targets)"))
        _table("version changes", ["from", "to", "endpoints"],
               [[v["from"], v["to"], v["count"]] for v in cmp["version_changes"]], console)
    hp = report.get("honeypot") or {}
    _table("honeypot sessions", ["session", "source", "events", "story"],
           [[s["session"], s["src_ip"], s["events"], " -> ".join(s["story"]) or "-"] for s in hp.get("sessions") or []],
           console)
    monitor = report.get("monitor")
    if monitor:
        console.print(f"[bold]monitor[/bold]: {monitor['exposure_changes']} exposure changes, "
                      f"{monitor['anomalies']} anomalous connections")
        _table("exposure changes", ["target", "time", "severity", "added", "removed"],
               [[t["target"], c["timestamp"], f"{c['before']['severity']} -> {c['after']['severity']}",
                 ", ".join(c["added"]), ", ".join(c["removed"])] for t in monitor["targets"] for c in t["changes"]],
               console)
        _table("triage cards", ["severity", "connection", "count", "why", "do"],
               [[c["severity"], f"{c['src_ip']}:{c['src_port']} -> {c['dst_ip']}:{c['dst_port']}", c["count"],
                 "; ".join(c["reasons"]), "; ".join(c["actions"])] for c in monitor["cards"]], console)
    files = report.get("event_files")
    if files and files["broken_lines"]:
        console.print(f"events files: {files['broken_lines']} lines were not events (skipped)")

"""Show a report: rich tables for people, JSON and CSV for programs; endpoint/finding exports."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from etcdsec.model import ProbeResult
from etcdsec.output import CSV_COLUMNS, SafeCsvWriter, csv_row, csv_safe, plain
from etcdsec.report.text_more import render_more_text

COUNT_SECTIONS = ("versions", "organizations", "asns", "names", "uptime", "tls", "auth", "findings")
TOP = 15  # rows per table in text output; JSON/CSV carry everything
SINGULAR = {"versions": "version", "organizations": "organization", "asns": "asn", "names": "name",
            "findings": "finding"}


def render_json(report: dict[str, Any], out: IO[str]) -> None:
    json.dump(report, out, indent=2, default=str)
    out.write("\n")


def render_csv(report: dict[str, Any], out: IO[str]) -> None:
    """One `section,key,value` row per number: easy to load into a spreadsheet or pandas."""
    writer = SafeCsvWriter(out)  # keys are member names, paths, user agents: anyone's text
    writer.writerow(["section", "key", "value"])
    for key, value in report.get("totals", {}).items():
        if isinstance(value, dict):
            for sub, count in value.items():
                writer.writerow([f"totals.{key}", sub, count])
        else:
            writer.writerow(["totals", key, value])
    for section in COUNT_SECTIONS:
        for key, value in report.get(section, {}).items():
            writer.writerow([section, key, value])
    for name in report.get("kubernetes_names", []):
        writer.writerow(["kubernetes_names", name, 1])
    for row in report.get("oldest", []):
        writer.writerow(["oldest", row["endpoint"], row["uptime_s"]])
    hp = report.get("honeypot") or {}
    for key in ("events", "source_count", "malformed", "head_requests"):
        if key in hp:
            writer.writerow(["honeypot", key, hp[key]])
    for src in hp.get("sources") or []:
        writer.writerow(["honeypot.sources", src.get("src_ip"), src.get("events")])
    for use in hp.get("honeytoken_uses") or []:
        writer.writerow(["honeypot.honeytoken_uses", use.get("src_ip", ""), 1])


def render_text(report: dict[str, Any], out: IO[str]) -> None:
    console = Console(file=out, width=max(100, Console(file=out).width))
    if "scan" in report:
        _render_scan_text(report, console)
    if report.get("honeypot"):
        _render_honeypot_text(report["honeypot"], console)
    render_more_text(report, console)


def _counted(title: str, rows: list[tuple[str, Any]], console: Console) -> None:
    if not rows:
        return
    table = Table(title=title + (f" (top {TOP} of {len(rows)})" if len(rows) > TOP else ""))
    table.add_column(title[:-1] if title.endswith("s") else title)
    table.add_column("count", justify="right")
    for key, value in rows[:TOP]:
        table.add_row(plain(key), plain(value))
    console.print(table)


def _render_honeypot_text(hp: dict[str, Any], console: Console) -> None:
    """What attackers did to the honeypot: who, when, with what, and which honeytokens they used."""
    console.print(plain(f"honeypot: {hp.get('events', 0)} events from {hp.get('source_count', 0)} "
                        f"source(s), {hp.get('first_seen') or '-'} to {hp.get('last_seen') or '-'}; "
                        f"sensors: {', '.join(map(str, hp.get('sensors') or [])) or '-'}"))
    sources = hp.get("sources") or []
    if sources:
        table = Table(title="sources" + (f" (top {TOP} of {len(sources)})" if len(sources) > TOP else ""))
        for column in ("src_ip", "events", "sessions", "first_seen", "last_seen"):
            table.add_column(column)
        for row in sources[:TOP]:
            table.add_row(*(plain(row.get(c, "")) for c in ("src_ip", "events", "sessions", "first_seen", "last_seen")))
        console.print(table)

    def pairs(items: Any) -> list[tuple[str, Any]]:
        if isinstance(items, dict):
            return sorted(items.items(), key=lambda kv: -kv[1])
        return [(i.get("value"), i.get("count")) for i in items or []]

    clients = hp.get("clients") or {}
    _counted("methods", pairs(hp.get("methods")), console)
    _counted("paths", pairs(hp.get("paths")), console)
    _counted("grpc methods", pairs(hp.get("grpc_methods")), console)
    _counted("user agents", pairs(clients.get("user_agents")), console)
    _counted("grpc clients", pairs(clients.get("grpc")), console)
    console.print(f"malformed inputs: {hp.get('malformed', 0)}, HEAD requests: {hp.get('head_requests', 0)}")
    uses = hp.get("honeytoken_uses") or []
    if uses:
        table = Table(title="honeytoken uses", style="bold red")
        keys = list(uses[0].keys())
        for column in keys:
            table.add_column(plain(column))
        for row in uses[:TOP]:
            table.add_row(*(plain(row.get(k, "")) for k in keys))
        console.print(table)


def _render_scan_text(report: dict[str, Any], console: Console) -> None:
    scan = report["scan"]
    console.print(plain(f"scan {scan['id']}" + (f" ({scan['name']})" if scan["name"] else "")
                        + f", {scan['status']}, started {scan['started']}, ports {','.join(map(str, scan['ports']))}"))
    totals = Table(title="totals", show_header=False)
    for key, value in report["totals"].items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
        totals.add_row(plain(key.replace("_", " ")), plain(value))
    console.print(totals)
    for section in COUNT_SECTIONS:
        items = list(report.get(section, {}).items())
        if not items or not any(items[i][1] for i in range(len(items))):
            continue
        table = Table(title=section + (f" (top {TOP} of {len(items)})" if len(items) > TOP else ""))
        table.add_column(SINGULAR.get(section, section))
        table.add_column("count", justify="right")
        for key, value in items[:TOP]:
            style = "bold red" if section == "names" and key in report.get("kubernetes_names", []) else None
            table.add_row(plain(key), plain(value), style=style)
        console.print(table)
    if report.get("kubernetes_names"):
        console.print(plain("Kubernetes-looking member names: " + ", ".join(report["kubernetes_names"][:TOP])))
    if report.get("oldest"):
        table = Table(title="longest running")
        for column in ("endpoint", "start_time", "uptime_s", "version"):
            table.add_column(column)
        for row in report["oldest"]:
            table.add_row(*(plain(row[c]) for c in ("endpoint", "start_time", "uptime_s", "version")))
        console.print(table)


def export_endpoints(rows: Iterable[tuple[ProbeResult, dict[str, Any]]], fmt: str, out: IO[str]) -> int:
    count = 0
    if fmt == "jsonl":
        for result, meta in rows:
            record = result.to_dict()
            if meta:
                record["meta"] = meta
            out.write(json.dumps(record) + "\n")
            count += 1
        return count
    writer = csv.DictWriter(out, fieldnames=[*CSV_COLUMNS, "org", "asn"])
    writer.writeheader()
    for result, meta in rows:
        writer.writerow(csv_safe({**csv_row(result), "org": meta.get("org"), "asn": meta.get("asn")}))
        count += 1
    return count


def export_findings(rows: list[dict[str, Any]], fmt: str, out: IO[str] = sys.stdout) -> int:
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row) + "\n")
    else:
        writer = csv.DictWriter(out, fieldnames=["ip", "port", "finding", "severity", "title"])
        writer.writeheader()
        writer.writerows(csv_safe(row) for row in rows)
    return len(rows)

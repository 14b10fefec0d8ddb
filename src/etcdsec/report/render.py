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
from etcdsec.output import CSV_COLUMNS, csv_row

COUNT_SECTIONS = ("versions", "organizations", "asns", "names", "uptime", "tls", "auth", "findings")
TOP = 15  # rows per table in text output; JSON/CSV carry everything


def render_json(report: dict[str, Any], out: IO[str]) -> None:
    json.dump(report, out, indent=2, default=str)
    out.write("\n")


def render_csv(report: dict[str, Any], out: IO[str]) -> None:
    """One `section,key,value` row per number: easy to load into a spreadsheet or pandas."""
    writer = csv.writer(out)
    writer.writerow(["section", "key", "value"])
    for key, value in report["totals"].items():
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


def render_text(report: dict[str, Any], out: IO[str]) -> None:
    console = Console(file=out, width=max(100, Console(file=out).width))
    scan = report["scan"]
    console.print(f"[bold]scan {scan['id']}[/bold]" + (f" ({scan['name']})" if scan["name"] else "")
                  + f", {scan['status']}, started {scan['started']}, ports {','.join(map(str, scan['ports']))}")
    totals = Table(title="totals", show_header=False)
    for key, value in report["totals"].items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
        totals.add_row(key.replace("_", " "), str(value))
    console.print(totals)
    for section in COUNT_SECTIONS:
        items = list(report.get(section, {}).items())
        if not items or not any(items[i][1] for i in range(len(items))):
            continue
        table = Table(title=section + (f" (top {TOP} of {len(items)})" if len(items) > TOP else ""))
        table.add_column(section[:-1] if section.endswith("s") else section)
        table.add_column("count", justify="right")
        for key, value in items[:TOP]:
            style = "bold red" if section == "names" and key in report.get("kubernetes_names", []) else None
            table.add_row(str(key), str(value), style=style)
        console.print(table)
    if report.get("kubernetes_names"):
        console.print("Kubernetes-looking member names: " + ", ".join(report["kubernetes_names"][:TOP]))
    if report.get("oldest"):
        table = Table(title="longest running")
        for column in ("endpoint", "start_time", "uptime_s", "version"):
            table.add_column(column)
        for row in report["oldest"]:
            table.add_row(*(str(row[c]) for c in ("endpoint", "start_time", "uptime_s", "version")))
        console.print(table)
    if report.get("honeypot"):
        console.print("honeypot: " + json.dumps(report["honeypot"], default=str)[:2000])


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
        writer.writerow({**csv_row(result), "org": meta.get("org"), "asn": meta.get("asn")})
        count += 1
    return count


def export_findings(rows: list[dict[str, Any]], fmt: str, out: IO[str] = sys.stdout) -> int:
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row) + "\n")
    else:
        writer = csv.DictWriter(out, fieldnames=["ip", "port", "finding", "severity", "title"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)

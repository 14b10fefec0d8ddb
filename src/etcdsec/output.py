"""Render probe results: a rich table for people, JSON / JSON lines / CSV for programs."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable
from typing import IO

from etcdsec.model import ProbeResult, Severity

FORMATS = ("table", "json", "jsonl", "csv")

CSV_COLUMNS = (
    "target", "ip", "port", "reachable", "error", "scheme", "client_cert_required", "is_etcd", "role",
    "version", "cluster_version", "cluster_id", "member_id", "members", "start_time", "uptime_s", "db_size",
    "v2", "v3_prefix", "grpc", "v3_auth", "v2_auth", "v2_guest_open", "read_v2", "read_v3", "write", "key_count",
    "kubernetes", "secret_keys", "exposed", "severity", "finding_ids", "duration_ms",
)

_SEV_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan",
              "info": "dim", "none": "green"}


def csv_row(r: ProbeResult) -> dict[str, object]:
    return {
        "target": r.target, "ip": r.ip, "port": r.port, "reachable": r.reachable, "error": r.error,
        "scheme": r.scheme, "client_cert_required": r.client_cert_required, "is_etcd": r.is_etcd,
        "role": r.role, "version": r.version, "cluster_version": r.cluster_version,
        "cluster_id": r.cluster_id, "member_id": r.member_id,
        "members": ";".join(m.name or m.id or "" for m in r.members), "start_time": r.start_time,
        "uptime_s": r.uptime_s, "db_size": r.db_size, "v2": r.apis.v2, "v3_prefix": r.apis.v3_prefix,
        "grpc": r.apis.grpc,
        "v3_auth": r.auth.v3_enabled, "v2_auth": r.auth.v2_enabled, "v2_guest_open": r.auth.v2_guest_open,
        "read_v2": r.access.read_v2, "read_v3": r.access.read_v3, "write": r.access.write,
        "key_count": r.data.key_count, "kubernetes": r.data.kubernetes, "secret_keys": r.data.secret_keys,
        "exposed": r.exposed, "severity": r.severity, "finding_ids": ";".join(f.id for f in r.findings),
        "duration_ms": r.duration_ms,
    }


def write_json(results: list[ProbeResult], out: IO[str]) -> None:
    json.dump([r.to_dict() for r in results], out, indent=2)
    out.write("\n")


def write_jsonl(results: Iterable[ProbeResult], out: IO[str]) -> None:
    for r in results:
        out.write(json.dumps(r.to_dict(), separators=(",", ":")) + "\n")
        out.flush()


def write_csv(results: Iterable[ProbeResult], out: IO[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({k: "" if v is None else v for k, v in csv_row(r).items()})


def _yn(value: bool | None, yes: str = "yes", no: str = "no") -> str:
    return "?" if value is None else (yes if value else no)


def _auth_cell(r: ProbeResult) -> str:
    parts = []
    if r.apis.v3_prefix or r.apis.grpc:
        parts.append(f"v3 {_yn(r.auth.v3_enabled, 'on', 'OFF')}")
    if r.apis.v2:
        guest = " guest-open" if r.auth.v2_guest_open else ""
        parts.append(f"v2 {_yn(r.auth.v2_enabled, 'on', 'OFF')}{guest}")
    return ", ".join(parts) or "-"


def _tls_cell(r: ProbeResult) -> str:
    if r.scheme != "https":
        return "none" if r.scheme else "-"
    base = r.tls.version if r.tls and r.tls.version else "TLS"
    return f"{base} + client cert" if r.client_cert_required else f"{base}, no client cert"


def _data_cell(r: ProbeResult) -> str:
    d = r.data
    if d.key_count is None and d.kubernetes is None:
        return "-"
    text = f"{d.key_count} keys" if d.key_count is not None else "keys"
    if d.kubernetes:
        text += f", k8s ({d.secret_keys if d.secret_keys is not None else '?'} secrets)"
    return text


def write_table(results: list[ProbeResult], out: IO[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    stream = out or sys.stdout
    # A pipe or file gets a wide, uncoloured table rather than rich's 80-column fallback.
    console = Console(file=stream, soft_wrap=False, width=None if stream.isatty() else 200)
    table = Table(show_lines=False, header_style="bold")
    for col in ("target", "etcd", "role", "TLS", "auth", "read", "write", "data", "severity"):
        table.add_column(col, overflow="fold")
    for r in results:
        if not r.reachable or r.is_etcd is not True:
            what = r.error or ("not etcd" if r.is_etcd is False else "unknown")
            etcd = "closed" if not r.reachable else ("?" if r.is_etcd is None else "no")
            table.add_row(r.target, etcd, "-", _tls_cell(r), "-", "-", "-", what,
                          Text(r.severity, style=_SEV_STYLE[r.severity]))
            continue
        read = "/".join(p for p, ok in (("v3", r.access.read_v3), ("v2", r.access.read_v2)) if ok) or "no"
        write = _yn(r.access.write)
        if r.access.read_v3 is None and r.access.read_v2 is None:  # no key API answered (a peer port)
            read = write = "-"
        table.add_row(r.target, r.version or "yes", r.role or "-", _tls_cell(r), _auth_cell(r), read,
                      write, _data_cell(r), Text(r.severity, style=_SEV_STYLE[r.severity]))
    console.print(table)
    for r in results:
        shown = [f for f in r.findings if Severity.parse(f.severity) >= Severity.low]
        if not shown:
            continue
        console.print(Text(f"\n{r.target}", style="bold"))
        for f in shown:
            console.print(Text(f"  [{f.severity}] {f.id}: {f.title}", style=_SEV_STYLE[f.severity]))
            console.print(f"      evidence: {f.evidence}", highlight=False, markup=False)
            console.print(f"      fix: {f.remediation}", highlight=False, markup=False)


def render(results: list[ProbeResult], fmt: str, out: IO[str] | None = None) -> None:
    stream = out or sys.stdout
    if fmt == "json":
        write_json(results, stream)
    elif fmt == "jsonl":
        write_jsonl(results, stream)
    elif fmt == "csv":
        write_csv(results, stream)
    else:
        write_table(results, stream)


def buf_render(results: list[ProbeResult], fmt: str) -> str:
    buf = io.StringIO()
    render(results, fmt, buf)
    return buf.getvalue()


def printable(text: str, limit: int = 300) -> str:
    """Text safe for a terminal line: control and other non-printable characters as \\xNN, bounded."""
    cut = text[:limit]
    if cut.isprintable():
        return cut + ("..." if len(text) > limit else "")
    out = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in cut)
    return out + ("..." if len(text) > limit else "")

"""Render probe results: a rich table for people, JSON / JSON lines / CSV for programs.

Also the one place for what every human and CSV output does to a string an attacker wrote (a member
name, a URL, a path from a honeypot client, a value in an audited file): `visible` for terminals,
`csv_cell` for spreadsheets. JSON keeps the exact string.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from etcdsec.model import ProbeResult, Severity

if TYPE_CHECKING:
    from rich.text import Text

# C0 and C1 controls and DEL (ESC starts CSI/OSC sequences; CR and LF start a forged line), and the
# invisible format characters that reorder or hide text (bidi overrides and isolates, zero widths).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# OWASP CSV injection: a cell starting with one of these is a formula to Excel, LibreOffice, Sheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape_one(m: re.Match[str]) -> str:
    ch = m.group()
    code = ord(ch)
    return _NAMED.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


# Characters of one untrusted value shown on a terminal; the rest is counted, not printed (JSON keeps all).
SHOWN_CHARS = 2000


def visible(text: object, limit: int | None = None) -> str:
    """`text` with every control and invisible format character shown as an escape (ESC -> \\x1b,
    CR -> \\r): safe to print on a terminal, one line, and what you see is what was sent. With
    `limit`, only the first `limit` characters are shown and the rest counted."""
    text = "" if text is None else str(text)
    cut = f" ... ({len(text) - limit:,} more characters)" if limit is not None and len(text) > limit else ""
    return _UNSAFE.sub(_escape_one, text[:limit] if cut else text) + cut


def plain(text: object, style: str = "") -> Text:
    """A rich cell or line from untrusted text: controls made visible, at most SHOWN_CHARS characters,
    no markup, no highlighting."""
    from rich.text import Text

    return Text(visible(text, SHOWN_CHARS), style=style)


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: a string starting =, +, -, @, tab or CR gets a leading
    single quote, as OWASP recommends. Numbers and other values pass unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class SafeCsvWriter:
    """csv.writer whose every cell goes through `csv_cell`."""

    def __init__(self, out: IO[str], **kwargs: Any) -> None:
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, row: Sequence[Any]) -> None:
        self._writer.writerow(csv_safe(row))


def csv_safe(row: Mapping[str, Any] | Sequence[Any]) -> Any:
    """A whole row (a dict for DictWriter or a list for writer) through `csv_cell`."""
    if isinstance(row, Mapping):
        return {k: csv_cell(v) for k, v in row.items()}
    return [csv_cell(v) for v in row]


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


def write_json(results: Iterable[ProbeResult], out: IO[str]) -> None:
    write_stream(results, "json", out)


def write_jsonl(results: Iterable[ProbeResult], out: IO[str]) -> None:
    write_stream(results, "jsonl", out)


def write_csv(results: Iterable[ProbeResult], out: IO[str]) -> None:
    write_stream(results, "csv", out)


def write_stream(results: Iterable[ProbeResult], fmt: str, out: IO[str]) -> None:
    writer = ResultWriter(fmt, out)
    for r in results:
        writer.add(r)
    writer.close()


class ResultWriter:
    """Results written as they come, so memory stays flat in the number of targets: JSON lines and CSV
    rows at once, a JSON array item by item; the table keeps only the text it will print (its cells
    and finding lines, not the results) and prints it at close()."""

    def __init__(self, fmt: str, out: IO[str]) -> None:
        self.fmt, self.out, self.count = fmt, out, 0
        self._rows: list[tuple[str, ...]] = []
        self._notes: list[list[tuple[str, str]]] = []
        self._csv: csv.DictWriter[str] | None = None
        if fmt == "csv":
            self._csv = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
            self._csv.writeheader()

    def add(self, r: ProbeResult) -> None:
        if self.fmt == "jsonl":
            self.out.write(json.dumps(r.to_dict(), separators=(",", ":")) + "\n")
            self.out.flush()
        elif self.fmt == "json":
            # Item by item, exactly as json.dump(list, indent=2) lays the array out.
            self.out.write(("[\n" if self.count == 0 else ",\n") + json.dumps([r.to_dict()], indent=2)[2:-2])
        elif self._csv is not None:
            self._csv.writerow(csv_safe({k: "" if v is None else v for k, v in csv_row(r).items()}))
        else:
            self._rows.append(_table_row(r))
            lines = _finding_lines(r)
            if lines:
                self._notes.append(lines)
        self.count += 1

    def close(self) -> None:
        if self.fmt == "json":
            self.out.write("\n]\n" if self.count else "[]\n")
        elif self.fmt == "table":
            _print_table(self._rows, self._notes, self.out)
        self.out.flush()


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


def _table_row(r: ProbeResult) -> tuple[str, ...]:
    if not r.reachable or r.is_etcd is not True:
        what = r.error or ("not etcd" if r.is_etcd is False else "unknown")
        etcd = "closed" if not r.reachable else ("?" if r.is_etcd is None else "no")
        return (r.target, etcd, "-", _tls_cell(r), "-", "-", "-", what, r.severity)
    read = "/".join(p for p, ok in (("v3", r.access.read_v3), ("v2", r.access.read_v2)) if ok) or "no"
    write = _yn(r.access.write)
    if r.access.read_v3 is None and r.access.read_v2 is None:  # no key API answered (a peer port)
        read = write = "-"
    return (r.target, r.version or "yes", r.role or "-", _tls_cell(r), _auth_cell(r), read, write, _data_cell(r),
            r.severity)


def _finding_lines(r: ProbeResult) -> list[tuple[str, str]]:
    """(text, style) lines printed under the table for one result; empty when there is nothing to say."""
    lines: list[tuple[str, str]] = []
    if r.credentials_rejected:
        lines += [("", ""), (f"{r.target}: etcd rejected the credentials of {r.credentials}; "
                             "shown is what anonymous access gives", "bold yellow")]
    shown = [f for f in r.findings if Severity.parse(f.severity) >= Severity.low]
    if shown:
        lines += [("", ""), (r.target, "bold")]
    for f in shown:
        lines += [(f"  [{f.severity}] {f.id}: {f.title}", _SEV_STYLE.get(f.severity, "")),
                  (f"      evidence: {f.evidence}", ""), (f"      fix: {f.remediation}", "")]
    return lines


_COLUMNS = ("target", "etcd", "role", "TLS", "auth", "read", "write", "data", "severity")
_CHUNK = 500  # rows rendered at a time: rich lays out a whole table in memory, 10 KB a row


def _print_table(rows: list[tuple[str, ...]], notes: list[list[tuple[str, str]]], stream: IO[str]) -> None:
    """One table to the eye, rendered 500 rows at a time with the same column widths, so printing
    100,000 rows costs the memory of 500."""
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table

    # A pipe or file gets a wide, uncoloured table rather than rich's 80-column fallback.
    console = Console(file=stream, soft_wrap=False, width=None if stream.isatty() else 200)
    widths = [cell_len(c) for c in _COLUMNS]
    for row in rows:
        widths = [max(w, cell_len(visible(c, SHOWN_CHARS))) for w, c in zip(widths, row, strict=True)]
    chunks = range(0, max(len(rows), 1), _CHUNK)
    for n, start in enumerate(chunks):
        table = Table(show_lines=False, header_style="bold", show_header=n == 0)
        for col, width in zip(_COLUMNS, widths, strict=True):
            table.add_column(col, overflow="fold", width=width)
        for row in rows[start:start + _CHUNK]:
            table.add_row(*map(plain, row[:-1]), plain(row[-1], _SEV_STYLE.get(row[-1], "")))
        with console.capture() as captured:
            console.print(table)
        lines = captured.get().splitlines(keepends=True)
        # The chunks join into one table: only the first keeps its top edge, only the last its bottom.
        stream.write("".join(lines[(1 if n else 0):(None if n == len(chunks) - 1 else -1)]))
    for lines in notes:
        for text, style in lines:
            console.print(plain(text, style) if text else "")


def write_table(results: Iterable[ProbeResult], out: IO[str] | None = None) -> None:
    write_stream(results, "table", out or sys.stdout)


def render(results: Iterable[ProbeResult], fmt: str, out: IO[str] | None = None) -> None:
    write_stream(results, fmt, out or sys.stdout)


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

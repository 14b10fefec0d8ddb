"""Where a report goes: stdout or `-o FILE` (written whole, then renamed into place), and with
`--charts DIR` each chart as its own SVG file. A path that cannot be written is one clear error."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from etcdsec.errors import UserError


def check_writable(output: str | None, charts_dir: str | None) -> None:
    """Fail before the (possibly long) aggregation, not after it."""
    if output:
        parent = Path(output).expanduser().resolve().parent
        if Path(output).is_dir():
            raise UserError(f"cannot write the report to {output}: it is a directory")
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise UserError(f"cannot write the report to {output}: {parent} is not a writable directory")
    if charts_dir:
        path = Path(charts_dir).expanduser()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the charts directory {charts_dir}: {exc.strerror or exc}") from None
        if not os.access(path, os.W_OK):
            raise UserError(f"cannot write charts into {charts_dir}: not writable")


def write_report(report: dict[str, Any], fmt: str, output: str | None, charts_dir: str | None) -> str | None:
    """Render and write; returns what to tell the user on stderr (None when it went to stdout)."""
    from etcdsec.report.render import render_csv, render_json, render_text

    charts = None
    if fmt == "html" or charts_dir:
        from etcdsec.report.html import render_charts

        charts = render_charts(report)
    buf = io.StringIO()
    if fmt == "html":
        from etcdsec.report.html import render_html

        buf.write(render_html(report, charts))
    else:
        {"json": render_json, "csv": render_csv, "text": render_text}[fmt](report, buf)
    notes = []
    if charts_dir and charts:
        for section in charts.values():
            for chart, svg in section:
                _write(Path(charts_dir) / f"{chart.id}.svg", '<?xml version="1.0" encoding="utf-8"?>\n' + svg)
        notes.append(f"{sum(len(s) for s in charts.values())} charts in {charts_dir}")
    if output:
        _write(Path(output).expanduser(), buf.getvalue())
        notes.insert(0, f"wrote {output} ({len(buf.getvalue().encode()) // 1024} KiB)")
    else:
        sys.stdout.write(buf.getvalue())
    return "; ".join(notes) or None


def _write(path: Path, text: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # what open() would have made, not mkstemp's 0600
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None

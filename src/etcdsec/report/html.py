"""`etcdsec report --format html`: one self-contained page drawn from the report object.

Jinja2 templates with autoescape on; every value printed goes through `visible` first (control
characters spelled out), SVG charts are the only markup let through. The page carries the report
as `<script type="application/json" id="etcdsec-report">`, and a Content-Security-Policy that
allows no fetch at all and only the page's own script (by hash).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from etcdsec.output import visible
from etcdsec.probe.catalogue import BY_ID
from etcdsec.report.charts import Chart, render_svg
from etcdsec.report.chartspec import all_charts
from etcdsec.version import __version__

PAGE_ROWS = 50  # endpoint rows per page of the table (the rest are a click away, from the JSON)


def _finalize(value: Any) -> Any:
    return value if isinstance(value, Markup) else visible(value)


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("etcdsec.report", "templates"), autoescape=True,
                      finalize=_finalize, trim_blocks=True, lstrip_blocks=True)
    env.filters["v"] = visible
    env.filters["num"] = lambda n: f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else visible(n)
    return env


def script_json(report: dict[str, Any]) -> str:
    """The report as JSON that cannot end its <script> element early (`</script>`, `<!--`)."""
    text = json.dumps(report, indent=None, default=str)  # ASCII: no raw control or bidi character
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render_charts(report: dict[str, Any]) -> dict[str, list[tuple[Chart, str]]]:
    return {section: [(c, render_svg(c)) for c in charts] for section, charts in all_charts(report).items()}


def render_html(report: dict[str, Any], charts: dict[str, list[tuple[Chart, str]]] | None = None) -> str:
    env = _environment()
    charts = render_charts(report) if charts is None else charts
    script = (Path(__file__).parent / "templates" / "report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    findings = [{"id": fid, "count": n, "doc": BY_ID.get(fid)} for fid, n in (report.get("findings") or {}).items()]
    return env.get_template("report.html.j2").render(
        r=report, charts={k: [(c, Markup(svg)) for c, svg in v] for k, v in charts.items()},
        findings=findings, version=__version__, page_rows=PAGE_ROWS,
        report_json=Markup(script_json(report)), script=Markup(script), script_hash=digest,
        style=Markup((Path(__file__).parent / "templates" / "report.css").read_text(encoding="utf-8")),
    )

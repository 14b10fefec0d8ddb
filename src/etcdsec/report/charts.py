"""The report's charts as inline SVG drawn by matplotlib: no JavaScript, works offline, and the
same bytes on every run (fixed `svg.hashsalt`, no date) so a page can be diffed and tested.
docs/report.md says why this and not altair, plotly or bokeh.

A chart is data (`Chart`): the HTML page draws it and prints the same numbers as a table beside
it; `--charts DIR` writes the same SVG to a file. Each bar and each point carries an id
(`<chart>-bar-<i>`, `<chart>-point-<i>`) so a test can count what the browser rendered.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from etcdsec.output import visible

# Okabe & Ito's palette: told apart by readers with any common colour-vision deficiency.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000")
SEVERITY_COLOURS = {"critical": "#D55E00", "high": "#E69F00", "medium": "#F0E442", "low": "#56B4E9",
                    "info": "#0072B2", "none": "#999999"}
MUTED = "#BBBBBB"
RC = {"svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 9, "axes.spines.top": False,
      "axes.spines.right": False, "svg.image_inline": True}
MAX_LABEL = 40


@dataclass
class Chart:
    id: str  # the file name under --charts and the prefix of its element ids
    title: str
    xlabel: str
    ylabel: str
    labels: list[str]
    values: list[float]
    kind: str = "bar"  # bar | barh | points
    colours: list[str] = field(default_factory=list)
    hatched: list[bool] = field(default_factory=list)  # bars drawn striped (end-of-life versions)
    note: str = ""  # one sentence a reader who cannot see the chart gets instead
    rows: list[tuple[str, float]] = field(default_factory=list)  # points: (series, x) pairs
    series: list[str] = field(default_factory=list)  # points: the y categories, top to bottom
    table: list[list[str]] = field(default_factory=list)  # the text alternative: header + rows
    legend: list[tuple[str, str, bool]] = field(default_factory=list)  # (label, colour, striped)



def chart_label(value: object) -> str:
    """A label matplotlib draws as written: controls visible, and `$` escaped (it would start
    mathtext, and a bad formula raises)."""
    return visible(value).replace("$", r"\$")

def render_svg(chart: Chart) -> str:
    with matplotlib.rc_context({**RC, "svg.hashsalt": f"etcdsec-{chart.id}"}):
        fig = Figure(figsize=(7.2, _height(chart)), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        if chart.kind == "points":
            _points(ax, chart)
        else:
            _bars(ax, chart)
        ax.set_title(chart_label(chart.title), loc="left", fontweight="bold")
        ax.set_xlabel(chart.xlabel)
        ax.set_ylabel(chart.ylabel)
        if chart.legend:
            from matplotlib.patches import Patch

            ax.legend(handles=[Patch(facecolor=c, label=label, hatch="//" if striped else None,
                                     edgecolor="#333333") for label, c, striped in chart.legend],
                      loc="best", frameon=False, fontsize=8)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return _accessible(buf.getvalue(), chart)


def _height(chart: Chart) -> float:
    if chart.kind == "barh":
        return max(2.4, 0.9 + 0.28 * max(len(chart.labels), 6))
    if chart.kind == "points":
        return max(2.4, 1.2 + 0.35 * len(chart.series))
    return 3.2


def _short(label: str) -> str:
    label = label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"
    return chart_label(label)


def _bars(ax: object, chart: Chart) -> None:
    positions = list(range(len(chart.values)))
    colours = chart.colours or [OKABE_ITO[0]] * len(chart.values)
    draw = ax.barh if chart.kind == "barh" else ax.bar  # type: ignore[attr-defined]
    bars = draw(positions, chart.values, 0.7, color=colours, edgecolor="#333333", linewidth=0.4)
    slots = max(len(positions), 6)  # a chart of one or two bars keeps thin bars, not page-wide blocks
    (ax.set_ylim(slots - 0.5, -0.5) if chart.kind == "barh" else ax.set_xlim(-0.5, slots - 0.5))  # type: ignore[attr-defined]
    for i, bar in enumerate(bars):
        bar.set_gid(f"{chart.id}-bar-{i}")
        if chart.hatched and chart.hatched[i]:
            bar.set_hatch("//")
    labels = [_short(label) for label in chart.labels]
    counts_axis = ax.xaxis if chart.kind == "barh" else ax.yaxis  # type: ignore[attr-defined]
    counts_axis.set_major_locator(MaxNLocator(integer=True))
    (ax.set_xlim if chart.kind == "barh" else ax.set_ylim)(0, max([*chart.values, 1]) * 1.12)  # type: ignore[attr-defined]
    if chart.kind == "barh":
        ax.set_yticks(positions, labels)  # type: ignore[attr-defined]
        ax.bar_label(bars, padding=2, fontsize=8)  # type: ignore[attr-defined]
    else:
        ax.set_xticks(positions, labels, rotation=30 if len(labels) > 6 else 0,  # type: ignore[attr-defined]
                      ha="right" if len(labels) > 6 else "center")
        ax.bar_label(bars, padding=2, fontsize=8)  # type: ignore[attr-defined]
    if not chart.values:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)  # type: ignore[attr-defined]


def _points(ax: object, chart: Chart) -> None:
    """One row per series (a target), a marker per event at its x (hours since the first event)."""
    rank = {name: i for i, name in enumerate(chart.series)}
    for i, ((series, x), colour) in enumerate(zip(chart.rows, chart.colours, strict=True)):
        (line,) = ax.plot([x], [rank[series]], marker="o", markersize=7, linestyle="none",  # type: ignore[attr-defined]
                          color=colour, markeredgecolor="#333333")
        line.set_gid(f"{chart.id}-point-{i}")
    for name, y in rank.items():
        xs = [x for s, x in chart.rows if s == name]
        if len(xs) > 1:
            ax.plot(xs, [y] * len(xs), color=MUTED, linewidth=1, zorder=0)  # type: ignore[attr-defined]
    ax.set_yticks(list(rank.values()), [_short(s) for s in rank])  # type: ignore[attr-defined]
    ax.set_ylim(len(rank) - 0.5, -0.5)  # type: ignore[attr-defined]


def _accessible(svg: str, chart: Chart) -> str:
    """Name the SVG for screen readers; drop the XML prolog so it can sit inside HTML."""
    svg = svg[svg.index("<svg"):]
    title = _xml(chart.title + (". " + chart.note if chart.note else ""))
    return re.sub(r"<svg ", f'<svg role="img" aria-label="{title}" id="chart-{chart.id}" ', svg, count=1)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

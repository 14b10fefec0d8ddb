"""Which charts a report gets, built from the report object alone (so every bar is a number of
the embedded JSON). Each comes with its data table, the text alternative printed beside it."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from etcdsec.report.charts import MUTED, OKABE_ITO, SEVERITY_COLOURS, Chart

# etcd supports the current minor release and the one before it; 3.6 (May 2025) ended 3.4's support.
# https://etcd.io/docs/v3.6/op-guide/versioning/
FIRST_SUPPORTED = (3, 5)
TOP_BARS = 10
SUPPORTED_COLOUR, EOL_COLOUR = OKABE_ITO[0], OKABE_ITO[3]


def version_key(version: str) -> tuple[int, tuple[int, ...], str]:
    numbers = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not numbers:
        return (1, (), version)
    return (0, tuple(int(n) for n in numbers.groups() if n is not None), version)


def end_of_life(version: str) -> bool:
    key = version_key(version)
    return key[0] == 0 and key[1][:2] < FIRST_SUPPORTED


def _table(header: tuple[str, str], pairs: list[tuple[str, Any]]) -> list[list[str]]:
    return [list(header), *[[str(k), str(v)] for k, v in pairs]]


def _top_and_other(counts: dict[str, int], total: int | None = None) -> list[tuple[str, int]]:
    pairs = list(counts.items())[:TOP_BARS]
    rest = (total if total is not None else sum(counts.values())) - sum(n for _, n in pairs)
    return [*pairs, ("other", rest)] if rest > 0 else pairs


def counted(chart_id: str, title: str, what: str, pairs: list[tuple[str, int]], kind: str = "barh",
            note: str = "", colours: list[str] | None = None) -> Chart:
    return Chart(id=chart_id, title=title, xlabel="etcd endpoints" if kind == "barh" else what,
                 ylabel=what if kind == "barh" else "etcd endpoints", labels=[k for k, _ in pairs],
                 values=[v for _, v in pairs], kind=kind, note=note, colours=colours or [],
                 table=_table((what, "endpoints"), pairs))


def scan_charts(report: dict[str, Any]) -> list[Chart]:
    charts: list[Chart] = []
    totals = report["totals"]
    versions = sorted(report["versions"].items(), key=lambda kv: version_key(kv[0]))
    eol = [end_of_life(v) for v, _ in versions]
    eol_count = sum(n for (_, n), old in zip(versions, eol, strict=True) if old)
    chart = counted("versions", "etcd versions", "version", versions, kind="bar",
                    note=f"{eol_count} of {totals['etcd']} endpoints run an end-of-life etcd "
                         f"(before {FIRST_SUPPORTED[0]}.{FIRST_SUPPORTED[1]}).",
                    colours=[EOL_COLOUR if old else SUPPORTED_COLOUR for old in eol])
    chart.hatched = eol
    chart.legend = [("supported", SUPPORTED_COLOUR, False), ("end of life", EOL_COLOUR, True)]
    chart.table = [["version", "endpoints", "support"],
                   *[[v, str(n), "end of life" if old else "supported"]
                     for (v, n), old in zip(versions, eol, strict=True)]]
    charts.append(chart)
    severities = list(totals["exposed_by_severity"].items())
    charts.append(counted("severity", "Exposed endpoints by severity", "severity", severities, kind="bar",
                          note=f"{totals['exposed']} of {totals['etcd']} etcd endpoints are exposed.",
                          colours=[SEVERITY_COLOURS.get(s, MUTED) for s, _ in severities]))
    orgs = _top_and_other(report["organizations"], totals["etcd"])
    charts.append(counted("organizations", f"Top {TOP_BARS} organizations", "organization", orgs))
    countries = _top_and_other(report.get("countries") or {}, totals["etcd"])
    charts.append(counted("countries", f"Top {TOP_BARS} countries", "country", countries))
    uptime = list(report["uptime"].items())
    charts.append(counted("uptime", "Uptime (days since the process started)", "uptime", uptime, kind="bar",
                          note=f"{sum(v for _, v in uptime)} endpoints told their start time."))
    posture = [(f"TLS: {k.replace('_', ' ')}", v) for k, v in report["tls"].items()]
    posture += [(f"auth: {k.replace('_', ' ')}", v) for k, v in report["auth"].items()]
    charts.append(counted("posture", "TLS and authentication (per API)", "property", posture))
    findings = list(report["findings"].items())[:15]
    charts.append(counted("findings", "Findings", "finding", findings))
    return charts


def compare_chart(compare: dict[str, Any]) -> Chart:
    pairs = [(k.replace("_", " "), v) for k, v in compare["counts"].items()]
    colours = [EOL_COLOUR, SUPPORTED_COLOUR, OKABE_ITO[1], OKABE_ITO[2]]
    return counted("compare", f"Changes since scan {compare['earlier']['id']}", "change", pairs, kind="bar",
                   colours=colours[: len(pairs)],
                   note=", ".join(f"{k}: {v}" for k, v in pairs) + ".")


def honeypot_charts(hp: dict[str, Any]) -> list[Chart]:
    timeline = hp.get("timeline") or {"unit": "hour", "counts": {}}
    pairs = list(timeline["counts"].items())
    unit = timeline["unit"]
    events = Chart(id="honeypot-timeline", title=f"Honeypot events per {unit}", xlabel=f"{unit} (UTC)",
                   ylabel="events", labels=[k.replace("T", " ") + (":00" if unit == "hour" else "") for k, _ in pairs],
                   values=[v for _, v in pairs], kind="bar", colours=[OKABE_ITO[1]] * len(pairs),
                   note=f"{hp['events']} events from {hp['first_seen']} to {hp['last_seen']}.",
                   table=_table((unit, "events"), pairs))
    sources = [(s["src_ip"] + (f" ({s['org']})" if s.get("org") else ""), s["events"])
               for s in hp["sources"][:TOP_BARS]]
    top = Chart(id="honeypot-sources", title="Top sources", xlabel="events", ylabel="source address",
                labels=[k for k, _ in sources], values=[v for _, v in sources], kind="barh",
                colours=[OKABE_ITO[2]] * len(sources), table=_table(("source", "events"), sources),
                note=f"{hp['source_count']} distinct sources.")
    return [events, top]


def monitor_chart(monitor: dict[str, Any]) -> Chart:
    """Each exposure change a marker on its target's row, coloured by the severity it changed to."""
    changes = [(t["target"], c) for t in monitor["targets"] for c in t["changes"]]
    start = min((_time(c["timestamp"]) for _, c in changes), default=None)
    rows, colours, table = [], [], [["target", "time", "before", "after", "added", "removed"]]
    for target, c in changes:
        at = _time(c["timestamp"])
        hours = (at - start).total_seconds() / 3600 if at and start else 0.0
        rows.append((target, round(hours, 3)))
        colours.append(SEVERITY_COLOURS.get(c["after"]["severity"], MUTED))
        table.append([target, str(c["timestamp"]), _state(c["before"]), _state(c["after"]),
                      ", ".join(c["added"]), ", ".join(c["removed"])])
    return Chart(id="monitor-timeline", title="Exposure changes per target", xlabel="hours since the first change",
                 ylabel="target", labels=[], values=[], kind="points", rows=rows, colours=colours,
                 series=[t["target"] for t in monitor["targets"]], table=table,
                 legend=[(s, SEVERITY_COLOURS[s], False) for s in ("critical", "high", "medium", "low", "none")],
                 note=f"{len(rows)} changes on {len(monitor['targets'])} targets.")


def _state(state: dict[str, Any]) -> str:
    if not state["reachable"]:
        return "unreachable"
    return f"{state['severity']}" + (" (exposed)" if state["exposed"] else "")


def _time(text: Any) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def all_charts(report: dict[str, Any]) -> dict[str, list[Chart]]:
    """Charts per page section."""
    out: dict[str, list[Chart]] = {}
    if "scan" in report:
        out["scan"] = scan_charts(report)
    if "compare" in report:
        out["compare"] = [compare_chart(report["compare"])]
    if report.get("honeypot"):
        out["honeypot"] = honeypot_charts(report["honeypot"])
    if report.get("monitor") and report["monitor"]["targets"]:
        out["monitor"] = [monitor_chart(report["monitor"])]
    return out

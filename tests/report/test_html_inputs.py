"""The HTML report's edges: the same bytes on every run, --charts files equal the page's charts,
hostile event files never break the page, and bad input is one line and a non-zero exit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from etcdsec.store.engine import open_engine
from etcdsec.store.scans import ScanStore
from tests.report.synthetic import fill_scan


def etcdsec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etcdsec", "report", *args], capture_output=True, text=True,
                          timeout=180)


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("inputs") / "s.db")
    store = ScanStore(open_engine(path))
    fill_scan(store, 400, "one", version_offset=2)
    fill_scan(store, 500, "two")
    return path


def test_same_bytes_every_run_and_charts_dir(db, tmp_path) -> None:
    first, second = tmp_path / "a.html", tmp_path / "b.html"
    for out, charts in ((first, tmp_path / "c1"), (second, tmp_path / "c2")):
        proc = etcdsec("--db", db, "--format", "html", "-o", str(out), "--compare", "1", "--charts", str(charts))
        assert proc.returncode == 0, proc.stderr
    assert first.read_bytes() == second.read_bytes()
    html = first.read_text()
    names = sorted(p.name for p in (tmp_path / "c1").iterdir())
    assert "compare.svg" in names and "versions.svg" in names
    for name in names:
        svg = (tmp_path / "c1" / name).read_text()
        assert svg == (tmp_path / "c2" / name).read_text()
        assert svg.split("\n", 1)[1] in html  # the file is the chart on the page
        assert "<dc:date>" not in svg and "<title>" not in svg.split("<metadata>")[0]
    # the page stays small: the endpoint table is capped, counts are summed
    assert len(html) < 600_000
    doc = json.loads(etcdsec("--db", db, "--format", "json", "--compare", "1").stdout)
    assert doc["compare"]["counts"]["new_etcd"] == 100
    assert re.search(r'id="compare-bar-3"', html) and not re.search(r'id="compare-bar-4"', html)


def test_hostile_event_files_make_a_page(db, tmp_path) -> None:
    events = tmp_path / "hostile.jsonl"
    lines = [
        {"timestamp": "2026-11-27T05:00:00Z", "eventid": "etcdsec.http.request", "method": "GET",
         "path": "$\\frac{$}{0}$ \x00 </script><img src=x onerror=alert(1)>", "src_ip": "127.0.0.1",
         "user_agent": "\u202eevil", "session": "a"},
        {"timestamp": "not a time", "eventid": "etcdsec.monitor.exposure.changed", "target": ["list"],
         "before": "x", "after": None},
        {"timestamp": "2026-11-27T05:00:01Z", "eventid": "etcdsec.monitor.exposure.changed", "target": "t:2379",
         "before": {"severity": "catastrophic"}, "after": {"reachable": True, "exposed": True, "severity": "high",
                                                           "findings": [1, {"x": 2}, "ETCD-X"]},
         "added": "not a list"},
        {"timestamp": "2026-11-27T05:00:02Z", "eventid": "etcdsec.monitor.connection.anomalous",
         "card": {"src_ip": {"x": 1}, "count": 10**30, "severity": "high", "reasons": ["r" * 10_000]}},
        {"timestamp": "2026-11-27T05:00:03Z", "eventid": "etcdsec.monitor.connection.anomalous", "card": "no"},
    ]
    events.write_text("".join(json.dumps(line) + "\n" for line in lines) + "\n\n\xff\xfe broken\n",
                      encoding="utf-8", errors="surrogateescape")
    out = tmp_path / "page.html"
    proc = etcdsec("--db", db, "--format", "html", "-o", str(out), "--events", str(events))
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert "<img" not in html and html.count("</script>") == 2  # the JSON's and the code's, nothing injected
    assert "\x00" not in html and "\u202e" not in html and "\\u202eevil" in html
    doc = json.loads(etcdsec("--db", db, "--format", "json", "--events", str(events)).stdout)
    assert doc["event_files"]["broken_lines"] == 1
    assert doc["monitor"]["targets"] == [{"target": "t:2379", "changes": [{
        "timestamp": "2026-11-27T05:00:01Z",
        "before": {"reachable": False, "exposed": False, "severity": "none", "findings": []},
        "after": {"reachable": True, "exposed": True, "severity": "high", "findings": ["1", "ETCD-X"]},
        "added": [], "removed": []}]}]
    text = etcdsec("--db", db, "--events", str(events))
    assert text.returncode == 0 and "monitor: 2 exposure changes, 2 anomalous" in text.stdout
    assert "none -> high" in text.stdout and "\x1b" not in text.stdout
    card = doc["monitor"]["cards"][0]
    assert card["src_ip"] is None and card["count"] is None and len(card["reasons"][0]) == 300


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "html", "-o", "/nonexistent-dir/r.html"], "cannot write the report to /nonexistent-dir/r.html"),
    (["--format", "html", "-o", "/"], "cannot write the report to /: it is a directory"),
    (["--events", "/nonexistent.jsonl"], "cannot read events file /nonexistent.jsonl"),
    (["--compare", "99"], "no scan 99 in this database"),
    (["--compare", "2"], "--compare 2 is the scan being reported"),
    (["--scan", "42", "--format", "html"], "no scan 42"),
    (["--charts", "/proc/version/x"], "cannot create the charts directory"),
])
def test_bad_input_is_one_line(db, args, message) -> None:
    proc = etcdsec("--db", db, *args)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("etcdsec: error:") and message in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_empty_database_and_unwritable_output(tmp_path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    proc = etcdsec("--db", str(empty), "--format", "html", "-o", str(tmp_path / "r.html"))
    assert proc.returncode != 0 and proc.stderr.startswith("etcdsec: error: no scans or honeypot events")
    assert not (tmp_path / "r.html").exists()
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        proc = etcdsec("--db", str(empty), "--format", "html", "-o", str(locked / "r.html"))
        assert "is not a writable directory" in proc.stderr


def test_chart_labels_are_text_not_formulas() -> None:
    """`$` starts a matplotlib formula (a bad one raises); control characters would vanish or act."""
    from etcdsec.report.charts import Chart, render_svg

    svg = render_svg(Chart(id="t", title="$x$ org", xlabel="a", ylabel="b", labels=["$\\frac{1}{", "a\x1bb"],
                           values=[1, 2]))
    assert "$\\frac{1}{" in svg and "a\\x1bb" in svg and "\x1b" not in svg and "$x$ org" in svg
    assert svg.count('id="t-bar-') == 2


def test_monitor_events_in_the_database(tmp_path) -> None:
    """Without --events the monitor section comes from the database's monitor_events table, written
    as `etcdsec monitor --db` writes it."""
    from etcdsec.events.store import EventStoreWriter
    from etcdsec.store.schema import monitor_events

    path = str(tmp_path / "m.db")
    store = ScanStore(open_engine(path))
    fill_scan(store, 10, "one")
    change = {"timestamp": "2026-11-27T05:00:00Z", "eventid": "etcdsec.monitor.exposure.changed",
              "target": "127.0.0.9:2379", "before": {"reachable": False}, "after": {"reachable": True,
                                                                               "exposed": True, "severity": "critical"},
              "added": ["ETCD-ANON-READ-V3"], "removed": []}
    writer = EventStoreWriter(path, table=monitor_events, interval=0.05)
    writer(change)
    writer.close()
    assert writer.written == 1
    doc = json.loads(etcdsec("--db", path, "--format", "json").stdout)
    assert doc["monitor"]["exposure_changes"] == 1 and "honeypot" not in doc  # monitor events are not attacks
    assert doc["monitor"]["targets"][0]["changes"][0]["after"]["severity"] == "critical"

"""`etcdsec report --format html` over a real scan of real etcd servers and a real honeypot's event
file, opened in Debian's headless Chromium through Playwright: no console error, no request,
every chart drawn with the expected number of bars and points, the endpoint table filters and
sorts, and the embedded JSON is `--format json`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.report.eventfiles import loaded_events
from etcdsec.report.honeypot import honeypot_summary
from etcdsec.store.engine import open_engine
from etcdsec.testbed.etcd import EtcdConfig
from tests.support.harness import BackgroundSensor

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install chromium (scripts/test.sh)")

HOSTILE_PATH = "/v2/keys/</script><script>window.pwned=1</script>$\\frac{1}{0}$\x1b[31m\u202egpj.exe"


def etcdsec(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "etcdsec", *args], capture_output=True, text=True, timeout=180)
    if check and proc.returncode != 0:
        raise AssertionError(f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def monitor_events() -> list[dict]:
    def state(exposed: bool, severity: str) -> dict:
        return {"reachable": True, "exposed": exposed, "severity": severity,
                "findings": ["ETCD-ANON-READ-V3"] if exposed else []}

    return [
        {"timestamp": "2026-11-27T05:00:00Z", "eventid": "etcdsec.monitor.exposure.changed", "target": "127.0.0.9:2379",
         "before": state(False, "none"), "after": state(True, "critical"), "added": ["ETCD-ANON-READ-V3"],
         "removed": []},
        {"timestamp": "2026-11-27T07:00:00Z", "eventid": "etcdsec.monitor.exposure.changed", "target": "127.0.0.9:2379",
         "before": state(True, "critical"), "after": state(False, "none"), "added": [],
         "removed": ["ETCD-ANON-READ-V3"]},
        {"timestamp": "2026-11-27T06:00:00Z", "eventid": "etcdsec.monitor.exposure.changed", "target": "127.0.0.8:2380",
         "before": state(False, "none"), "after": state(True, "high"), "added": ["ETCD-PEER-OPEN"], "removed": []},
        {"timestamp": "2026-11-27T06:30:00Z", "eventid": "etcdsec.monitor.connection.anomalous",
         "card": {"src_ip": "127.66.0.1", "src_port": 51000, "dst_ip": "127.0.0.9", "dst_port": 2379, "role": "client",
                  "first_seen": "2026-11-27T06:29:00Z", "last_seen": "2026-11-27T06:30:00Z", "count": 4,
                  "org": "Evil\u202eCorp", "exposure": "critical", "severity": "high",
                  "reasons": ["first connection from this network"], "actions": ["block 127.66.0.1"]}},
    ]


@pytest.fixture(scope="module")
def bed(etcd_factory, tmp_path_factory):
    """A scan of two real etcd servers, a real honeypot's events (file and database), monitor events."""
    kube = etcd_factory("scan-open-3.5", EtcdConfig(version="3.5", name="kube-master-1"))
    plain = etcd_factory("report-3.4-v2", EtcdConfig(version="3.4", name="infra0", enable_v2=True))
    tmp = tmp_path_factory.mktemp("html")
    db = str(tmp / "scan.db")
    etcdsec("scan", kube.ip, plain.ip, "--db", db, "--timeout", "5", "-q", "--name", "html-test")
    hp_db, hp_file = str(tmp / "hp.db"), tmp / "hp.jsonl"
    with BackgroundSensor(SensorConfig(state_file=None, db=hp_db, events=hp_file, enable_v2=True)) as hp:
        for path in ("/version", "/v2/keys/?recursive=true", HOSTILE_PATH.replace("\x1b", "%1b")):
            subprocess.run(["curl", "-s", "-g", "-A", "etcdctl/3.5.1", hp.url + path], capture_output=True, timeout=10)
        subprocess.run(["curl", "-s", "-X", "PUT", "-d", "value=x", hp.url + "/v2/keys/pwned"], capture_output=True,
                       timeout=10)
    events = tmp / "events.jsonl"
    shutil.copy(hp_file, events)
    with events.open("a", encoding="utf-8") as fh:
        for event in monitor_events():
            fh.write(json.dumps(event) + "\n")
        fh.write('{"timestamp": "2026-11-27T05:00:00Z", "eventid": "etcdsec.http.request", "path": ' + json.dumps(
            HOSTILE_PATH) + ', "src_ip": {"not": "a string"}, "src_port": "x", "session": "zz"}\n')
        fh.write("not json at all\n[1, 2]\n{\"eventid\": 5}\n" + "x" * (2 << 20) + "\n{\"truncated\": \n")
    return {"db": db, "hp_db": hp_db, "hp_file": str(hp_file), "events": str(events), "tmp": tmp}


def test_events_file_gives_the_database_summary(bed) -> None:
    """The sensor wrote each event to its file and its database: both summaries agree exactly."""
    from_db = honeypot_summary(open_engine(bed["hp_db"]))
    with loaded_events([bed["hp_file"]]) as loaded:
        from_file = honeypot_summary(loaded.engine)
        assert loaded.broken == 0
    assert from_db is not None and from_db["events"] >= 4
    assert from_file == from_db
    assert from_db["sessions"] and "dump" in {p for s in from_db["sessions"] for p in s["story"]}


def test_broken_lines_are_counted_and_skipped(bed) -> None:
    proc = etcdsec("report", "--db", bed["db"], "--format", "json", "--events", bed["events"])
    report = json.loads(proc.stdout)
    # not JSON, an array, a number eventid, a line over 1 MiB, a cut-off object
    assert report["event_files"]["broken_lines"] == 5
    assert "5 of" in proc.stderr and "lines are not events" in proc.stderr
    with loaded_events([bed["hp_file"]]) as loaded:
        own = honeypot_summary(loaded.engine)
    assert report["honeypot"]["events"] == own["events"] + 1  # the hostile but well-formed line counts
    assert report["monitor"]["exposure_changes"] == 3 and report["monitor"]["anomalies"] == 1
    timeline = {t["target"]: [c["after"]["severity"] for c in t["changes"]] for t in report["monitor"]["targets"]}
    assert timeline == {"127.0.0.9:2379": ["critical", "none"], "127.0.0.8:2380": ["high"]}


def test_page_in_chromium(bed) -> None:
    from playwright.sync_api import sync_playwright

    page_file = bed["tmp"] / "report.html"
    proc = etcdsec("report", "--db", bed["db"], "--format", "html", "-o", str(page_file), "--events", bed["events"],
                   "--charts", str(bed["tmp"] / "charts"))
    assert f"wrote {page_file}" in proc.stderr
    expected = json.loads(etcdsec("report", "--db", bed["db"], "--format", "json", "--events", bed["events"]).stdout)
    assert sorted(p.name for p in (bed["tmp"] / "charts").iterdir()) == sorted(
        f"{c}.svg" for c in ("versions", "severity", "organizations", "countries", "uptime", "posture", "findings",
                             "honeypot-timeline", "honeypot-sources", "monitor-timeline"))
    html = page_file.read_text()
    assert "<script>window.pwned" not in html and "\x1b" not in html and "\u202e" not in html

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            problems: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                    else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            assert problems == []
            assert requests == [page_file.as_uri()]  # the page itself, nothing else
            assert page.evaluate("window.pwned") is None

            # parsed by Python: JavaScript numbers would round the 64-bit scan seed
            embedded = json.loads(page.evaluate("document.getElementById('etcdsec-report').textContent"))
            assert embedded == expected
            assert page.evaluate("JSON.parse(document.getElementById('etcdsec-report').textContent).totals.etcd") == 4

            for svg in page.locator("figure.chart svg").all():
                box = svg.bounding_box()
                assert box and box["width"] > 100 and box["height"] > 100
                assert svg.get_attribute("aria-label")
            assert page.locator("figure.chart svg").count() == 10

            def marks(chart_id: str, kind: str = "bar") -> int:
                return page.locator(f'[id^="{chart_id}-{kind}-"]').count()

            assert marks("versions") == len(expected["versions"]) == 2
            assert marks("severity") == len(expected["totals"]["exposed_by_severity"])
            assert marks("uptime") == 5
            assert marks("findings") == len(expected["findings"])
            assert marks("honeypot-timeline") == len(expected["honeypot"]["timeline"]["counts"])
            assert marks("monitor-timeline", "point") == 3
            assert page.locator(".card").count() == 1
            assert "Evil\\u202eCorp" in page.locator(".card").inner_text()
            assert HOSTILE_PATH.split("<")[0] in page.locator("#honeypot").inner_text()

            rows = page.locator("#endpoint-table tbody tr")
            total = len(expected["endpoints"]["rows"])
            assert rows.count() == total == expected["totals"]["etcd"] == 4  # both servers, client and peer ports
            page.fill("#ep-filter", "3.4.23")
            assert rows.count() == 2 and all("3.4.23" in rows.nth(i).inner_text() for i in range(2))
            assert page.locator("#ep-status").inner_text() == "rows 1–2 of 2"
            page.fill("#ep-filter", "no such endpoint")
            assert rows.count() == 0 and page.locator("#ep-status").inner_text() == "no row matches"
            page.fill("#ep-filter", "")
            page.click('#endpoint-table th[data-col="1"] button')  # version, ascending
            versions = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count())]
            assert versions == sorted(versions, key=lambda v: tuple(int(x) for x in v.split(".")))
            page.click('#endpoint-table th[data-col="1"] button')
            assert page.locator('#endpoint-table th[data-col="1"]').get_attribute("aria-sort") == "descending"
            page.select_option("#ep-severity", "critical")
            assert rows.count() == sum(r[2] == "critical" for r in expected["endpoints"]["rows"])

            page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.evaluate("document.querySelectorAll('details.data').forEach(d => { d.open = false; })")
            assert not any(t.is_visible() for t in page.locator("details.data table").all())
            page.emulate_media(media="print")  # print CSS: no navigation or controls, every data table shown
            assert not page.locator("nav").is_visible() and not page.locator("#endpoints .controls").is_visible()
            assert all(t.is_visible() for t in page.locator("details.data table").all())
            assert page.pdf()[:5] == b"%PDF-"
            assert problems == []
        finally:
            browser.close()

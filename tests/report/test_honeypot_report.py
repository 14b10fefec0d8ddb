"""`etcdsec report` on a database only a honeypot wrote to: its interactions are the report."""

from __future__ import annotations

import json
import subprocess
import sys

from etcdsec.honeypot.sensor import SensorConfig
from tests.support.harness import BackgroundSensor


def report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etcdsec", "report", *args], capture_output=True, text=True,
                          timeout=60)


def test_report_of_a_honeypot_database(tmp_path) -> None:
    db = str(tmp_path / "hp.db")
    with BackgroundSensor(SensorConfig(state_file=None, db=db, enable_v2=True)) as hp:
        for path in ("/version", "/v2/keys/?recursive=true"):
            subprocess.run(["curl", "-s", "-A", "masscan-ng/1.3", hp.url + path], capture_output=True, timeout=10)
    text = report("--db", db)
    assert text.returncode == 0, text.stderr
    assert "honeypot" in text.stdout and "/v2/keys/?recursive=true" in text.stdout and "masscan-ng/1.3" in text.stdout
    doc = json.loads(report("--db", db, "--format", "json").stdout)
    assert set(doc) == {"honeypot"}
    assert doc["honeypot"]["methods"] == {"GET": 2} and doc["honeypot"]["source_count"] == 1
    rows = report("--db", db, "--format", "csv").stdout.splitlines()
    assert rows[0] == "section,key,value" and "honeypot,events," in "\n".join(rows)

    empty = str(tmp_path / "empty.db")
    (tmp_path / "empty.db").touch()
    out = report("--db", empty)
    assert out.returncode != 0 and out.stderr.startswith("etcdsec: error: no scans or honeypot events")

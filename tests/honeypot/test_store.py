"""Events land in SQLite and PostgreSQL, and `honeypot_summary` reports what the issue lists."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request

import pytest

from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.report.honeypot import honeypot_summary
from etcdsec.store.engine import open_engine
from tests.honeypot.conftest import raw_exchange
from tests.support.harness import BackgroundSensor


def drive(hp: BackgroundSensor) -> None:
    """A small attack: recon, bait read, a write, malformed input, a HEAD, a stolen token reused."""
    for path in ("/version", "/v2/keys/?recursive=true", "/v2/keys/registry/secrets/prod/backup-s3"):
        subprocess.run(["curl", "-s", "-A", "masscan-ng/1.3", f"{hp.url}{path}"], capture_output=True, timeout=10)
    subprocess.run(["curl", "-s", "-X", "PUT", "-d", "value=pwned", f"{hp.url}/v2/keys/message"], capture_output=True,
                   timeout=10)
    raw_exchange(hp.ip, 2379, b"HEAD /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw_exchange(hp.ip, 2379, b"\x16\x03\x01garbage-not-http\r\n\r\n")
    secret = json.loads(json.loads(urllib.request.urlopen(
        f"{hp.url}/v2/keys/registry/secrets/prod/backup-s3", timeout=5).read())["node"]["value"])
    key = base64.b64decode(secret["data"]["AWS_SECRET_ACCESS_KEY"]).decode()
    subprocess.run(["curl", "-s", "-H", f"X-Api-Key: {key}", f"{hp.url}/version"], capture_output=True, timeout=10)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_summary_from_a_real_session(tmp_path, request, backend) -> None:
    db = str(tmp_path / "hp.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    with BackgroundSensor(SensorConfig(persona="3.3.27", db=db, state_file=None)) as hp:
        drive(hp)
    # the sensor's stop() flushed the writer thread: everything is in the database now
    summary = honeypot_summary(open_engine(db))
    assert summary is not None
    assert summary["events"] == len(hp.memory.events)
    assert summary["source_count"] == 1 and summary["sources"][0]["src_ip"] == "127.0.0.1"
    assert summary["sources"][0]["first_seen"] <= summary["sources"][0]["last_seen"]
    assert summary["methods"]["GET"] >= 4 and summary["methods"]["PUT"] == 1
    assert {"value": "/v2/keys/message", "count": 1} in summary["paths"]
    assert summary["clients"]["user_agents"][0]["value"].startswith(("masscan-ng", "curl"))
    assert summary["head_requests"] == 1 and summary["malformed"] == 1
    assert [u["token"] for u in summary["honeytoken_uses"]] == ["cloud-secret-key:prod/backup-s3"]


def test_no_table_or_no_events_gives_none(tmp_path) -> None:
    engine = open_engine(str(tmp_path / "empty.db"))
    assert honeypot_summary(engine) is None
    from etcdsec.events.store import create_tables

    create_tables(engine)
    assert honeypot_summary(engine) is None

"""A flood rotates the event file's history away; each source's first sight and every honeytoken use
stay in `events.kept.jsonl`, which is never rotated (issue 17)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import yaml

from etcdsec.events.kept import kept_path
from etcdsec.honeypot.context import Limits
from etcdsec.honeypot.sensor import SensorConfig
from tests.support.harness import BackgroundSensor

CANARY = "s3cr3t-canary-17"
CLOSE = b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def exchange(ip: str, port: int, src: str, data: bytes) -> bytes:
    with socket.create_connection((ip, port), timeout=5, source_address=(src, 0)) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def test_first_sight_and_honeytoken_uses_outlive_rotation(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump({"keys": {"/config/db": {"password": CANARY}}, "honeytokens": {CANARY: "db-pw"}}))
    events = tmp_path / "events.jsonl"
    config = SensorConfig(persona="3.5.1", state_file=None, seed_file=seed, enable_v2=True, events=events,
                          events_max_bytes=40_000, events_backups=1, limits=Limits(rate_per_source=0))
    with BackgroundSensor(config) as hp:
        first = f"GET /v2/keys/first?token={CANARY} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        assert exchange(hp.ip, hp.port, "127.97.0.1", first).startswith(b"HTTP/1.1 404")
        flood = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n" * 499 + CLOSE
        for _ in range(3):
            exchange(hp.ip, hp.port, "127.97.0.1", flood)
        exchange(hp.ip, hp.port, "127.97.0.2", CLOSE.replace(b"/version", f"/x?{CANARY}".encode()))
    rotated = lines(events) + lines(events.with_name("events.jsonl.1"))
    assert hp.sensor is None and not any("/v2/keys/first" in str(e.get("path")) for e in rotated)  # gone from the file
    kept = lines(kept_path(events))
    firsts = [(e["src_ip"], e["eventid"]) for e in kept if e["eventid"] != "etcdsec.honeytoken.used"]
    assert len(firsts) == len(set(firsts))  # one of each kind per source
    requests = [e for e in kept if e["eventid"] == "etcdsec.http.request"]
    assert [(e["src_ip"], e["path"]) for e in requests] == [("127.97.0.1", f"/v2/keys/first?token={CANARY}"),
                                                           ("127.97.0.2", f"/x?{CANARY}")]
    uses = [e for e in kept if e["eventid"] == "etcdsec.honeytoken.used"]
    assert [(e["src_ip"], e["token"]) for e in uses] == [("127.97.0.1", "db-pw"), ("127.97.0.2", "db-pw")]

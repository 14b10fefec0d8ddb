"""Header bytes stay bytes from the wire to the event: a value with bytes above 0x7F (obs-text, legal
in HTTP/1 and HTTP/2 alike) reaches the `http.request` event as the same latin-1 text whichever path
carried it (HTTP/1 through h11, HTTP/2 plain), in memory and in the JSON-lines file, and a honeytoken
beside those bytes is still found."""

from __future__ import annotations

import json
import subprocess
import time

from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.pki import TestCA
from tests.support.harness import BackgroundSensor

from .conftest import raw_exchange

TOKEN = "canary-5b0e21d4c8"
AGENT = b"probe/\xe9\xff"  # not UTF-8: Go keeps the bytes, the event shows one character per byte
ODD = b"caf\xe9 " + TOKEN.encode()


def _wait_for(hp: BackgroundSensor, count: int) -> list[dict]:
    deadline = time.monotonic() + 5
    while len(hp.memory.of("http.request")) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return hp.memory.of("http.request")


def test_bytes_above_ascii_reach_the_event_as_latin1_on_http1_and_h2(tmp_path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(f"keys: {{}}\nhoneytokens:\n  {TOKEN}: canary\n")
    ip = free_loopback_ip((2379, 2380))
    cert = TestCA(tmp_path).issue("server", ips=[ip])
    events = tmp_path / "events.jsonl"
    config = SensorConfig(persona="3.5.1", state_file=tmp_path / "state.json", seed_file=seed, events=events,
                          tls_cert=cert.cert, tls_key=cert.key)
    with BackgroundSensor(config, ip=ip) as hp:
        # over TLS too: the fast reader hands non-ASCII bytes to h11
        http1 = (b"GET /version HTTP/1.1\r\nHost: x\r\nUser-Agent: " + AGENT + b"\r\nX-Odd: " + ODD
                 + b"\r\nConnection: close\r\n\r\n")
        out = subprocess.run(["curl", "-s", "-k", "--http1.1", "-o", "/dev/null", "-w", "%{http_code}",
                              "-H", b"User-Agent: " + AGENT, "-H", b"X-Odd: " + ODD, f"https://{ip}:2379/version"],
                             capture_output=True, timeout=20, check=True).stdout
        assert out == b"200"
        assert raw_exchange(ip, 2379, http1).startswith(b"HTTP/1.1 200")  # plain text, straight from the socket
        out = subprocess.run(["curl", "-s", "-k", "--http2", "-o", "/dev/null", "-w", "%{http_version}",
                              "-H", b"User-Agent: " + AGENT, "-H", b"X-Odd: " + ODD, f"https://{ip}:2379/version"],
                             capture_output=True, timeout=20, check=True).stdout
        assert out == b"2"
        seen = _wait_for(hp, 3)
        tokens = [(e["token"], e["where"]) for e in hp.memory.of("honeytoken.used")]
    agent, odd = AGENT.decode("latin-1"), ODD.decode("latin-1")
    assert [(e["http_version"], e["user_agent"]) for e in seen] == [("1.1", agent), ("1.1", agent), ("2", agent)]
    for event in seen:
        pairs = {name.lower(): value for name, value in event["headers"]}
        assert (pairs["user-agent"], pairs["x-odd"]) == (agent, odd)
    assert ["User-Agent", agent] in [list(p) for p in seen[1]["headers"]]  # the name as sent on HTTP/1
    assert ["user-agent", agent] in [list(p) for p in seen[2]["headers"]]  # HTTP/2 names are lower-case
    assert tokens == [("canary", "request")] * 3  # found beside the odd bytes on every path
    written = [json.loads(line) for line in events.read_bytes().splitlines()]
    logged = [e for e in written if e["eventid"] == "etcdsec.http.request"]
    assert [e["user_agent"] for e in logged] == [agent] * 3
    assert [[v for n, v in e["headers"] if n.lower() == "x-odd"] for e in logged] == [[odd]] * 3

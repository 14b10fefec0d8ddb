"""`etcdsec honeypot` as scripts use it: foreground run, SIGTERM flushes and exits 0, bad input exits 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from etcdsec.testbed.addresses import free_loopback_ip


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    ip = free_loopback_ip((2379,))
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{ip}:2379",
                             "--events", str(events), "--state", str(tmp_path / "state.json"), *extra],
                            stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()  # printed once listening
    assert "listening on" in line, line
    return proc, f"http://{ip}:2379", events


def test_runs_until_sigterm_then_flushes_and_exits_zero(tmp_path) -> None:
    proc, url, events = start(tmp_path, "--persona", "3.4.23", "--name", "kube-master-7", "--flush-interval", "5")
    try:
        body = urllib.request.urlopen(url + "/version", timeout=5).read()
        assert json.loads(body) == {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    ids = [e["eventid"] for e in lines]
    assert ids[0] == "etcdsec.sensor.start" and ids[-1] == "etcdsec.sensor.stop"
    assert "etcdsec.http.request" in ids and "etcdsec.session.connect" in ids
    assert all(e["eventid"].startswith("etcdsec.") for e in lines)


def test_identity_survives_a_restart(tmp_path) -> None:
    ids = []
    for _ in range(2):
        proc, url, _ = start(tmp_path, "--persona", "3.3.27")
        try:
            members = json.loads(urllib.request.urlopen(url + "/v2/members", timeout=5).read())
            ids.append(members["members"][0]["id"])
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(10) == 0
    assert ids[0] == ids[1]


@pytest.mark.parametrize("args, message", [
    (["--listen", "nonsense"], "expected HOST:PORT"),
    (["--persona", "9.9"], "unknown persona"),
    (["--tls-cert", "x.pem"], "go together"),
    (["--proxy-protocol"], "--trusted-proxy"),
    (["--events", "/no/such/dir/e.jsonl"], "directory does not exist"),
    (["--listen", "192.0.2.1:1"], "cannot listen"),
    (["--events", "."], "cannot open event file"),
    (["--metrics-listen", "0.0.0.0:9108"], "loopback"),
    (["--rate", "-1"], "not negative"),
    (["--watch-timeout", "-2"], "not negative"),
    (["--alert-on", "honeytoken.usd", "--alert-webhook", "http://127.0.0.1:9/"], "unknown event id"),
    (["--alert-on", "monitor.exposure.changed", "--alert-syslog", "127.0.0.1:9"], "unknown event id"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message) -> None:
    out = subprocess.run([sys.executable, "-m", "etcdsec", "honeypot", "--state", str(tmp_path / "s.json"), *args],
                         capture_output=True, timeout=20, cwd=tmp_path)
    err = out.stderr.decode()
    assert out.returncode == 2, err
    assert err.startswith("etcdsec: error: ") and message in err and err.count("\n") == 1


def test_kill_9_under_load_loses_no_answered_request(tmp_path) -> None:
    """Write-through events: every request that got its answer before kill -9 is in the file."""
    proc, url, events = start(tmp_path, "--rate", "0")
    answered = 0
    deadline = time.monotonic() + 3.0
    try:
        while time.monotonic() < deadline and answered < 400:  # bounded load loop
            req = urllib.request.Request(f"{url}/load/{answered}", method="GET")
            try:
                urllib.request.urlopen(req, timeout=5)
            except urllib.error.HTTPError:
                pass
            answered += 1
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    logged = {json.loads(x)["path"] for x in events.read_text().splitlines()
              if '"etcdsec.http.request"' in x}
    missing = [i for i in range(answered) if f"/load/{i}" not in logged]
    assert answered >= 50 and missing == []


def test_a_seed_file_that_is_not_yaml_is_a_one_line_error(tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text("keys: [unclosed\n")
    out = subprocess.run([sys.executable, "-m", "etcdsec", "honeypot", "--seed", "bad.yaml", "--state", "s.json"],
                         capture_output=True, timeout=20, cwd=tmp_path)
    err = out.stderr.decode()
    assert out.returncode == 2 and err.count("\n") == 1
    assert err.startswith("etcdsec: error: cannot read seed file bad.yaml: line 2, column 1: expected ',' or ']'")

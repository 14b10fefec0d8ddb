"""`etcdsec monitor exposure` against real etcd 3.4 and 3.5 on loopback: auth turned off and on
with etcdctl while it runs, etcd stopped, history across restarts, --once exit codes."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.support.etcd_admin import enable_v3_auth, etcdctl
from tests.support.waiting import wait_for

from .conftest import monitor, observations, once, read_events

CHANGED = "etcdsec.monitor.exposure.changed"


def _changes(path: Path) -> list[dict]:
    return [e for e in read_events(path) if e["eventid"] == CHANGED]


@pytest.mark.parametrize("version", ["3.4", "3.5"])
def test_auth_off_on_and_down_while_running(tmp_path: Path, version: str) -> None:
    db, ev = tmp_path / "m.db", tmp_path / "ev.jsonl"
    with EtcdServer(EtcdConfig(version=version)) as etcd:
        enable_v3_auth(etcd)
        target = etcd.client_addr
        proc = monitor(target, "--every", "0.3s", "--db", str(db), "--events", str(ev), cwd=tmp_path)
        try:
            assert wait_for(lambda: observations(db, target) >= 1)
            etcdctl(etcd, "--user", "root:rootpw", "auth", "disable")
            opened = wait_for(lambda: _changes(ev))
            assert len(opened) == 1, opened
            e = opened[0]
            assert e["target"] == target and e["sensor"] and e["timestamp"].endswith("Z")
            assert "ETCD-ANON-READ-V3" in e["added"] and e["removed"] == [] and e["worse"] is True
            assert e["before"]["exposed"] is False and e["after"]["exposed"] is True
            assert e["before"]["reachable"] and e["after"]["reachable"]
            assert "ETCD-ANON-READ-V3" in e["after"]["findings"] and "ETCD-ANON-READ-V3" not in e["before"]["findings"]
            assert e["before"]["v3_auth"] is True and e["after"]["v3_auth"] is False
            assert e["after"]["version"].startswith(version)

            etcdctl(etcd, "auth", "enable")  # root exists already
            closed = wait_for(lambda: _changes(ev)[1:])
            assert closed[0]["removed"] == e["added"] and closed[0]["added"] == []
            assert closed[0]["after"]["exposed"] is False and closed[0]["worse"] is False

            etcd.stop()
            down = wait_for(lambda: _changes(ev)[2:])
            assert down[0]["after"]["reachable"] is False and down[0]["before"]["reachable"] is True
            assert down[0]["changes"] == ["reachable"] and down[0]["worse"] is True
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert len(_changes(ev)) == 3  # no event while nothing changed
    lines = out.decode().splitlines()
    assert len(lines) == 3 and "+ETCD-ANON-READ-V3" in lines[0] and "(worse)" in lines[0] and "DOWN" in lines[2]
    # the same events are in the database
    import sqlite3

    with sqlite3.connect(db) as conn:
        stored = conn.execute("select count(*) from monitor_events where eventid = ? and target = ?",
                              (CHANGED, target)).fetchone()[0]
    assert stored == 3


def test_once_exit_codes_and_history_across_restarts(tmp_path: Path) -> None:
    db, ev = tmp_path / "m.db", tmp_path / "ev.jsonl"
    args = ("--db", str(db), "--events", str(ev))
    with EtcdServer(EtcdConfig(version="3.5")) as etcd:
        enable_v3_auth(etcd)
        first = once(etcd.client_addr, *args, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert "not exposed" in first.stdout.decode() and _changes(ev) == []
        again = once(etcd.client_addr, *args, cwd=tmp_path)
        assert again.returncode == 0 and _changes(ev) == []  # nothing changed: no event

        etcdctl(etcd, "--user", "root:rootpw", "auth", "disable")  # while no monitor runs
        worse = once(etcd.client_addr, *args, cwd=tmp_path)
        assert worse.returncode == 4, worse.stderr
        assert "worse:" in worse.stdout.decode()
        [e] = _changes(ev)
        assert "ETCD-ANON-READ-V3" in e["added"] and e["before"]["exposed"] is False

        etcdctl(etcd, "auth", "enable")
        better = once(etcd.client_addr, *args, cwd=tmp_path)
        assert better.returncode == 0 and _changes(ev)[-1]["removed"] == e["added"]

        etcdctl(etcd, "--user", "root:rootpw", "auth", "disable")
        # a running monitor stopped by --duration: exit 0, and the change is in its first observation
        proc = monitor(etcd.client_addr, "--every", "0.3s", "--duration", "2s", *args, cwd=tmp_path)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert len(_changes(ev)) == 3 and "ETCD-ANON-READ-V3" in _changes(ev)[-1]["added"]
        target = etcd.client_addr
    # --down-after counts misses across --once runs: the first miss is no alert, the second is
    miss = once(target, "--down-after", "2", *args, cwd=tmp_path)
    assert miss.returncode == 0 and len(_changes(ev)) == 3
    assert "unreachable" in miss.stdout.decode()
    down = once(target, "--down-after", "2", *args, cwd=tmp_path)
    assert down.returncode == 4 and _changes(ev)[-1]["after"]["reachable"] is False
    still = once(target, "--down-after", "2", *args, cwd=tmp_path)  # still down: no new event, no miss count
    assert still.returncode == 0 and len(_changes(ev)) == 4 and "miss" not in still.stdout.decode()


def test_certificate_within_cert_warn(tmp_path: Path) -> None:
    db, ev = tmp_path / "m.db", tmp_path / "ev.jsonl"
    with EtcdServer(EtcdConfig(version="3.5", tls=True)) as etcd:  # the test CA issues 30-day certificates
        url = etcd.client_url
        assert once(url, "--cert-warn", "10", "--db", str(db), "--events", str(ev), cwd=tmp_path).returncode == 0
        near = once(url, "--cert-warn", "60", "--db", str(db), "--events", str(ev), cwd=tmp_path)
    assert near.returncode == 4, near.stdout
    [e] = _changes(ev)
    assert e["changes"] == ["cert_expiring"] and e["after"]["cert_expiring"] is True and e["after"]["cert_not_after"]


def test_from_scan_watches_the_scans_etcd_endpoints(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "scan.db"
    with EtcdServer(EtcdConfig(version="3.4")) as etcd:
        scan = subprocess.run([sys.executable, "-m", "etcdsec", "scan", etcd.ip, "-p", "2379,2380", "--db", str(db)],
                              capture_output=True, timeout=120, cwd=tmp_path)
        assert scan.returncode == 0, scan.stderr
        out = once("--from-scan", "1", "--db", str(db), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert any(line.startswith(f"{etcd.ip}:2379 exposed") for line in lines), lines
    assert "2 targets" in out.stderr.decode()  # the client and the peer port: both are etcd


def test_postgresql_by_url(tmp_path: Path, pg_url: str) -> None:
    with EtcdServer(EtcdConfig(version="3.5")) as etcd:
        assert once(etcd.client_addr, "--db", pg_url, cwd=tmp_path).returncode == 0
        enable_v3_auth(etcd)
        better = once(etcd.client_addr, "--db", pg_url, "--events", str(tmp_path / "e.jsonl"), cwd=tmp_path)
    assert better.returncode == 0
    [e] = _changes(tmp_path / "e.jsonl")
    assert "ETCD-ANON-READ-V3" in e["removed"]


@pytest.mark.parametrize("args, message", [
    (["nope:xx"], "bad target"),
    (["127.0.0.1:2379", "--every", "soon"], "--every: expected a duration"),
    (["127.0.0.1:2379", "--every", "0s"], "--every"),
    (["127.0.0.1:2379", "--duration", "-5s"], "--duration"),
    (["127.0.0.1:2379", "--down-after", "0"], "--down-after"),
    (["127.0.0.1:2379", "--cert-warn", "-1"], "--cert-warn"),
    (["127.0.0.1:2379", "--db", "/no/such/dir/m.db"], "does not exist"),
    (["127.0.0.1:2379", "--events", "/no/such/dir/e.jsonl"], "does not exist"),
    (["127.0.0.1:2379", "--alert-on", "honeytoken.used"], "unknown event id"),
    (["127.0.0.1:2379", "--metrics-listen", "0.0.0.0:9"], "loopback"),
    (["127.0.0.1:2379", "--alertmanager", "ftp://x"], "http"),
    (["-f", "/no/such/targets.txt"], "cannot read"),
    (["--from-scan", "7", "--db", "missing.db"], "no database"),
    ([], "no targets"),
])
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = once(*args, cwd=tmp_path)
    err = out.stderr.decode()
    assert out.returncode in (2, 3), err
    assert err.startswith("etcdsec: error: ") and message in err and err.count("\n") == 1, err


def test_a_target_that_cannot_be_probed_is_an_observation(tmp_path: Path) -> None:
    targets = tmp_path / "targets.txt"
    targets.write_text("# comment\n127.0.0.1:1\nhttp://127.0.0.1:9\n")
    out = once("-f", str(targets), "--db", str(tmp_path / "m.db"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().count("unreachable") == 2


def test_a_database_that_is_gone_is_one_line_and_exit_3(tmp_path: Path, pg_server) -> None:
    out = once("127.0.0.1:1", "--db", pg_server.url("no_such_database"), cwd=tmp_path)
    err = out.stderr.decode()
    assert out.returncode == 3 and err.startswith("etcdsec: error: ") and err.count("\n") == 1, err


def test_a_database_that_goes_away_while_running_stops_it_with_exit_3(tmp_path: Path, pg_server) -> None:
    url = pg_server.new_database()
    name = url.rsplit("/", 1)[1]
    proc = monitor("127.0.0.1:1", "--every", "0.2s", "--db", url, cwd=tmp_path)
    try:
        assert wait_for(lambda: proc.stderr is not None and proc.stderr.readline())  # the start line
        pg_server.execute(f"DROP DATABASE {name} WITH (FORCE)")
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.decode()
    assert proc.returncode == 3, text
    assert text.startswith("etcdsec: error: database error while writing observations") and text.count("\n") == 1


def test_hostile_text_from_a_server_is_escaped_in_lines() -> None:
    import datetime as dt

    from etcdsec.monitor.drift import TargetState, step
    from etcdsec.monitor.exposure import change_line, state_line
    from etcdsec.monitor.observation import Observation

    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    state = TargetState()
    step(state, Observation("t", now, True, False, "none", (), version="3.5.1"), 2)
    evil = Observation("t", now, True, False, "none", (), version="3.5.1\x1b[2J\x07")
    change = step(state, evil, 2).change
    assert change is not None
    line = change_line(change)
    assert "\x1b" not in line and "\x07" not in line and "\\x1b[2J" in line
    down = Observation("t", now, False, False, "none", (), error="bad\x1b]0;owned\x07" + "x" * 1000)
    text = state_line(down)
    assert "\x1b" not in text and len(text) < 300


def test_sighup_reopens_the_event_file(tmp_path: Path) -> None:
    ev = tmp_path / "ev.jsonl"
    proc = monitor("127.0.0.1:1", "--every", "0.3s", "--db", str(tmp_path / "m.db"), "--events", str(ev),
                   cwd=tmp_path)
    try:
        assert proc.stderr is not None and proc.stderr.readline()  # started, the file is open
        ev.rename(tmp_path / "ev.jsonl.1")  # what logrotate does
        proc.send_signal(signal.SIGHUP)
        assert wait_for(ev.exists)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0

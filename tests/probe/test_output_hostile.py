"""Output an attacker writes into: a fake etcd on loopback whose member name, client URL and flags hold
terminal escapes (clear screen, OSC window title), forged lines and spreadsheet formulas.

Human formats show every control character as an escape; JSON keeps the exact string; CSV cells
that a spreadsheet would run start with a single quote (OWASP)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from etcdsec.output import csv_cell, visible
from etcdsec.testbed.addresses import free_loopback_ip
from tests.probe.forgers import HEADER, STATUS, VERSION_35, forger

CLEAR, TITLE, FORGED = "\x1b[2J", "\x1b]0;owned\x07", "\r\nFORGED  [critical] ETCD-ANON-READ-V3"
NAME = "=HYPERLINK(\"http://evil.example\")" + CLEAR + TITLE + FORGED + "\u202e"
URL = "http://127.0.0.1:2379/" + CLEAR + "\n[link=http://evil.example]x[/link]"
FLAG = "--name=" + TITLE + "\x9b2J"  # a C1 CSI too
MEMBERS = {"members": [{"ID": "12051723177237743377", "name": NAME, "peerURLs": ["http://127.0.0.1:2380"],
                        "clientURLs": [URL]}]}
RAW = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


def json_body(doc: dict) -> bytes:
    return b"{" + HEADER + b"," + json.dumps(doc).encode()[1:]


@pytest.fixture(scope="module")
def evil(fakes) -> str:
    ip = free_loopback_ip((2379,))
    fakes.start(forger({
        "GET /version": (200, [], VERSION_35),
        "POST /v3/maintenance/status": (200, [], STATUS),
        "POST /v3/cluster/member/list": (200, [], json_body(MEMBERS)),
        "POST /v3/auth/status": (200, [], b"{" + HEADER + b"}"),
        "POST /v3/kv/range": (200, [], b"{" + HEADER + b',"count":"0"}'),
        "GET /debug/vars": (200, [], json.dumps({"cmdline": ["etcd", FLAG]}).encode()),
    }, (404, [], b"404 page not found\n")), ip)
    return f"{ip}:2379"


def etcdsec(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI's output exactly as written (no newline translation: a lone CR must show)."""
    proc = subprocess.run([sys.executable, "-m", "etcdsec", *args], capture_output=True, timeout=120,
                          env={**os.environ, "COLUMNS": "250"})  # wide enough that no cell is cut
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def test_visible_and_csv_cell() -> None:
    assert visible(CLEAR + TITLE + "\r\n\t\x7f\x9b\u202e\u200b") == \
        "\\x1b[2J\\x1b]0;owned\\x07\\r\\n\\t\\x7f\\x9b\\u202e\\u200b"
    assert visible("kube-master-1 é") == "kube-master-1 é"
    assert visible("ab\x1bcdef", 3) == "ab\\x1b ... (4 more characters)" and visible("abc", 3) == "abc"
    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "ok", -1, None)] == \
        ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "ok", -1, None]


def test_probe_table_shows_controls_and_json_keeps_them(evil) -> None:
    table = etcdsec("probe", evil, "--no-peer")
    assert table.returncode == 6, table.stdout + table.stderr  # a perfect forgery of an open etcd
    out = table.stdout
    assert not any(ch in out for ch in RAW), repr(out)
    assert "\\x1b[2J\\x1b]0;owned\\x07\\r\\nFORGED" in out  # the member name, on one line, escapes shown
    assert "\\x9b2J" in out and "[link=http://evil.example]" in out  # C1 shown; markup printed, not run
    assert "\nFORGED" not in out

    doc = json.loads(etcdsec("probe", evil, "--no-peer", "--format", "json").stdout)[0]
    assert doc["members"][0]["name"] == NAME and doc["members"][0]["client_urls"] == [URL]
    assert doc["leaks"]["cmdline_flags"] == [FLAG]


def test_probe_csv_neutralises_formulas(evil) -> None:
    out = etcdsec("probe", evil, "--no-peer", "--format", "csv").stdout
    row = next(csv.DictReader(io.StringIO(out, newline='')))
    assert row["members"] == "'" + NAME


def test_report_text_and_csv_of_a_hostile_scan(evil, tmp_path) -> None:
    db = str(tmp_path / "scan.db")
    ip, port = evil.rsplit(":", 1)
    scan = etcdsec("scan", ip, "-p", port, "--db", db, "-q", "--timeout", "6", "--name", "=cmd" + TITLE)
    assert scan.returncode == 0, scan.stdout + scan.stderr
    text = etcdsec("report", "--db", db)
    assert text.returncode == 0, text.stderr
    assert not any(ch in text.stdout for ch in RAW), repr(text.stdout)
    assert "\\x1b[2J" in text.stdout
    rows = list(csv.reader(io.StringIO(etcdsec("report", "--db", db, "--format", "csv").stdout, newline="")))
    names = [r for r in rows if r[0] == "names"]
    assert names and names[0][1] == "'" + NAME
    assert json.loads(etcdsec("report", "--db", db, "--format", "json").stdout)["names"] == {NAME: 1}
    listed = etcdsec("report", "--db", db, "--list").stdout
    assert "=cmd\\x1b]0;owned\\x07" in listed and not any(ch in listed for ch in RAW), repr(listed)
    exported = etcdsec("report", "--db", db, "--export", "endpoints", "--format", "csv").stdout
    assert next(csv.DictReader(io.StringIO(exported, newline="")))["members"] == "'" + NAME


def test_audit_text_shows_controls(tmp_path) -> None:
    conf = tmp_path / "etcd.conf.yml"
    conf.write_text('listen-client-urls: "http://0.0.0.0:2379/\\e[2J\\e]0;owned\\a"\n')
    out = etcdsec("audit", str(conf)).stdout
    # Go's url.Parse refuses control characters, so etcd would not start: the finding says so, escaped
    assert "ETCD-INVALID-CONFIG" in out and not any(ch in out for ch in RAW), repr(out)
    assert "http://0.0.0.0:2379/\\x1b[2J\\x1b]0;owned\\x07" in out


def test_report_of_hostile_honeypot_clients(tmp_path) -> None:
    import socket

    from etcdsec.honeypot.sensor import SensorConfig
    from tests.support.harness import BackgroundSensor

    db = str(tmp_path / "hp.db")
    agent = "=cmd" + CLEAR + TITLE
    with BackgroundSensor(SensorConfig(state_file=None, db=db)) as hp:
        host, port = hp.url.split("//")[1].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nUser-Agent: " + agent.encode() + b"\r\n\r\n")
            # Go refuses control bytes in a header value, and so does the sensor; it logs the request anyway
            assert s.recv(100).startswith(b"HTTP/1.1 400 Bad Request: invalid header value")
    text = etcdsec("report", "--db", db).stdout
    assert "=cmd\\x1b[2J\\x1b]0;owned\\x07" in text and not any(ch in text for ch in RAW), repr(text)
    doc = json.loads(etcdsec("report", "--db", db, "--format", "json").stdout)
    assert doc["honeypot"]["clients"]["user_agents"] == [{"value": agent, "count": 1}]


def test_a_huge_member_name_is_cut_on_the_terminal_and_kept_in_json(fakes) -> None:
    ip = free_loopback_ip((2379,))
    huge = "k" * 300_000 + CLEAR
    members = {"members": [{"ID": "12051723177237743377", "name": huge, "peerURLs": ["http://127.0.0.1:2380"]}]}
    fakes.start(forger({
        "GET /version": (200, [], VERSION_35),
        "POST /v3/maintenance/status": (200, [], STATUS),
        "POST /v3/cluster/member/list": (200, [], json_body(members)),
    }, (404, [], b"404 page not found\n")), ip)
    table = etcdsec("probe", f"{ip}:2379", "--no-peer").stdout
    # rich wraps the evidence line at the console width: join the words back to find the count
    assert "more characters)" in " ".join(table.split()) and len(table) < 20_000 and "\x1b" not in table
    doc = json.loads(etcdsec("probe", f"{ip}:2379", "--no-peer", "--format", "json").stdout)[0]
    assert doc["members"][0]["name"] == huge


def test_audit_text_cuts_a_long_value(tmp_path) -> None:
    conf = tmp_path / "etcd.conf.yml"
    conf.write_text('listen-client-urls: "http://0.0.0.0:2379/' + "x" * 50_000 + '"\n')
    out = etcdsec("audit", str(conf)).stdout
    assert "ETCD-LISTEN-EXPOSED" in out and "more characters" in out and len(out) < 60_000

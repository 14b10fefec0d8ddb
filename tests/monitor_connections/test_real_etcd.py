"""`monitor connections` against real etcd 3.4 and 3.5: baseline clients raise nothing, new sources raise
one card each (millisecond and held connections, client and peer port), repeats only count."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from etcdsec.testbed.addresses import free_loopback_ip
from tests.monitor_connections.conftest import curl_version, get_version, source_ips
from tests.support.waiting import wait_for

CARD_FIELDS = {"src_ip", "src_port", "dst_ip", "dst_port", "role", "first_seen", "last_seen", "count", "org",
               "exposure", "severity", "reasons", "actions"}


def scenario(etcd, monitor, tmp_path: Path, source: str, extra_new: int = 0, extra: tuple[str, ...] = ()
             ) -> tuple[dict, list[str], object]:
    """Learn two baseline clients, then four (+extra) new sources; returns the cards by source address."""
    known, new = source_ips(2), source_ips(4 + extra_new)
    asn = tmp_path / "asn.tsv"
    asn.write_text(f"{new[0]}\t{new[0]}\t64500\tZZ\tExample Org\n")
    run = monitor("--watch", etcd.client_addr, "--watch", f"{etcd.ip}:2380", "--source", source,
                  "--learn", "3s", "--duration", "60s", "--asn-db", str(asn), "--db", str(tmp_path / "mon.db"),
                  "--update-every", "0.5s", *extra)
    first = run.wait_for("source ")
    assert f"source {source}," in first
    # baseline: one client on the client port (twice, one of them curl), one on both ports
    get_version(known[0], etcd.ip, 2379)
    curl_version(known[0], etcd.ip, 2379)
    get_version(known[1], etcd.ip, 2379)
    get_version(known[1], etcd.ip, 2380)
    run.wait_for("learned:")
    assert run.read_events() == []
    # known sources after learning: nothing
    get_version(known[0], etcd.ip, 2379)
    get_version(known[1], etcd.ip, 2380)
    curl_version(new[0], etcd.ip, 2379)  # a millisecond
    held = [get_version(new[1], etcd.ip, 2379, hold=True)]
    get_version(new[2], etcd.ip, 2380)
    held.append(get_version(new[3], etcd.ip, 2380, hold=True))
    curl_version(new[0], etcd.ip, 2379)  # the same source again: counted, no second event
    cards = run.wait_events("etcdsec.monitor.connection.anomalous", 4 + extra_new)
    return {e["card"]["src_ip"]: e["card"] for e in cards}, new, (run, held, known)


def check_cards(cards: dict, new: list[str], etcd, known: list[str]) -> None:
    assert set(new[:4]) <= set(cards) and not set(known) & set(cards)
    for ip in new[:4]:
        card = cards[ip]
        assert set(card) >= CARD_FIELDS
        assert card["dst_ip"] == etcd.ip and card["exposure"]["exposed"] is True
        assert card["exposure"]["severity"] == "critical" and card["baseline"]["new"][0] == "address"
        assert card["actions"] and card["reasons"]
    for ip in new[:2]:
        assert cards[ip]["dst_port"] == 2379 and cards[ip]["role"] == "client" and cards[ip]["severity"] == "high"
    for ip in new[2:4]:
        assert cards[ip]["dst_port"] == 2380 and cards[ip]["role"] == "peer" and cards[ip]["severity"] == "critical"
        assert any("member list" in a for a in cards[ip]["actions"])
    assert cards[new[0]]["org"] == "Example Org" and cards[new[0]]["asn"] == "AS64500"
    assert cards[new[1]]["org"] is None
    # the held connections' client is this test process, and the card names it
    for ip in (new[1], new[3]):
        assert cards[ip]["pid"] == os.getpid(), cards[ip]
    # (other tests' closed connections may linger in TIME_WAIT and be learnt too: at least ours are known)
    assert cards[new[1]]["baseline"]["known_sources"] >= 2


def finish(run, held) -> list[dict]:
    updated = run.wait_events("etcdsec.monitor.connection.updated", 1)
    assert run.stop() == 0
    for sock in held:
        sock.close()
    return updated


def test_packet_source_misses_nothing(etcd, monitor, tmp_path: Path) -> None:
    cards, new, (run, held, known) = scenario(etcd, monitor, tmp_path, "packet", extra_new=1)
    # a connection gone in well under a millisecond, closed with RST: no socket is left for a poll to find
    assert new[4] not in cards
    reset_src = new[4]
    get_version(reset_src, etcd.ip, 2379, reset=True)
    cards = {e["card"]["src_ip"]: e["card"] for e in run.wait_events("etcdsec.monitor.connection.anomalous", 5)}
    check_cards(cards, new, etcd, known)
    assert cards[reset_src]["count"] == 1
    updated = finish(run, held)
    assert [u["card"]["count"] for u in updated if u["src_ip"] == new[0]] == [2]
    assert len(run.read_events("etcdsec.monitor.connection.anomalous")) == 5
    assert "0 SYN(s) dropped" in run.lines[-1]


def test_sockdiag_source_polls_the_socket_table(etcd, monitor, receiver, tmp_path: Path) -> None:
    metrics = f"{free_loopback_ip((9100,))}:9100"
    cards, new, (run, held, known) = scenario(etcd, monitor, tmp_path, "sockdiag", extra=(
        "--alert-webhook", receiver.url + "/hook", "--alertmanager", receiver.url, "--metrics-listen", metrics))
    check_cards(cards, new, etcd, known)
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert "etcdsec_monitor_anomalous_sources 4" in text.splitlines()
    hooks = wait_for(lambda: receiver.posted("/hook") if len(receiver.posted("/hook")) >= 4 else None)
    assert {h["event"]["card"]["src_ip"] for h in hooks} == set(new[:4])  # the webhook carries the whole card
    alerts = wait_for(lambda: [a for body in receiver.posted("/api/v2/alerts") for a in body])
    assert {a["labels"]["src_ip"] for a in alerts} <= set(new[:4]) and alerts
    assert {a["labels"]["alertname"] for a in alerts} == {"EtcdsecMonitorConnectionAnomalous"}
    updated = finish(run, held)
    assert [u["card"]["count"] for u in updated if u["src_ip"] == new[0]] == [2]
    assert len(run.read_events("etcdsec.monitor.connection.anomalous")) == 4
    assert "misses connections shorter than 100 ms" in run.lines[0]


@pytest.mark.parametrize("etcd", ["3.5"], indirect=True)
def test_restart_keeps_the_baseline(etcd, monitor, tmp_path: Path) -> None:
    """A baseline learnt once is stored in --db and exported; a restart without --learn uses it."""
    known, new = source_ips(1), source_ips(1)
    db, export = tmp_path / "mon.db", tmp_path / "baseline.json"
    first = monitor("--watch", etcd.client_addr, "--learn", "2s", "--duration", "60s", "--db", str(db),
                    "--baseline-export", str(export), events="first.jsonl")
    first.wait_for("source ")
    get_version(known[0], etcd.ip, 2379)
    first.wait_for("learned: ")
    assert first.stop() == 0 and export.exists()
    for args in (["--db", str(db), "--learn", "30s"], ["--baseline-import", str(export)],
                 ["--allow", f"{known[0]}/32"]):
        again = monitor("--watch", etcd.client_addr, "--duration", "60s", *args, events=f"{args[0]}.jsonl")
        line = again.wait_for("source ")
        assert "known source(s)" in line and (" 0 known" not in line or args[0] == "--allow"), line
        assert ("--learn skipped" in line) == (args[0] == "--db"), line  # a restart does not relearn
        get_version(known[0], etcd.ip, 2379)
        get_version(new[0], etcd.ip, 2379)
        cards = again.wait_events("etcdsec.monitor.connection.anomalous", 1)
        assert again.stop() == 0
        assert [c["src_ip"] for c in cards] == [new[0]]


@pytest.mark.parametrize("etcd", ["3.5"], indirect=True)
def test_default_watch_is_every_local_listener_on_etcd_ports(etcd, monitor) -> None:
    run = monitor("--duration", "1s", "--source", "sockdiag")
    line = run.wait_for("source ")
    assert f"{etcd.ip}:2379 (client)" in line and f"{etcd.ip}:2380 (peer)" in line
    assert run.proc.wait(60) == 0  # --duration: a clean exit of its own
    run.wait_for("stopped: ")


@pytest.mark.parametrize("etcd", ["3.5"], indirect=True)
def test_database_gone_mid_run_is_one_line_and_exit_3(etcd, monitor) -> None:
    from tests.support.postgres import PostgresServer

    pg = PostgresServer().start()
    try:
        run = monitor("--watch", etcd.client_addr, "--learn", "3s", "--duration", "60s", "--db", pg.url())
        run.wait_for("source ")
    finally:
        pg.stop()  # before learning ends: saving the baseline fails
    code = run.proc.wait(60)
    stderr = run.proc.stderr.read()
    assert code == 3 and "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    assert "database error while saving the baseline" in stderr

"""The sans-IO core: SYN filter parser and sock_diag parser on hostile bytes, baseline files, card rules,
the tracker's decisions, and the command's one-line errors."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdsec.monitor.connections import diagwire
from etcdsec.monitor.connections.baseline import FORMAT, Baseline, BaselineError
from etcdsec.monitor.connections.bpf import parse_syn, syn_filter
from etcdsec.monitor.connections.card import render_text
from etcdsec.monitor.connections.model import Connection, Endpoint, Process
from etcdsec.monitor.connections.tracker import Tracker
from etcdsec.testbed.addresses import free_loopback_ip

CLIENT = Endpoint("10.0.0.5", 2379, "client")
PEER = Endpoint("10.0.0.5", 2380, "peer")


def tcp_v4(src: str, dst: str, sport: int, dport: int, flags: int, options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 0, 0, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return ip + options + struct.pack("!HHIIBBHHH", sport, dport, 1234, 0, 0x50, flags, 0, 0, 0)


def test_parse_syn_reads_v4_with_options_and_v6_and_refuses_the_rest() -> None:
    assert parse_syn(tcp_v4("1.2.3.4", "10.0.0.5", 5555, 2379, 0x02, b"\x01" * 8)) == (
        "1.2.3.4", 5555, "10.0.0.5", 2379, 1234)
    assert parse_syn(tcp_v4("1.2.3.4", "10.0.0.5", 5555, 2379, 0x12)) is None  # SYN-ACK: an answer
    v6 = struct.pack("!IHBB16s16s", 0x60000000, 20, 6, 64, ipaddress.IPv6Address("2001:db8::1").packed,
                     ipaddress.IPv6Address("2001:db8::5").packed)
    v6 += struct.pack("!HHIIBBHHH", 4000, 2380, 7, 0, 0x50, 0x02, 0, 0, 0)
    assert parse_syn(v6) == ("2001:db8::1", 4000, "2001:db8::5", 2380, 7)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_parse_syn_never_raises(data: bytes) -> None:
    result = parse_syn(data)
    assert result is None or 0 <= result[1] < 65536


def test_syn_filter_is_a_valid_program() -> None:
    prog = syn_filter([2379, 2380, 4001])
    assert prog[-1] == (0x06, 0, 0, 0) and all(0 <= jt < 256 and 0 <= jf < 256 for _, jt, jf, _ in prog)
    with pytest.raises(ValueError):
        syn_filter([])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 3))
def test_diag_parser_never_raises_nor_loops(data: bytes, seq: int) -> None:
    rows, _done = diagwire.parse(data, seq)
    assert len(rows) <= len(data) // 16


def test_diag_parser_reads_a_message() -> None:
    body = struct.pack("=BBBB", socket.AF_INET, 1, 0, 0) + struct.pack("!HH", 2379, 40000)
    body += socket.inet_aton("10.0.0.5") + bytes(12) + socket.inet_aton("1.2.3.4") + bytes(12)
    body += struct.pack("=IIIIIIII", 0, 0, 0, 0, 0, 0, 1000, 4242)
    msg = struct.pack("=IHHII", 16 + len(body), diagwire.SOCK_DIAG_BY_FAMILY, 2, 9, 0) + body
    done = struct.pack("=IHHII", 20, diagwire.NLMSG_DONE, 2, 9, 0) + bytes(4)
    rows, finished = diagwire.parse(msg + done, 9)
    assert finished and rows == [diagwire.Row("10.0.0.5", 2379, "1.2.3.4", 40000, 1, 1000, 4242)]
    assert diagwire.parse(msg, 9, frozenset({80}))[0] == []


def conn(src: str, port: int = 2379, t: float = 100.0, process: Process | None = None) -> Connection:
    return Connection(src, 40000, "10.0.0.5", port, t, process)


def exposure(exposed: bool | None, severity: str | None, cert: bool = False) -> dict:
    return {"exposed": exposed, "severity": severity, "findings": ["ETCD-ANON-READ-V3"] if exposed else [],
            "client_cert_required": cert}


def tracker(baseline: Baseline, exp: dict, learn_until: float = 50.0) -> Tracker:
    return Tracker(baseline, [CLIENT, PEER], learn_until, exposure_of=lambda e: dict(exp),
                   org_of=lambda ip: ("AS64500", "Example") if ip.startswith("8.") else None, own_pid=1)


def test_tracker_learns_then_raises_one_card_per_source_and_counts_the_rest() -> None:
    t = tracker(Baseline(), exposure(True, "critical"))
    assert t.observe(conn("10.0.0.7", t=10)).kind == "learned"
    assert t.observe(conn("10.0.0.7", t=60)).kind == "known"
    first = t.observe(conn("10.0.0.9", t=61))
    assert first.kind == "anomalous" and first.card is not None
    assert t.observe(conn("10.0.0.9", t=62)).kind == "counted" and first.card["count"] == 2
    assert first.card["baseline"]["nearest_known"] == ["10.0.0.7"] and first.card["baseline"]["new"] == ["address"]
    assert t.observe(conn("10.0.0.9", port=2380, t=63)).kind == "anomalous"  # another endpoint: its own card
    assert t.observe(Connection("10.0.0.9", 1, "10.0.0.6", 2379, 64)).kind == "ignored"
    ours = Process(1, "etcdsec", "root")
    assert t.observe(conn("10.0.0.11", t=65, process=ours)).kind == "ours"


@pytest.mark.parametrize(("role_port", "exp", "src", "severity"), [
    (2379, exposure(True, "critical"), "10.0.0.9", "high"),
    (2380, exposure(True, "critical"), "10.0.0.9", "critical"),
    (2380, exposure(False, "none"), "10.0.0.9", "high"),
    (2379, exposure(False, "none", cert=True), "10.0.0.9", "low"),
    (2379, exposure(True, "critical"), "8.8.8.8", "critical"),
    (2379, exposure(None, None), "10.0.0.9", "medium"),
])
def test_card_severity_follows_the_rules(role_port: int, exp: dict, src: str, severity: str) -> None:
    card = tracker(Baseline(), exp, learn_until=0).observe(conn(src, role_port)).card
    assert card is not None and card["severity"] == severity, card["reasons"]
    assert len(card["reasons"]) >= 1 and card["actions"]
    if src == "8.8.8.8":
        assert card["org"] == "Example" and any("iptables -I INPUT -p tcp -s 8.8.8.8 --dport 2379" in a
                                                for a in card["actions"])


def test_card_text_shows_hostile_names_inert() -> None:
    evil = Process(9, "x\x1b]0;pwned\x07", "root")
    card = tracker(Baseline(), exposure(False, "none"), learn_until=0).observe(conn("127.0.0.9", process=evil)).card
    text = render_text(card)
    assert "\x1b" not in text and "\\x1b" in text


def test_baseline_file_round_trip_and_hostile_documents() -> None:
    b = Baseline([ipaddress.ip_network("192.168.0.0/16")])
    b.learn(conn("10.0.0.7", process=Process(5, "kube-apiserver", "root")), CLIENT)
    doc = json.loads(json.dumps(b.to_doc()))
    again = Baseline()
    assert again.merge_doc(doc) == 1 and again.known("10.0.0.7", 2379) and again.known("192.168.3.3", 2380)
    assert again.entries[("10.0.0.7", 2379)].processes == ["kube-apiserver (root)"]
    for bad in ([], {"format": "x"}, {"format": FORMAT, "entries": {}}, {"format": FORMAT, "entries": [1]},
                {"format": FORMAT, "entries": [{"src_ip": "nope", "port": 1}]},
                {"format": FORMAT, "entries": [{"src_ip": "1.2.3.4", "port": 70000}]},
                {"format": FORMAT, "entries": [], "allow": ["10.0.0.0/33"]}):
        with pytest.raises(BaselineError):
            Baseline().merge_doc(bad)


@pytest.mark.parametrize(("args", "message"), [
    (["--watch", "nohost"], "--watch"),
    (["--watch", "127.0.0.1:2379=leader"], "role must be client or peer"),
    (["--watch", "127.0.0.1:2379", "--learn", "soon"], "--learn"),
    (["--watch", "127.0.0.1:2379", "--allow", "10.0.0.0/33"], "--allow"),
    (["--watch", "127.0.0.1:2379", "--baseline-import", "/nonexistent/b.json"], "--baseline-import"),
    (["--watch", "127.0.0.1:2379", "--db", "/nonexistent/dir/m.db"], "database directory does not exist"),
])
def test_bad_input_is_one_line_and_exit_2_or_3(args: list[str], message: str, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "etcdsec", "monitor", "connections", *args, "--duration", "1s"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode in (2, 3) and message in out.stderr, out
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_unreadable_baseline_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "b.json"
    bad.write_text('{"format": "etcdsec.monitor.connections.baseline/1", "entries": [{"src_ip": "x"}]}')
    out = subprocess.run([sys.executable, "-m", "etcdsec", "monitor", "connections", "--watch", "127.0.0.1:2379",
                          "--baseline-import", str(bad), "--duration", "1s"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "entry 1" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("v6", [False, True])
def test_kernel_filter_keeps_only_the_watched_endpoint(v6: bool) -> None:
    """The inet_diag bytecode, run by the real kernel: exact address, wildcard, and a miss."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    host = "::1" if v6 else free_loopback_ip(())
    with socket.socket(family) as srv:
        srv.bind((host, 0))
        srv.listen(8)
        port = srv.getsockname()[1]
        with socket.create_connection((host, port), timeout=5) as client:
            local = client.getsockname()[:2]
            with diagwire.DiagSocket() as diag:
                def dump(endpoints: list[tuple[str, int]]) -> list[diagwire.Row]:
                    return diag.dump(family, 0xFFF & ~(1 << 10), bytecode=diagwire.endpoint_filter(endpoints))

                def ours(rows: list[diagwire.Row]) -> set[tuple[str, int]]:
                    return {(r.local_ip, r.local_port) for r in rows} & {local, (host, port)}

                exact = dump([(host, port)])
                assert ours(exact) == {local, (host, port)}  # the client's socket and the accepted one
                # (other processes' sockets may match too, but only with an end at the endpoint)
                assert all((host, port) in ((r.local_ip, r.local_port), (r.remote_ip, r.remote_port)) for r in exact)
                # a wildcard asks for accepted sockets only (a remote-end wildcard would take this
                # host's clients of other hosts' etcd for visitors)
                wild = dump([("::" if v6 else "0.0.0.0", port)])
                assert ours(wild) == {(host, port)} and all(r.local_port == port for r in wild)
                other = port + 1 if port < 65535 else port - 1
                assert ours(dump([(host, other)])) == set()


def test_emitted_ids_are_registered_and_documented() -> None:
    from etcdsec.events.ids import REGISTRY
    from etcdsec.monitor.connections.runner import ANOMALOUS, UPDATED

    doc = (Path(__file__).resolve().parents[2] / "docs" / "monitor.md").read_text()
    for eventid in (ANOMALOUS, UPDATED):
        assert eventid in REGISTRY and f"| `{eventid}` |" in doc
        assert {"src_ip", "card"} <= set(REGISTRY[eventid].fields)


def test_reverse_dns_reads_the_hosts_file_for_loopback() -> None:
    from etcdsec.commands.monitor_connections import reverse_dns

    names = {line.split()[1] for line in Path("/etc/hosts").read_text().splitlines()
             if line.strip() and not line.startswith("#") and line.split()[0] == "127.0.0.1" and len(line.split()) > 1}
    assert not names or reverse_dns("127.0.0.1") in names

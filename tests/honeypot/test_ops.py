"""Operating the sensor: its own metrics port, TLS on the decoy port, SIGHUP reopen from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.pki import TestCA
from tests.support.harness import BackgroundSensor


def test_metrics_port_counts_what_happened() -> None:
    ip = free_loopback_ip((2379, 2380, 9108))
    with BackgroundSensor(SensorConfig(state_file=None, metrics_listen=(ip, 9108)), ip=ip) as hp:
        for _ in range(3):
            urllib.request.urlopen(f"{hp.url}/version", timeout=5).read()
        text = urllib.request.urlopen(f"http://{ip}:9108/metrics", timeout=5).read().decode()
        assert 'etcdsec_honeypot_events_total{eventid="etcdsec.http.request"} 3' in text
        assert "etcdsec_honeypot_sessions_total 3" in text and "# TYPE etcdsec_honeypot_sessions_active gauge" in text
        # the decoy port does not expose them
        assert "etcdsec_honeypot" not in urllib.request.urlopen(f"{hp.url}/metrics", timeout=5).read().decode()


def test_tls_on_the_same_port_with_curl(tmp_path) -> None:
    ip = free_loopback_ip((2379, 2380))
    ca = TestCA(tmp_path)
    cert = ca.issue("server", ips=[ip])
    config = SensorConfig(state_file=None, tls_cert=cert.cert, tls_key=cert.key)
    with BackgroundSensor(config, ip=ip) as hp:
        out = subprocess.run(["curl", "-s", "--http1.1", "--cacert", str(ca.cert_path), f"https://{ip}:2379/version"],
                             capture_output=True, timeout=10)
        assert json.loads(out.stdout) == {"etcdserver": "3.5.1", "etcdcluster": "3.5.0"}
        plain = urllib.request.urlopen(f"http://{ip}:2379/health", timeout=5).read()  # plain still served
        assert b'"health":"true"' in plain
        handshakes = hp.memory.of("tls.handshake")
        assert handshakes and handshakes[0]["alpn"] == "http/1.1"
        request = next(e for e in hp.memory.of("http.request") if e["path"] == "/version")
        assert request["tls"] is True


def test_ipv6_loopback_listener() -> None:
    with BackgroundSensor(SensorConfig(state_file=None), ip="::1", port=0) as hp:
        out = subprocess.run(["curl", "-s", "-g", f"{hp.url}/version"], capture_output=True, timeout=10)
        assert json.loads(out.stdout)["etcdserver"] == "3.5.1"
        event = hp.memory.of("http.request")[-1]
        assert event["src_ip"] == "::1" and event["dst_port"] == hp.port


def test_http_handlers_for_h2_streams_match_go_h2_framing() -> None:
    """The client routes' h2_request (handed to the gRPC connection for non-gRPC streams over TLS +
    ALPN h2) answers as etcd 3.5.1 did to
    `curl --http2 https://.../version`: same header names in the same order, same body."""
    from etcdsec.honeypot.context import Session

    with BackgroundSensor(SensorConfig(state_file=None)) as hp:
        h2_request = hp.sensor.client_app.h2_request
        session = Session.new("127.0.0.1", 5000, hp.ip, 2379, tls=True)
        status, headers, body = hp.call(h2_request(session, "GET", "/version", [(b"user-agent", b"curl/8")], b""))
        assert status == 200 and body == b'{"etcdserver":"3.5.1","etcdcluster":"3.5.0"}'
        assert [k for k, _ in headers] == [b"access-control-allow-headers", b"access-control-allow-methods",
                                           b"access-control-allow-origin", b"content-type", b"content-length",
                                           b"date"]
        event = hp.memory.of("http.request")[-1]
        assert event["http_version"] == "2" and event["tls"] is True and event["user_agent"] == "curl/8"
        status, _, body = hp.call(h2_request(session, "GET", "/nope", [], b""))
        assert status == 404 and body == b"404 page not found\n"


def _server_side_timer(ip: str, client_port: int) -> tuple[int, int]:
    """(timer kind, ticks left) of the sensor's end of one connection, from /proc/net/tcp."""
    want_local = "".join(f"{int(part):02X}" for part in reversed(ip.split("."))) + ":094B"  # :2379
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == want_local and int(fields[2].split(":")[1], 16) == client_port and fields[3] == "01":
            kind, left = fields[5].split(":")
            return int(kind, 16), int(left, 16)
    raise AssertionError("connection not found")


def test_accepted_connections_get_go_style_tcp_keepalive() -> None:
    """A client that vanishes without a FIN is found (and a watch held for it ends): keepalive 15 s."""
    import socket
    import time

    with BackgroundSensor(SensorConfig(state_file=None)) as hp, \
            socket.create_connection((hp.ip, 2379), timeout=5) as sock:
        sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(0.2)
        kind, left = _server_side_timer(hp.ip, sock.getsockname()[1])
        assert kind == 2 and 0 < left <= 15 * os.sysconf("SC_CLK_TCK")  # keepalive timer, at most 15 s away


def test_metrics_print_large_counters_whole() -> None:
    from etcdsec.honeypot.sensor_metrics import render

    text = render({"events": {"etcdsec.http.request": 12_345_678}, "sessions": 1_000_001}).decode()
    assert 'etcdsec_honeypot_events_total{eventid="etcdsec.http.request"} 12345678' in text
    assert "etcdsec_honeypot_sessions_total 1000001" in text

"""HTTP/2 over TLS without gRPC (`curl --http2 https://...`): etcd's Go server answers with its HTTP
routes, so the sensor must too; a reset stream here would give the honeypot away."""

from __future__ import annotations

import subprocess

from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from etcdsec.testbed.pki import TestCA
from tests.support.harness import BackgroundSensor


def curl_h2(url: str, *extra: str) -> tuple[str, list[str], bytes]:
    out = subprocess.run(["curl", "-s", "-k", "--http2", "-D", "-", "-o", "-", *extra, url], capture_output=True,
                         timeout=20).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    names = [ln.split(":", 1)[0].lower() for ln in lines[1:] if ln and ln.split(":", 1)[0].lower() != "date"]
    return lines[0].strip(), names, body


def test_plain_http_over_h2_matches_real_etcd(tmp_path) -> None:
    ip = free_loopback_ip((2379, 2380))
    cert = TestCA(tmp_path).issue("server", ips=[ip])
    requests = [("/version",), ("/health",), ("/no/such/path",),
                ("/v3/kv/range", "-X", "POST", "-H", "Content-Type: application/json", "-d", '{"key":"AA=="}')]
    with EtcdServer(EtcdConfig(version="3.5", tls=True)) as real:
        want = [curl_h2(real.client_url + r[0], *r[1:]) for r in requests]
    with BackgroundSensor(SensorConfig(state_file=None, tls_cert=cert.cert, tls_key=cert.key), ip=ip) as hp:
        got = [curl_h2(f"https://{ip}:2379" + r[0], *r[1:]) for r in requests]
        assert any(e["http_version"] == "2" for e in hp.memory.of("http.request"))
    for (w_status, w_names, _w_body), (g_status, g_names, _g_body) in zip(want, got, strict=True):
        assert g_status == w_status and g_status.startswith("HTTP/2")
        assert g_names == w_names
    assert got[0][2] == want[0][2] and got[2][2] == want[2][2] == b"404 page not found\n"


def test_tls_http1_takes_the_fast_path_and_hands_odd_requests_over(tmp_path) -> None:
    """Over TLS with ALPN http/1.1 the fast path answers pipelined requests; an odd one still gets
    Go's answer from the careful path; tls.handshake is logged before the first request."""
    import socket
    import ssl

    ip = free_loopback_ip((2379, 2380))
    cert = TestCA(tmp_path).issue("server", ips=[ip])
    with BackgroundSensor(SensorConfig(state_file=None, tls_cert=cert.cert, tls_key=cert.key), ip=ip) as hp:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        with socket.create_connection((ip, 2379), timeout=5) as raw, ctx.wrap_socket(raw) as sock:
            simple = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
            sock.sendall(simple * 2 + b"GET /version HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            out = b""
            while out.count(b"HTTP/1.1 ") < 3:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
        answers = out.split(b"HTTP/1.1 ")[1:]
        assert [a[:3] for a in answers] == [b"200", b"200", b"400"]
        session = hp.memory.of("tls.handshake")[-1]["session"]
        mine = [e for e in hp.memory.events if e.get("session") == session]
        kinds = [e["eventid"] for e in mine]
        assert kinds.index("etcdsec.tls.handshake") < kinds.index("etcdsec.http.request")
        assert all(e.get("tls") is True for e in mine if e["eventid"] == "etcdsec.http.request")
        assert sum(1 for k in kinds if k == "etcdsec.http.request") == 2

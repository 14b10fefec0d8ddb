"""The HTTP/1.1 surface answers byte for byte as Go's net/http in etcd does (checked with curl and raw sockets)."""

from __future__ import annotations

import json
import re
import subprocess

from tests.honeypot.conftest import raw_exchange


def curl(*args: str) -> str:
    out = subprocess.run(["curl", "-s", "-i", "--max-time", "5", *args], capture_output=True, timeout=10)
    return out.stdout.decode()


def header_names(resp: str) -> list[str]:
    head = resp.split("\r\n\r\n", 1)[0]
    return [line.split(":", 1)[0] for line in head.split("\r\n")[1:]]


def test_version_with_cors_and_go_header_order(hp35) -> None:
    resp = curl(f"{hp35.url}/version")
    assert resp.startswith("HTTP/1.1 200 OK\r\n")
    assert header_names(resp) == ["Access-Control-Allow-Headers", "Access-Control-Allow-Methods",
                                  "Access-Control-Allow-Origin", "Content-Type", "Date", "Content-Length"]
    assert resp.endswith('\r\n\r\n{"etcdserver":"3.5.1","etcdcluster":"3.5.0"}')


def test_health_has_sniffed_content_type_last(hp35) -> None:
    resp = curl(f"{hp35.url}/health")
    assert header_names(resp)[-3:] == ["Date", "Content-Length", "Content-Type"]
    assert resp.endswith('{"health":"true","reason":""}')


def test_unknown_path_and_wrong_method_use_go_texts(hp35) -> None:
    resp = curl(f"{hp35.url}/nothing-here")
    assert resp.startswith("HTTP/1.1 404 Not Found") and resp.endswith("\r\n\r\n404 page not found\n")
    assert "X-Content-Type-Options: nosniff" in resp
    resp = curl("-X", "POST", f"{hp35.url}/version")
    assert resp.startswith("HTTP/1.1 405 Method Not Allowed") and "Allow: GET\r\n" in resp
    assert resp.endswith("Method Not Allowed\n")


def test_head_gets_headers_and_length_but_no_body(hp35) -> None:
    raw = raw_exchange(hp35.ip, 2379, b"HEAD /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert b"Content-Length: 19\r\n" in raw and raw.endswith(b"\r\n\r\n")


def test_missing_host_is_rejected_exactly_like_go(hp35) -> None:
    raw = raw_exchange(hp35.ip, 2379, b"GET /version HTTP/1.1\r\n\r\n")
    assert raw == (b"HTTP/1.1 400 Bad Request: missing required Host header\r\n"
                   b"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
                   b"400 Bad Request: missing required Host header")
    assert any(e.get("reason") == "missing Host header" for e in hp35.memory.of("malformed"))


def test_http10_status_line_and_keepalive(hp35) -> None:
    raw = raw_exchange(hp35.ip, 2379, b"GET /version HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.0 200 OK\r\n") and raw.endswith(b'"etcdcluster":"3.5.0"}')
    two = raw_exchange(hp35.ip, 2379, b"GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /version HTTP/1.1\r\nHost: a\r\n"
                                      b"Connection: close\r\n\r\n")
    assert two.count(b"HTTP/1.1 200 OK") == 2


def test_garbage_is_dropped_silently_and_logged_raw(hp35) -> None:
    before = len(hp35.memory.of("malformed"))
    assert raw_exchange(hp35.ip, 2379, b"\x00\x01GARBAGE\r\n\r\n") == b""
    event = hp35.memory.of("malformed")[before]
    assert event["raw_b64"] and event["raw_len"] == 13 and event["src_ip"] == "127.0.0.1"


def test_bad_header_gets_go_400(hp35) -> None:
    raw = raw_exchange(hp35.ip, 2379, b"GET /version HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_unclean_path_redirects_like_servemux(hp35) -> None:
    resp = curl(f"{hp35.url}//version")
    assert resp.startswith("HTTP/1.1 301 Moved Permanently") and "Location: /version\r\n" in resp


def test_options_answers_cors_preflight(hp35) -> None:
    resp = curl("-X", "OPTIONS", f"{hp35.url}/v2/keys/foo")
    assert resp.startswith("HTTP/1.1 200 OK") and "Access-Control-Allow-Origin: *" in resp
    assert "Content-Length: 0" in resp


def test_v2_is_off_for_3_5(hp35) -> None:
    assert curl(f"{hp35.url}/v2/keys/").endswith("404 page not found\n")


def test_metrics_and_debug_vars_look_real(hp35) -> None:
    resp = curl(f"{hp35.url}/metrics")
    assert "Content-Type: text/plain; version=0.0.4; charset=utf-8" in resp
    assert 'etcd_server_version{server_version="3.5.1"} 1' in resp
    body = curl(f"{hp35.url}/debug/vars").split("\r\n\r\n", 1)[1]
    assert "Transfer-Encoding: chunked" not in body
    assert json.loads(body)["raft.status"]["raftState"] == "StateLeader"


def test_peer_port_members_and_probing(hp35) -> None:
    resp = curl(f"http://{hp35.ip}:2380/members")
    members = json.loads(resp.split("\r\n\r\n", 1)[1])
    assert members[0]["name"] == "kube-master-1" and members[0]["id"] == hp35.sensor.identity.member_id
    probing = curl(f"http://{hp35.ip}:2380/raft/probing")
    assert re.search(r'\{"OK":true,"Now":"\d{4}-\d\d-\d\dT[\d:.]+Z"\}\n$', probing)
    assert "Access-Control" not in probing


def test_every_request_is_one_event_with_cowrie_fields(hp35) -> None:
    curl("-A", "probe-agent/1.0", "-X", "PUT", "-d", "value=x", f"{hp35.url}/some/where?q=1")
    event = next(e for e in reversed(hp35.memory.of("http.request")) if e["path"] == "/some/where?q=1")
    for name in ("timestamp", "eventid", "src_ip", "src_port", "dst_ip", "dst_port", "session", "sensor"):
        assert name in event
    assert event["method"] == "PUT" and event["status"] == 404 and event["user_agent"] == "probe-agent/1.0"
    assert event["body"] == "value=x" and event["dst_port"] == 2379
    sessions = {e["session"] for e in hp35.memory.of("session.connect")}
    assert event["session"] in sessions


def test_old_personas_have_their_own_surface(tmp_path) -> None:
    from etcdsec.honeypot.sensor import SensorConfig
    from tests.support.harness import BackgroundSensor

    with BackgroundSensor(SensorConfig(persona="2.3.8", state_file=None)) as hp:
        assert curl(f"{hp.url}/version").endswith('{"etcdserver":"2.3.8","etcdcluster":"2.3.0"}')
        health = curl(f"{hp.url}/health")
        assert health.endswith('{"health": "true"}') and "Access-Control" not in health  # no --cors default
        assert '"action":"get"' in curl(f"{hp.url}/v2/keys/")
        assert curl("-X", "POST", "-d", "{}", f"{hp.url}/v3/kv/range").endswith("404 page not found\n")
    with BackgroundSensor(SensorConfig(persona="3.2.22", state_file=None)) as hp:
        assert curl("-X", "POST", "-d", '{"key":"Zm9v"}', f"{hp.url}/v3alpha/kv/range").startswith("HTTP/1.1 200")
        assert curl("-X", "POST", "-d", '{"key":"Zm9v"}', f"{hp.url}/v3/kv/range").startswith("HTTP/1.1 404")

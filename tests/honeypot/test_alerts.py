"""Alerts reach a real webhook receiver and a real syslog socket (both on loopback), rate limited per source."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from etcdsec.events.alerts import AlertOutput
from etcdsec.honeypot.sensor import SensorConfig
from tests.support.harness import BackgroundSensor


class _Receiver(BaseHTTPRequestHandler):
    got: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.got.append({"ctype": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_token_reuse_alerts_by_webhook_and_syslog_once_per_budget() -> None:
    _Receiver.got = []
    web = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    syslog = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    syslog.bind(("127.0.0.1", 0))
    syslog.settimeout(5)
    config = SensorConfig(persona="3.3.27", state_file=None, alert_rate=2,
                          alert_webhook=f"http://127.0.0.1:{web.server_address[1]}/hook",
                          alert_syslog=("127.0.0.1", syslog.getsockname()[1]))
    try:
        with BackgroundSensor(config) as hp:
            raw = urllib.request.urlopen(f"{hp.url}/v2/keys/registry/secrets/prod/regcred", timeout=5).read()
            secret = json.loads(json.loads(raw)["node"]["value"])
            cfg = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
            password = cfg["auths"]["registry.internal.example"]["password"]
            for _ in range(5):  # five uses from one source, budget two a minute
                urllib.request.urlopen(urllib.request.Request(f"{hp.url}/version?pw={password}"), timeout=5).read()
            assert wait_for(lambda: len(_Receiver.got) == 2)
            time.sleep(0.2)
            assert len(_Receiver.got) == 2 and hp.sensor.alerts.suppressed == 3
        alert = _Receiver.got[0]
        assert alert["ctype"] == "application/json" and alert["body"]["alert"] == "etcdsec.honeytoken.used"
        assert alert["body"]["event"]["token"] == "registry-password:prod/regcred"
        line = syslog.recv(65536).decode()
        assert "etcdsec-honeypot: " in line and "registry-password:prod/regcred" in line
    finally:
        web.shutdown()
        syslog.close()


def test_rate_limit_window_slides_and_sources_are_separate() -> None:
    now = [0.0]
    out = AlertOutput(["honeytoken.used"], per_source_per_minute=1, clock=lambda: now[0])
    try:
        event = {"eventid": "etcdsec.honeytoken.used", "src_ip": "198.51.100.7"}
        assert out.limiter.allow("a", now[0]) and not out.limiter.allow("a", now[0]) and out.limiter.allow("b", now[0])
        now[0] = 61.0
        assert out.limiter.allow("a", now[0])
        out({"eventid": "etcdsec.http.request", "src_ip": "x"})  # not an alert event: ignored
        assert out.suppressed == 0
        del event
    finally:
        out.close()

"""Alerts reach a real Alertmanager (labels, re-sent while active, resolved when the verdict returns)
and the metrics port shows each target's state, while `monitor exposure` watches a real etcd."""

from __future__ import annotations

import signal
import socket
import urllib.request
from pathlib import Path

from etcdsec.events.alertmanager import Alert, AlertBook
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.support.etcd_admin import enable_v3_auth
from tests.support.waiting import wait_for

from .alertmanager import Alertmanager
from .conftest import monitor


def _named(am: Alertmanager, name: str) -> list[dict]:
    return [a for a in am.alerts() if a["labels"].get("alertname") == name]


def _metrics(addr: tuple[str, int]) -> str:
    try:
        return urllib.request.urlopen(f"http://{addr[0]}:{addr[1]}/metrics", timeout=5).read().decode()
    except OSError:
        return ""


def test_alertmanager_and_metrics_follow_the_verdict(tmp_path: Path) -> None:
    am = Alertmanager()
    try:
        with EtcdServer(EtcdConfig(version="3.5")) as etcd:
            target = etcd.client_addr
            with socket.socket() as s:
                s.bind((etcd.ip, 0))
                mport = s.getsockname()[1]
            proc = monitor(target, "--every", "0.3s", "--db", str(tmp_path / "m.db"), "--alertmanager", am.url,
                           "--alertmanager-resend", "1s", "--metrics-listen", f"{etcd.ip}:{mport}", cwd=tmp_path)
            try:
                [exposed] = wait_for(lambda: _named(am, "EtcdExposed"))
                assert exposed["labels"]["target"] == target and exposed["labels"]["severity"] == "critical"
                assert "ETCD-ANON-READ-V3" in exposed["annotations"]["findings"]
                first_end = exposed["endsAt"]
                # re-sent while active: Alertmanager's endsAt moves forward
                assert wait_for(lambda: [a for a in _named(am, "EtcdExposed") if a["endsAt"] > first_end])
                text = wait_for(lambda: _metrics((etcd.ip, mport)))
                assert f'etcdsec_monitor_target_exposed{{target="{target}"}} 1' in text
                assert f'etcdsec_monitor_target_severity{{target="{target}"}} 5' in text
                assert "etcdsec_monitor_observations_total" in text

                enable_v3_auth(etcd)  # the verdict returns to not exposed: the alert resolves itself
                assert wait_for(lambda: not _named(am, "EtcdExposed"))
                assert wait_for(lambda: f'etcdsec_monitor_target_exposed{{target="{target}"}} 0'
                                in _metrics((etcd.ip, mport)))

                etcd.stop()
                [down] = wait_for(lambda: _named(am, "EtcdUnreachable"))
                assert down["labels"]["target"] == target
            finally:
                proc.send_signal(signal.SIGTERM)
                _out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
    finally:
        am.stop()


def test_book_rate_limits_a_flapping_alert_and_never_holds_a_resolution() -> None:
    now = [0.0]
    book = AlertBook(resend_s=60, per_alert_per_minute=1, clock=lambda: now[0])
    alert = Alert({"alertname": "EtcdExposed", "target": "t"})
    book.set_group("t", [alert])
    fps, items = book.due()
    assert len(items) == 1 and items[0]["endsAt"] > items[0]["startsAt"]
    active_end = items[0]["endsAt"]  # four re-sends ahead
    book.sent(fps, True)
    book.set_group("t", [])  # resolved: always sent, with endsAt now
    fps, items = book.due()
    assert len(items) == 1 and items[0]["labels"] == alert.labels and items[0]["endsAt"] < active_end
    book.sent(fps, True)
    assert book.entries == {}
    book.set_group("t", [alert])  # fires again within the minute: held back
    assert book.due()[1] == [] and book.suppressed == 1
    book.set_group("t", [])  # and resolved before it was ever sent: nothing to tell Alertmanager
    assert book.due()[1] == [] and book.entries == {}
    now[0] = 61.0
    book.set_group("t", [alert])
    assert len(book.due()[1]) == 1


def test_book_resends_active_alerts_and_retries_failed_posts() -> None:
    now = [0.0]
    book = AlertBook(resend_s=10, clock=lambda: now[0])
    book.set_group("t", [Alert({"alertname": "EtcdUnreachable", "target": "t"})])
    fps, _ = book.due()
    book.sent(fps, False)  # Alertmanager was down
    fps, items = book.due()
    assert len(items) == 1
    book.sent(fps, True)
    assert book.due()[1] == []
    now[0] = 10.0
    assert len(book.due()[1]) == 1


def test_webhook_gets_the_whole_change_event(tmp_path: Path) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from .conftest import once

    got: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with EtcdServer(EtcdConfig(version="3.4")) as etcd:
        web = ThreadingHTTPServer((etcd.ip, 0), Receiver)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        hook = f"http://{etcd.ip}:{web.server_address[1]}/hook"
        db = str(tmp_path / "m.db")
        try:
            assert once(etcd.client_addr, "--db", db, "--alert-webhook", hook, cwd=tmp_path).returncode == 0
            assert got == []  # a baseline is no change
            enable_v3_auth(etcd)
            assert once(etcd.client_addr, "--db", db, "--alert-webhook", hook, cwd=tmp_path).returncode == 0
        finally:
            web.shutdown()
    [alert] = got
    assert alert["alert"] == "etcdsec.monitor.exposure.changed"
    event = alert["event"]
    assert event["target"] == etcd.client_addr and "ETCD-ANON-READ-V3" in event["removed"]
    assert event["before"]["exposed"] is True and event["after"]["exposed"] is False

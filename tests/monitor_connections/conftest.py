"""Real etcd 3.4 and 3.5 on loopback, and a `monitor connections` process driven as a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

COMMAND = [sys.executable, "-m", "etcdsec", "monitor", "connections"]


@pytest.fixture(params=["3.4", "3.5"])
def etcd(request: pytest.FixtureRequest, etcd_factory: Callable[..., EtcdServer]) -> EtcdServer:
    return etcd_factory(f"monitor-connections-{request.param}", EtcdConfig(version=request.param, name="watched"))


def source_ips(n: int) -> list[str]:
    """`n` free loopback addresses in one /24 (so a card can say which known neighbours are nearest)."""
    base = free_loopback_ip(()).rsplit(".", 1)[0]
    return [f"{base}.{10 + i}" for i in range(n)]


class MonitorRun:
    """`python -m etcdsec.commands.monitor_connections ...` in the background; its lines are collected."""

    def __init__(self, args: list[str], events: Path) -> None:
        self.events = events
        self.proc = subprocess.Popen([*COMMAND, *args, "--events", str(events)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        stderr = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        raise AssertionError(f"no line with {text!r}; got {self.lines!r} {stderr[-2000:]}")

    def wait_events(self, eventid: str, n: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.read_events(eventid)) >= n:
                break
            time.sleep(0.05)
        return self.read_events(eventid)

    def read_events(self, eventid: str | None = None) -> list[dict]:
        if not self.events.exists():
            return []
        events = [json.loads(line) for line in self.events.read_text().splitlines() if line.strip()]
        return [e for e in events if eventid is None or e["eventid"] == eventid]

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def monitor(tmp_path: Path):
    runs: list[MonitorRun] = []

    def start(*args: str, events: str = "events.jsonl") -> MonitorRun:
        run = MonitorRun(list(args), tmp_path / events)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.kill()


def get_version(src: str, ip: str, port: int, hold: bool = False, reset: bool = False) -> socket.socket:
    """One HTTP GET /version from `src` (bound); closed at once unless `hold`; `reset` closes with RST."""
    sock = socket.create_connection((ip, port), timeout=5, source_address=(src, 0))
    sock.sendall(f"GET /version HTTP/1.1\r\nHost: {ip}:{port}\r\n\r\n".encode())
    assert b"etcdserver" in sock.recv(4096) or port != 2379
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    if not hold:
        sock.close()
    return sock


def curl_version(src: str, ip: str, port: int) -> None:
    """A millisecond-long connection, as a real client makes it."""
    out = subprocess.run(["curl", "-s", "--max-time", "5", "--interface", src, f"http://{ip}:{port}/version"],
                         capture_output=True, text=True, timeout=10)
    assert "etcd" in out.stdout, out


class Receiver:
    """A real HTTP server on loopback that keeps every JSON body POSTed to it (webhook, Alertmanager v2)."""

    def __init__(self) -> None:
        bodies: list[tuple[str, object]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length", "0")), 1 << 20)
                bodies.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.bodies = bodies
        self.server = ThreadingHTTPServer((free_loopback_ip((8080,)), 8080), Handler)
        self.url = f"http://{self.server.server_address[0]}:8080"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posted(self, path: str) -> list[object]:
        return [body for p, body in self.bodies if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()

"""Honeypot fixtures: real sensors on free loopback addresses, one per module where possible."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator

import pytest

from etcdsec.honeypot.sensor import SensorConfig
from tests.support.harness import BackgroundSensor


def raw_exchange(ip: str, port: int, data: bytes, timeout: float = 2.0) -> bytes:
    """Send raw bytes, read until the server closes or goes quiet."""
    with socket.create_connection((ip, port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        sock.settimeout(0.3)
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                if out:
                    break
                continue
            if not chunk:
                break
            out += chunk
        return out


@pytest.fixture(scope="module")
def hp35(tmp_path_factory) -> Iterator[BackgroundSensor]:
    state = tmp_path_factory.mktemp("hp35") / "state.json"
    with BackgroundSensor(SensorConfig(persona="3.5.1", state_file=state), peer=True) as hp:
        yield hp


@pytest.fixture(scope="module")
def hp33(tmp_path_factory) -> Iterator[BackgroundSensor]:
    """A v2-enabled persona (3.3 serves the v2 keys API by default)."""
    state = tmp_path_factory.mktemp("hp33") / "state.json"
    with BackgroundSensor(SensorConfig(persona="3.3.27", state_file=state)) as hp:
        yield hp


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def json_post(path: str, body: dict) -> bytes:
    """One HTTP/1.1 POST of a JSON body, as bytes for a raw socket."""
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"\r\n").encode() + data


def read_until(sock: socket.socket, needle: bytes, timeout: float) -> bytes:
    """What arrives on `sock` until `needle` is in it, the peer closes or `timeout` passes."""
    out = b""
    deadline = time.monotonic() + timeout
    while needle not in out and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        out += chunk
    return out

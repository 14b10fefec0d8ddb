"""Honeypot fixtures: real sensors on free loopback addresses, one per module where possible."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from etcdsec.honeypot.harness import BackgroundSensor
from etcdsec.honeypot.sensor import SensorConfig


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

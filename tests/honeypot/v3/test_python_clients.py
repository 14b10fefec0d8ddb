"""PyPI etcd3 (gRPC) and etcd3gw (JSON gateway) see the same thing from the honeypot as from real etcd 3.5.1.

Each client runs one scripted session in a subprocess against both servers; the outputs must match.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

from .conftest import make_ctx
from .harness import V3Sensor

CLIENTS = Path(__file__).parent / "clients"


def run_session(script: str, ip: str, port: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(CLIENTS / script), ip, str(port)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[EtcdServer, V3Sensor]]:
    with EtcdServer(EtcdConfig(version="3.5")) as real:
        ctx, _ = make_ctx("3.5.1")
        with V3Sensor(ctx) as hp:
            yield real, hp


@pytest.mark.parametrize("script", ["etcd3_session.py", "etcd3gw_session.py"])
def test_client_session_matches_real_etcd(servers: tuple[EtcdServer, V3Sensor], script: str) -> None:
    real, hp = servers
    want = run_session(script, real.ip, 2379)
    got = run_session(script, hp.ip, hp.port)
    assert got == want
    assert got["members"] == ["etcd-test"] and got["status_version"] == "3.5.1"

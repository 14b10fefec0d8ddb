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
from tests.support.harness import BackgroundSensor

from .conftest import real_sensor

CLIENTS = Path(__file__).parent / "clients"


def run_session(script: str, ip: str, port: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(CLIENTS / script), ip, str(port)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EtcdServer, BackgroundSensor]]:
    with EtcdServer(EtcdConfig(version="3.5")) as real, \
            real_sensor("3.5.1", [], tmp_path_factory.mktemp("clients")) as hp:
        yield real, hp


@pytest.mark.parametrize("script", ["etcd3_session.py", "etcd3gw_session.py"])
def test_client_session_matches_real_etcd(servers: tuple[EtcdServer, BackgroundSensor], script: str) -> None:
    real, hp = servers
    want = run_session(script, real.ip, 2379)
    got = run_session(script, hp.ip, 2379)
    assert got == want
    assert got["members"] == ["etcd-test"] and got["status_version"] == "3.5.1"

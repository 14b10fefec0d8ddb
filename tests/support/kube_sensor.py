"""A sensor with the Kubernetes bait as one found in the wild, and etcdctl 3.5's view of its keys (test kit)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from etcdsec.honeypot.context import Identity
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.testbed.etcd import etcd_binaries
from tests.support.harness import BackgroundSensor


def ctl(endpoint: str, *args: str, version: str = "3.5") -> tuple[int, bytes]:
    env = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "")}
    out = subprocess.run([str(etcd_binaries(version)[1]), f"--endpoints={endpoint}", "--command-timeout=5s", *args],
                         env=env, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    return out.returncode, out.stdout + out.stderr


def dump(hp: BackgroundSensor, prefix: str) -> tuple[int, dict[str, bytes]]:
    """(header revision, key -> value) as `etcdctl get --prefix -w json` returns them."""
    code, out = ctl(hp.addr, "get", "--prefix", prefix, "-w", "json")
    assert code == 0, out
    doc = json.loads(out)
    return int(doc["header"]["revision"]), {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"])
                                            for kv in doc.get("kvs", [])}


@contextmanager
def grown_sensor(state_dir: Path, ready_prefix: str) -> Iterator[BackgroundSensor]:
    """A 3.5.1 sensor whose member started an hour ago (its state file says so), so its control plane
    has written its leases and events; yields once `ready_prefix` holds keys (at most 10 s: the churn
    task's first tick backfills them)."""
    ident = Identity.create("kube-master-1", [], [])
    ident.start_time -= timedelta(hours=1)
    state = state_dir / "state.json"
    state.write_text(json.dumps(ident.to_dict()))
    with BackgroundSensor(SensorConfig(persona="3.5.1", state_file=state)) as sensor:
        deadline = time.monotonic() + 10
        while not dump(sensor, ready_prefix)[1] and time.monotonic() < deadline:
            time.sleep(0.2)
        yield sensor

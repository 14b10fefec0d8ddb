"""The test bed cleans up after itself: a crashed caller leaves no etcd behind."""

from __future__ import annotations

import os
import subprocess
import sys


def test_etcd_is_stopped_when_its_caller_crashes() -> None:
    code = ("from etcdsec.testbed.etcd import EtcdConfig, EtcdServer\n"
            "s = EtcdServer(EtcdConfig(version='3.5')).start()\n"
            "print(s.proc.pid, flush=True)\n"
            "raise RuntimeError('caller crashed')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "caller crashed" in out.stderr
    pid = int(out.stdout.split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    # The pid may linger only as a zombie of init; it must not be a running etcd.
    with open(f"/proc/{pid}/status") as fh:
        assert "State:\tZ" in fh.read()

"""A real Prometheus Alertmanager (Debian's prometheus-alertmanager) on a free loopback address."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from etcdsec.testbed.addresses import free_loopback_ip

CONFIG = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'


class Alertmanager:
    def __init__(self) -> None:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise FileNotFoundError("apt-get install prometheus-alertmanager (scripts/test.sh does)")
        self.dir = Path(tempfile.mkdtemp(prefix="etcdsec-am-"))
        self.ip = free_loopback_ip(())
        with socket.socket() as s:
            s.bind((self.ip, 0))
            self.port = s.getsockname()[1]
        (self.dir / "am.yml").write_text(CONFIG)
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.dir / 'am.yml'}", f"--storage.path={self.dir / 'data'}",
             f"--web.listen-address={self.ip}:{self.port}", "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "am.log", "wb"))  # noqa: SIM115
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.alerts()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError("alertmanager did not start")

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    def alerts(self) -> list[dict[str, Any]]:
        """The active alerts (resolved ones are not listed)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

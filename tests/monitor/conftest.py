"""Helpers for the monitor tests: run `etcdsec monitor` as a real process, read what it wrote."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def observations(db: Path, target: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("select count(*) from monitor_observations where target = ?", (target,)).fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


def monitor(*args: str, cwd: Path, **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "etcdsec", "monitor", "exposure", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def once(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "etcdsec", "monitor", "exposure", "--once", *args], cwd=cwd,
                          capture_output=True, timeout=60)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path

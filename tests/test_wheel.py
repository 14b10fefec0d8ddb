"""The built wheel ships what users run and none of the test kit (tests/support/ stays in the repo)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Test kit that once lived in the package: none of it may come back into the wheel.
TEST_KIT = ("harness", "fidelity", "corpus", "fakes", "postgres", "pg_server")
# Test-only helpers that once were defined in shipped modules (now tests/support/memory_events.py, etcd_admin.py).
DEV_TOOLS = ("etcdsec/proto/build.py",)  # now scripts/build_proto.py
TEST_ONLY_DEFINITIONS = ("class MemoryEvents", "def enable_v3_auth", "def enable_v2_auth", "def v2_put", "def ctl(")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a clean copy of the sources (no build/ or egg-info left in the worktree)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "project"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"),
                          str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (built,) = (work / "dist").glob("etcdsec-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def test_wheel_ships_the_package_and_what_the_demo_needs(wheel_names: list[str]) -> None:
    for name in ("etcdsec/cli.py", "etcdsec/honeypot/sensor.py", "etcdsec/honeypot/personas/3.5.1.json",
                 "etcdsec/testbed/etcd.py", "etcdsec/testbed/pki.py", "etcdsec/testbed/addresses.py",
                 "etcdsec/tokenbucket.py", "etcdsec/honeypot/core/persona.py"):
        assert name in wheel_names


def test_wheel_holds_no_test_kit(wheel_names: list[str]) -> None:
    leaked = [n for n in wheel_names if any(word in n for word in TEST_KIT) or n.startswith(("tests/", "support/"))]
    assert leaked == []
    assert [n for n in wheel_names if n in DEV_TOOLS] == []


def test_shipped_modules_define_no_test_only_helpers(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        found = [(name, what) for name in zf.namelist() if name.endswith(".py")
                 for what in TEST_ONLY_DEFINITIONS if what in zf.read(name).decode()]
    assert found == []

"""Fixture trees for the audit: copied to a temporary directory with the file modes a real host has.

Git keeps no file modes beyond the executable bit, so the modes are applied here: configuration,
manifests and keys 600, certificates and unit files 644, etcd data directories 700.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
PUBLIC_SUFFIXES = (".crt", ".service", ".pub")


def _public(path: Path) -> bool:
    if path.suffix in PUBLIC_SUFFIXES or (path.suffix == ".pem" and not path.name.endswith("-key.pem")):
        return True
    return path.suffix == ".conf" and path.parent.name.endswith(".service.d")


def materialise(name: str, dest: Path) -> Path:
    """Copy fixture tree `name` under `dest` and give it a real host's modes; returns the tree root."""
    root = dest / name
    if root.exists():
        return root
    shutil.copytree(FIXTURES / name, root, symlinks=True)  # links stay links, as on the host
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            continue  # chmod would follow it, possibly out of the tree
        if path.is_dir():
            rel = path.relative_to(root).as_posix()
            data_dir = rel.startswith("var/lib/") and "etcd" in rel
            path.chmod(0o700 if data_dir else 0o755)
        else:
            path.chmod(0o644 if _public(path) else 0o600)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Callable[[str], Path]:
    return lambda name: materialise(name, tmp_path)

"""`probe -f` of many targets: peak memory must not grow with the number of targets (streaming formats).

Closed ports on loopback answer RST at once, so 20,000 targets take a few seconds. Before streaming,
going from 5,000 to 20,000 targets added ~50 MiB (365 MiB at 100,000); now the difference is noise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.peakrss import run_measured

MIB = 1024 * 1024


def closed_targets(path: Path, count: int) -> Path:
    """`count` loopback addresses on port 1 (tcpmux: nothing listens there), one a line."""
    with path.open("w") as fh:
        for i in range(count):
            fh.write(f"127.{200 + i // 65024}.{i // 254 % 256}.{i % 254 + 1}:1\n")
    return path


def peak_rss(args: list[str]) -> tuple[int, bytes]:
    """Peak resident memory (bytes) of one `etcdsec` run, from the kernel's own accounting (wait4)."""
    run = run_measured([sys.executable, "-m", "etcdsec", *args])
    assert run.returncode == 0, (run.stdout[-500:], run.stderr[-500:])
    return run.peak_bytes, run.stdout


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])  # completion order; target order
def test_memory_is_flat_in_the_number_of_targets(tmp_path: Path, fmt: str) -> None:
    small = closed_targets(tmp_path / "5k.txt", 5_000)
    large = closed_targets(tmp_path / "20k.txt", 20_000)
    rss_small, out_small = peak_rss(["probe", "-f", str(small), "--format", fmt, "--concurrency", "64"])
    rss_large, out_large = peak_rss(["probe", "-f", str(large), "--format", fmt, "--concurrency", "64"])
    if fmt == "jsonl":
        assert out_large.count(b"\n") == 20_000 and b'"error":"connection refused"' in out_large
    assert len(out_large) > 3.5 * len(out_small)  # every target was probed and written
    assert rss_large < 150 * MIB
    # 15,000 more targets: at 8 bytes of bookkeeping each, well under 8 MiB of growth.
    assert rss_large - rss_small < 8 * MIB, (rss_small / MIB, rss_large / MIB)


def test_the_table_is_rendered_in_chunks_that_read_as_one(tmp_path: Path) -> None:
    targets = closed_targets(tmp_path / "1200.txt", 1_200)
    _rss, out = peak_rss(["probe", "-f", str(targets), "--concurrency", "64"])
    lines = out.decode().splitlines()
    rows = [ln for ln in lines if ln.startswith("│ 127.")]
    assert len(rows) == 1_200 and len(lines) == 1_200 + 4  # header (3 lines) and one bottom edge
    assert [ln[0] for ln in lines].count("┏") == 1 and [ln[0] for ln in lines].count("└") == 1
    assert len({len(ln) for ln in lines}) == 1  # the same column widths in every chunk
    # target order is kept
    assert [r.split()[1] for r in rows] == targets.read_text().split()


@pytest.mark.parametrize("bits", [8, 1 << 26])  # 8 bits: nearly every target collides in the bitmap
def test_targets_are_deduplicated_exactly(tmp_path: Path, bits: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from etcdsec.commands.probe import TargetSource

    monkeypatch.setattr(TargetSource, "_BITS", bits)
    path = closed_targets(tmp_path / "t.txt", 300)
    with path.open("a") as fh:
        fh.write(path.read_text())  # every target twice
        fh.write("127.9.9.9\n")  # no port: 2379 and the peer port 2380
    args = argparse.Namespace(targets=["127.200.0.1:1", "127.9.9.9:2380"], file=[str(path)], no_peer=False)
    got = [t.netloc for t in TargetSource(args)]
    want = ["127.200.0.1:1", "127.9.9.9:2380", *path.read_text().split()[1:300], "127.9.9.9:2379"]
    assert got == want

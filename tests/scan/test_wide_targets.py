"""Targets a scan must not take at face value: reversed ranges, and sweeps wider than a /8.

CLI runs that could start a wide sweep (a regression would) run inside an empty network namespace
made for the test (`unshare -n`: no interface but a down loopback), with --max-time as a bound.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from etcdsec.errors import UserError
from etcdsec.scan.exclusions import WIDE_EXCLUDES_FILE, build_exclusions, read_exclude_file, wide_exclusions
from etcdsec.scan.ranges import parse_range
from etcdsec.scan.targets import build_target_set, parse_target, wide_scan_refusal

needs_netns = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                 reason="an empty network namespace needs root and unshare")


def no_dns(name: str) -> list[str]:
    raise AssertionError(f"{name!r} was looked up in DNS")


@pytest.mark.parametrize(("text", "why"), [
    ("127.0.0.9-1", "reversed"),
    ("127.0.0.9-127.0.0.1", "reversed"),
    ("::9-::1", "reversed"),
    ("127.0.0.1-::2", "mixes IPv4 and IPv6"),
    ("127.0.0.1-300", "last octet"),
])
def test_bad_ranges_are_bad_input_not_host_names(text: str, why: str) -> None:
    with pytest.raises(UserError, match=why):
        parse_target(text, resolver=no_dns)


def test_good_ranges_and_host_names_still_parse() -> None:
    assert parse_target("127.0.0.1-9", resolver=no_dns)[0].size == 9
    assert parse_target("etcd-1", resolver=lambda name: ["127.0.0.5"])[0].size == 1


def test_shipped_wide_list_is_the_iana_special_purpose_registry() -> None:
    shipped = read_exclude_file(str(WIDE_EXCLUDES_FILE))
    cidrs = {str(e.range) for e in shipped}
    for must in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "::1",
                 "fc00::/7", "fe80::/10", "224.0.0.0/4"):
        assert str(parse_range(must)) in cidrs, must
    loopback = next(e for e in shipped if str(e.range) == str(parse_range("127.0.0.0/8")))
    assert loopback.reason == "RFC 1122 loopback"


def test_wider_than_a_slash_8_loses_special_purpose_ranges_narrower_keeps_them() -> None:
    always, wide = build_exclusions(), wide_exclusions()
    targets, notes = build_target_set(["0.0.0.0/0", "127.0.0.1"], (2379,), always, wide_exclusions=wide)
    kept = [str(r) for r in targets.ranges]
    assert "127.0.0.1" in kept  # named on its own: kept
    assert not any(r.first <= int(parse_range("10.1.2.3").first) <= r.last for r in targets.ranges)
    assert any("RFC 1918" in reason for n in notes for reason in n.reasons)
    for narrow in ("127.0.0.0/8", "10.0.0.0/8", "192.168.0.0/16"):
        targets, _ = build_target_set([narrow], (2379,), always, wide_exclusions=wide)
        assert targets.address_count == parse_range(narrow).size, narrow
        assert wide_scan_refusal(targets, None, 1000, 2.0) is None


def test_refusal_says_how_many_at_what_rate_for_how_long() -> None:
    targets, _ = build_target_set(["0.0.0.0/0"], (2379, 2380), build_exclusions(), wide_exclusions=wide_exclusions())
    text = wide_scan_refusal(targets, 10_000.0, 1000, 2.0)
    assert text is not None
    assert f"{targets.distinct_addresses():,} addresses" in text
    assert f"{targets.size:,} (address, port) pairs" in text
    assert "10,000 connections/s" in text and "days" in text and "--confirm-wide" in text
    unlimited = wide_scan_refusal(targets, None, 1000, 2.0)
    assert unlimited is not None and "about 500 connections/s" in unlimited


def test_user_file_replaces_the_wide_list(tmp_path: Path) -> None:
    mine = tmp_path / "mine.conf"
    mine.write_text("8.0.0.0/8  # not this one\n")
    targets, notes = build_target_set(["0.0.0.0/6", "8.0.0.0/7"], (2379,), [],
                                      wide_exclusions=wide_exclusions(str(mine)))
    assert targets.address_count == (1 << 26) + (1 << 25) - (1 << 24)
    assert notes[0].reasons == [f"{parse_range('8.0.0.0/8')} (not this one)"]


def etcdsec_offline(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh, empty network namespace: nothing it sends can leave this process's netns."""
    return subprocess.run(["unshare", "-n", sys.executable, "-m", "etcdsec", *args], capture_output=True,
                          text=True, timeout=120)


@needs_netns
def test_cli_refuses_a_wide_scan_without_confirmation(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    done = etcdsec_offline("scan", "0.0.0.0/0", "--db", db, "--rate", "5000", "--max-time", "2", "-q")
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("etcdsec: error: refusing a scan wider than a /8: 3,702,257,664 addresses")
    assert "5,000 connections/s" in line and "--confirm-wide" in line


@needs_netns
def test_cli_runs_a_confirmed_wide_scan_without_special_purpose_ranges(tmp_path: Path) -> None:
    from etcdsec.scan.stored import target_set
    from etcdsec.store.engine import open_engine
    from etcdsec.store.scans import ScanStore

    db = str(tmp_path / "s.db")
    done = etcdsec_offline("scan", "0.0.0.0/0", "--confirm-wide", "--db", db, "--rate", "2000",
                           "--max-time", "1", "--no-probe", "-p", "2379")
    assert done.returncode == 130, done.stderr  # stopped by --max-time, resumable
    store = ScanStore(open_engine(db))
    scan = store.get_scan(store.latest_scan_id())
    assert scan is not None and scan.targets.address_count == 3_702_257_664
    loopback = parse_range("127.0.0.1")
    assert not any(r.first <= loopback.first <= r.last for r in target_set(scan).ranges)


@needs_netns
def test_cli_reversed_range_is_one_line_of_bad_input(tmp_path: Path) -> None:
    done = etcdsec_offline("scan", "127.0.0.9-1", "--db", str(tmp_path / "s.db"), "--max-time", "2")
    assert done.returncode == 2
    assert done.stderr.strip() == ("etcdsec: error: cannot parse target: range '127.0.0.9-1' is reversed: "
                                   "127.0.0.1 comes before 127.0.0.9 (write 127.0.0.1-127.0.0.9)")


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize("option", [["@/dev/zero"], ["127.0.0.1", "--exclude-file", "/dev/zero"],
                                    ["127.0.0.1", "--wide-excludes", "/dev/zero"]])
def test_endless_list_files_are_refused_at_the_bound(tmp_path: Path, option: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "etcdsec", "scan", *option, "--db", str(tmp_path / "s.db"),
                           "-p", "1", "--no-probe"], capture_output=True, text=True, timeout=120,
                          preexec_fn=_limit_memory)
    assert done.returncode == 2, done.stderr[-500:]
    (line,) = done.stderr.strip().splitlines()
    assert line.endswith("/dev/zero: larger than 256 MiB")

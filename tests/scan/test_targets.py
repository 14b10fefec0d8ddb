import io
import sys

import pytest

from etcdsec.errors import UserError
from etcdsec.scan.exclusions import build_exclusions
from etcdsec.scan.ranges import AddrRange, merge, parse_range, subtract
from etcdsec.scan.targets import (
    TargetSet,
    build_target_set,
    gather_target_words,
    parse_ports,
    parse_target,
)


def test_address_forms():
    assert str(parse_range("127.0.0.0/30")) == "127.0.0.0-127.0.0.3"
    assert parse_range("10.0.0.1-9").size == 9
    assert parse_range("10.0.0.9-10.0.1.0").size == 248
    assert parse_range("::1").version == 6
    assert parse_range("fd00::/126").size == 4
    for bad in ("10.0.0.9-1", "10.0.0.1-::2", "10.0.0/33", "hello", "10.0.0.1-300"):
        assert parse_range(bad) is None, bad


def test_merge_and_subtract():
    a = [parse_range("10.0.0.0/24"), parse_range("10.0.1.0/24"), parse_range("10.0.0.5")]
    assert [str(r) for r in merge(a)] == ["10.0.0.0-10.0.1.255"]
    left = subtract(a, [parse_range("10.0.0.128/25"), parse_range("10.0.1.0")])
    assert [str(r) for r in left] == ["10.0.0.0-10.0.0.127", "10.0.1.1-10.0.1.255"]


def test_ports():
    assert parse_ports("2380,2379,2379-2381") == (2379, 2380, 2381)
    for bad in ("", "0", "70000", "a", "5-1"):
        with pytest.raises(UserError):
            parse_ports(bad)


def test_hostnames_resolve_and_garbage_is_a_clear_error():
    assert AddrRange(4, 0x7F000001, 0x7F000001) in parse_target("localhost")
    with pytest.raises(UserError, match="cannot parse target"):
        parse_target("10.0.0.0/40x")
    with pytest.raises(UserError, match="cannot resolve"):
        parse_target("no-such-host.invalid")


def test_default_exclusions_cut_reserved_space_but_keep_loopback_and_private():
    exclusions = build_exclusions()
    targets, notes = build_target_set(
        ["127.0.0.0/24", "10.1.0.0/16", "192.168.0.1", "fd00::1", "::1", "203.0.113.0/24", "192.0.0.0/23"],
        (2379,),
        exclusions,
    )
    assert {str(r) for r in targets.ranges} >= {"127.0.0.0-127.0.0.255", "10.1.0.0-10.1.255.255", "::1"}
    whole = {n.target: n.whole for n in notes}
    assert whole == {"203.0.113.0/24": True, "192.0.0.0/23": False}
    assert "TEST-NET-3" in next(n for n in notes if n.target == "203.0.113.0/24").reasons[0]
    assert targets.address_count == 256 + 65536 + 1 + 1 + 1 + 256  # 192.0.1.0/24 stays


def test_user_exclusions_and_exclude_file(tmp_path):
    f = tmp_path / "skip.txt"
    f.write_text("# ours\n127.0.0.8/29  # lab\n\n127.0.0.100\n")
    exclusions = build_exclusions(["127.0.0.0/30"], [str(f)])
    targets, _ = build_target_set(["127.0.0.0/24"], (2379,), exclusions)
    assert targets.address_count == 256 - 4 - 8 - 1
    f.write_text("not-an-address\n")
    with pytest.raises(UserError, match=r"skip\.txt:1"):
        build_exclusions([], [str(f)])
    with pytest.raises(UserError, match="cannot read exclude file"):
        build_exclusions([], [str(tmp_path / "gone")])


def test_index_maps_every_pair_once_and_pairs_dedupe_against_ranges():
    targets, _ = build_target_set(
        ["127.0.0.0/30", "127.0.1.5"],
        (2379, 2380),
        build_exclusions(),
        pairs=[("127.0.0.1", 2379), ("127.0.0.1", 4001), ("127.0.9.9", 2379), ("127.0.9.9", 2379)],
    )
    assert targets.size == 5 * 2 + 2
    every = [targets.target(i) for i in range(targets.size)]
    assert len(set(every)) == targets.size
    assert ("127.0.1.5", 2380) in every and ("127.0.0.1", 4001) in every and ("127.0.9.9", 2379) in every
    with pytest.raises(IndexError):
        targets.target(targets.size)


def test_json_round_trip_keeps_fingerprint():
    targets, _ = build_target_set(["127.0.0.0/28", "::1"], (2379,), [], pairs=[("10.0.0.1", 4001)],
                                  meta={"10.0.0.1": {"org": "Example"}})
    again = TargetSet.from_json(targets.to_json())
    assert again.fingerprint() == targets.fingerprint()
    assert [again.target(i) for i in range(again.size)] == [targets.target(i) for i in range(targets.size)]
    assert again.meta["10.0.0.1"]["org"] == "Example"


def test_too_large_is_refused():
    with pytest.raises(UserError, match="too many"):
        build_target_set(["fd00::/64"], (2379,), [])


def test_words_from_stdin_and_files(tmp_path, monkeypatch):
    f = tmp_path / "t.txt"
    f.write_text("127.0.0.1, 127.0.0.2 # two\n127.0.0.0/30\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("127.0.0.9\n"))
    assert gather_target_words(["-", "@" + str(f), "::1"]) == [
        "127.0.0.9", "::1", "127.0.0.1", "127.0.0.2", "127.0.0.0/30"]
    with pytest.raises(UserError, match="cannot read targets file"):
        gather_target_words([], [str(tmp_path / "gone")])

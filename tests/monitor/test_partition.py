"""The sans-IO parts of `monitor exposure --workers/--cluster`: how targets are cut into partitions,
and which stored events the command has printed."""

from __future__ import annotations

from etcdsec.monitor.feed import LOOKBACK, EventFeed
from etcdsec.monitor.partition import lease_key, partition_concurrency, partition_of, plan_partitions, split


def test_each_target_in_one_partition_the_same_in_every_run() -> None:
    texts = [f"10.0.{i // 256}.{i % 256}:2379" for i in range(2000)]
    parts = split(texts, texts, 8)
    assert sorted(t for p in parts for t in p) == sorted(texts)  # each once
    assert all(partition_of(t, 8) == k for k, p in enumerate(parts) for t in p)
    assert split(texts, texts, 8) == parts  # stable: a hash of the text, not of the process
    assert min(map(len, parts)) > 150  # and spread: 250 each on average


def test_plan_and_concurrency() -> None:
    assert plan_partitions(10_000, 2) == 8  # 4 per worker thread
    assert plan_partitions(3, 2) == 3  # never more than the targets
    assert plan_partitions(10_000, 2, wanted=100) == 100
    assert plan_partitions(10**6, 10_000) == 4096
    assert partition_concurrency(64, 2, 8) == 16  # 2 processes x 64 over 8 partitions
    assert partition_concurrency(1, 1, 8) == 1


def test_lease_keys_apart_from_scan_shards() -> None:
    keys = {lease_key(run, k) for run in ("run", "other") for k in range(4096)}
    assert len(keys) == 2 * 4096
    assert all(-(1 << 63) <= k < 0 for k in keys)  # a signed bigint, as pg_advisory_lock takes; scan keys are > 0


def test_feed_prints_each_event_once_even_when_it_commits_late() -> None:
    feed = EventFeed(floor=10)
    assert [feed.accept(i) for i in (11, 13)] == [True, True]
    feed.end_poll()
    # id 12 committed after 13 (a PostgreSQL sequence): still above the floor, printed once
    assert [feed.accept(i) for i in (11, 12, 13, 14)] == [False, True, False, True]
    for _ in range(LOOKBACK):
        feed.end_poll()
    assert feed.floor == 14 and feed.seen == set()  # memory bounded: old ids dropped
    assert not feed.accept(12)


def test_change_lines_from_hostile_rows() -> None:
    """With workers the command prints changes read back from the database, which may hold anything:
    a row that is not a change event of ours is skipped, text is escaped, nothing raises."""
    import json

    from etcdsec.commands.monitor_cluster import _change_line

    side = {"reachable": True, "exposed": False, "severity": "high", "findings": ["ETCD-METRICS"], "version": "3.5.1",
            "observed_at": "2026-12-05T09:00:00+00:00"}
    good = {"target": "t:2379", "before": side, "after": {**side, "severity": "crit\x1b[2Jical", "exposed": True},
            "changes": ["severity", "exposed"], "added": ["X-\x07"], "removed": [], "worse": True}
    line = _change_line(json.dumps(good), {"t:2379"})
    assert line is not None and "\x1b" not in line and "\x07" not in line and "\\x1b[2J" in line
    assert _change_line(json.dumps(good), {"other:2379"}) is None  # another monitor's target
    for bad in ("", "[1]", "{", json.dumps({**good, "before": None}), json.dumps({**good, "added": [7]}),
                json.dumps({**good, "target": ["t:2379"]}), json.dumps({**good, "after": {**side, "observed_at": 5}}),
                " " * (2 << 20)):
        assert _change_line(bad, {"t:2379"}) is None

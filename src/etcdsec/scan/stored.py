"""The scan's own types to and from the store's plain values: a target set, one shard's progress.

The store sits a floor below the scan: it keeps a target set as JSON and a shard's resume cursor
as `next_step` and `in_flight`, while the sweep works on a `TargetSet`, a `Shard` and a
`ResumeCursor`. This is the one place that turns the one into the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from etcdsec.scan.cursor import ResumeCursor
from etcdsec.scan.permutation import Shard
from etcdsec.scan.targets import TargetSet
from etcdsec.store.scans import ScanInfo, ScanStore, ShardRow, StoredTargets


def stored_targets(targets: TargetSet) -> StoredTargets:
    """What a new scan stores of its target set."""
    return StoredTargets(targets.to_json(), targets.fingerprint(), targets.ports, targets.size,
                         targets.address_count)


def target_set(scan: ScanInfo) -> TargetSet:
    """A stored scan's target set, rebuilt exactly (no name resolved, no import file read again)."""
    return TargetSet.from_json(scan.targets.json)


@dataclass
class ShardProgress:
    """One shard as the sweep keeps it while it runs: its resume cursor and what it found so far."""

    scan_id: int
    shard: Shard
    steps: int
    cursor: ResumeCursor
    swept: int = 0
    open: int = 0
    etcd: int = 0
    exposed: int = 0
    runs: int = 1
    finished: bool = False

    @property
    def done(self) -> int:
        """Steps done (the progress bar's figure, as `Totals.done` is for a whole distributed scan)."""
        return self.cursor.done_count

    def row(self) -> ShardRow:
        """The progress as it is now, as the store saves it (a copy: the sweep goes on changing it)."""
        return ShardRow(
            scan_id=self.scan_id, shard_index=self.shard.index, shard_count=self.shard.count, steps=self.steps,
            next_step=self.cursor.next_step, in_flight=frozenset(self.cursor.in_flight), swept=self.swept,
            open=self.open, etcd=self.etcd, exposed=self.exposed, runs=self.runs, finished=self.finished,
        )


def open_shard(store: ScanStore, scan: ScanInfo, shard: Shard, steps: int) -> ShardProgress:
    """The shard's progress: fresh, or where an earlier, interrupted run of it stopped."""
    row = store.open_shard(scan.id, shard.index, shard.count, steps)
    return ShardProgress(
        scan_id=row.scan_id, shard=shard, steps=row.steps, cursor=ResumeCursor(row.next_step, set(row.in_flight)),
        swept=row.swept, open=row.open, etcd=row.etcd, exposed=row.exposed, runs=row.runs, finished=row.finished,
    )

"""The child of tests/store/test_shared_writers.py: one process writing its shard of a scan store.

A spawned process imports its target by module name, so the target lives here, in an importable module
(`tests.support.…`; the parent's sys.path, with the repo root on it, goes to the child), not in the test
module, which pytest imports under a name of its own.
"""

from __future__ import annotations

from typing import Any

from etcdsec.model import ProbeResult
from etcdsec.scan.permutation import Shard
from etcdsec.scan.stored import open_shard
from etcdsec.store.scans import EndpointRow, ScanStore
from etcdsec.store.shared import open_shared_engine

BATCHES, ROWS = 12, 50


def row(shard: int, n: int) -> EndpointRow:
    """Result number `n` of shard `shard`: an address of its own, so every row lands once."""
    ip = f"10.{shard}.{n // 250}.{n % 250 + 1}"
    return EndpointRow(ProbeResult(target=f"{ip}:2379", ip=ip, port=2379, reachable=True, severity="none"))


def write_shard(db: str, scan_id: int, shard_count: int, shard_index: int, barrier: Any) -> None:
    """Open shard `shard_index`, wait for every writer, then write BATCHES batches of ROWS results with the
    cursor, as a shard task does, and finish the shard."""
    store = ScanStore(open_shared_engine(db, busy_timeout=60))
    scan = store.get_scan(scan_id)
    prog = open_shard(store, scan, Shard(shard_index, shard_count), steps=BATCHES * ROWS)
    barrier.wait(60)
    for b in range(BATCHES):
        rows = []
        for n in range(ROWS):
            step = b * ROWS + n
            prog.cursor.launch(step)
            prog.cursor.finish(step)
            prog.swept += 1
            prog.open += 1
            rows.append(row(shard_index, step))
        store.write_batch(prog.row(), rows)
    store.finish_shard(prog.row())

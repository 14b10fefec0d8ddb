"""Every open port the sweep counts is in the store when it ends, even when its batch writes queue up
behind a busy thread pool (a loaded machine, several scan processes writing one database)."""

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from etcdsec.scan.exclusions import build_exclusions
from etcdsec.scan.permutation import Permutation, Shard
from etcdsec.scan.stored import open_shard, stored_targets
from etcdsec.scan.sweep import SweepConfig, Sweeper
from etcdsec.scan.targets import build_target_set
from etcdsec.store.engine import open_engine
from etcdsec.store.scans import ScanStore
from etcdsec.store.schema import endpoints

from .helpers import CountingListeners

PORT = 23798


def test_queued_batch_writes_are_never_dropped(tmp_path):
    second, third = random.randrange(20, 100), random.randrange(0, 256)
    addresses = sorted({(f"127.{second}.{third}.{random.randrange(1, 255)}", PORT) for _ in range(120)})
    store = ScanStore(open_engine(str(tmp_path / "s.db")))
    store.ensure_schema()
    targets = build_target_set([f"127.{second}.{third}.0/24"], (PORT,), build_exclusions())[0]
    scan = store.create_or_join(name=None, args={}, targets=stored_targets(targets), seed=3, shard_count=1, options={})
    perm = Permutation(targets.size, scan.seed)
    prog = open_shard(store, scan, Shard(0, 1), perm.steps(Shard(0, 1)))
    # Tiny batches, written by one pool thread that is often busy: writes wait in its queue when the
    # sweep ends, which is when the flushing tasks are cancelled.
    config = SweepConfig(flush_size=3, flush_interval=0.01)

    async def sweep():
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
        return await Sweeper(targets, perm, prog, store, config, None).run()

    with CountingListeners(addresses):
        stats = asyncio.run(sweep())
    with store.engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(endpoints)).scalar()
    assert stats.open == len(addresses) and stats.swept == 256
    assert stored == len(addresses)

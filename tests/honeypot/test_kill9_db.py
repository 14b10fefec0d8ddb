"""`kill -9` of `etcdsec honeypot --db` in the middle of a request flood (issue 17): the database keeps
up with the sensor (batched inserts, a queue of two batches with back-pressure), so it lacks at most
the queue and the batch in flight. Before, events piled up in memory: this flood lost 22,000-33,000
of 77,000-83,000 from the database."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from etcdsec.events.store import BATCH
from etcdsec.testbed.addresses import free_loopback_ip

FLOOD_S = 8.0
PIPELINED = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n" * 500  # one write: cheap for this client, 500 events


async def flood(ip: str, seconds: float) -> None:
    """Pipelined requests from 8 addresses as fast as the sensor takes them; answers read and dropped."""
    stop = time.monotonic() + seconds

    async def one(i: int) -> None:
        reader, writer = await asyncio.open_connection(ip, 2379, local_addr=(f"127.96.0.{i + 1}", 0))

        async def discard() -> None:
            while await reader.read(1 << 20):
                pass

        answers = asyncio.create_task(discard())
        try:
            while time.monotonic() < stop:
                writer.write(PIPELINED)
                await writer.drain()
        except OSError:
            pass  # killed
        finally:
            answers.cancel()
            writer.close()

    await asyncio.gather(*(one(i) for i in range(8)), return_exceptions=True)


def test_kill_9_during_a_flood_loses_at_most_three_batches_from_the_database(tmp_path: Path) -> None:
    ip = free_loopback_ip((2379,))
    proc = subprocess.Popen([sys.executable, "-m", "etcdsec", "honeypot", "--listen", f"{ip}:2379", "--rate", "0",
                             "--events", str(tmp_path / "e.jsonl"), "--db", str(tmp_path / "e.db"),
                             "--state", str(tmp_path / "s.json")], stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        assert proc.stderr is not None and "listening on" in proc.stderr.readline().decode()

        async def flood_then_kill() -> None:
            load = asyncio.create_task(flood(ip, FLOOD_S + 5))
            await asyncio.sleep(FLOOD_S)
            os.kill(proc.pid, signal.SIGKILL)
            await load

        asyncio.run(flood_then_kill())
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    logged = (tmp_path / "e.jsonl").read_text().count('"eventid":"etcdsec.http.request"')
    with sqlite3.connect(tmp_path / "e.db") as db:
        stored = db.execute("SELECT count(*) FROM honeypot_events WHERE eventid = 'etcdsec.http.request'").fetchone()[0]
    assert logged > 5 * BATCH  # a flood: far more than the bound below
    # two batches queued, one being written, and the event in hand (waiting for room in the queue)
    assert logged - stored <= 3 * BATCH + 1, (logged, stored)

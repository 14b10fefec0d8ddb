"""The JSONL event file: whole lines always, size rotation that never splits a line, reopen, batching bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

from etcdsec.events.jsonl import JsonlWriter


def all_lines(path) -> list[str]:
    files = sorted(path.parent.glob(path.name + "*"))
    return [line for f in files for line in f.read_text().splitlines()]


def test_rotation_keeps_every_line_whole(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, max_bytes=4096, backups=50)
    for i in range(500):
        writer({"eventid": "etcdsec.http.request", "n": i, "pad": "x" * (i % 97)})
    writer.close()
    assert writer.rotations >= 10
    for f in tmp_path.glob("events.jsonl*"):
        data = f.read_bytes()
        assert data.endswith(b"\n") and os.path.getsize(f) <= 4096
        for line in data.splitlines():
            json.loads(line)  # never a fragment
    assert sorted(json.loads(x)["n"] for x in all_lines(path)) == list(range(500))


def test_backups_are_bounded(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, max_bytes=1000, backups=3)
    for i in range(300):
        writer({"n": i, "pad": "y" * 50})
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl", "events.jsonl.1", "events.jsonl.2",
                                                          "events.jsonl.3"]


def test_restart_appends_and_reopen_follows_logrotate(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    first = JsonlWriter(path)
    first({"n": 1})
    first.close()
    second = JsonlWriter(path)
    second({"n": 2})
    os.replace(path, tmp_path / "moved.jsonl")  # what logrotate does before SIGHUP
    second.reopen()
    second({"n": 3})
    second.close()
    assert [json.loads(x)["n"] for x in (tmp_path / "moved.jsonl").read_text().splitlines()] == [1, 2]
    assert [json.loads(x)["n"] for x in path.read_text().splitlines()] == [3]


def test_batched_writer_loses_at_most_the_flush_interval_on_kill_9(tmp_path) -> None:
    """A child writes events with a 0.2 s flush interval and records, before each event, the time;
    after kill -9 every event older than the interval (plus scheduling slack) is on disk."""
    path, marks = tmp_path / "events.jsonl", tmp_path / "marks"
    code = textwrap.dedent(f"""
        import time
        from etcdsec.events.jsonl import JsonlWriter
        w = JsonlWriter({str(path)!r}, flush_interval=0.2)
        m = open({str(marks)!r}, "w", buffering=1)
        for i in range(200000):
            w({{"n": i}})
            m.write(f"{{i}} {{time.monotonic()}}\\n")
            time.sleep(0.0005)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(1.5)
    proc.kill()
    killed_at = time.monotonic()
    proc.wait(5)
    on_disk = {json.loads(x)["n"] for x in path.read_text().splitlines()}
    emitted = [(int(a), float(b)) for a, b in (ln.split() for ln in marks.read_text().splitlines() if " " in ln)]
    assert len(emitted) > 200
    old = [n for n, t in emitted if killed_at - t > 0.2 + 0.3]
    assert old and all(n in on_disk for n in old)


def test_batched_rotation_also_keeps_lines_whole(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, max_bytes=3000, backups=100, flush_interval=60)
    for i in range(400):
        writer({"n": i, "pad": "z" * (i % 61)})
    writer.close()
    for f in tmp_path.glob("events.jsonl*"):
        assert f.read_bytes().endswith(b"\n") and os.path.getsize(f) <= 3000
    assert sorted(json.loads(x)["n"] for x in all_lines(path)) == list(range(400))


def test_events_orjson_refuses_are_still_written(tmp_path) -> None:
    """A lone surrogate or a 70-bit integer makes orjson refuse: the line is kept (json's text), not lost."""
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path)
    writer({"eventid": "etcdsec.test", "value": "a\udc80b"})
    writer({"eventid": "etcdsec.test", "n": 2**70})
    writer({"eventid": "etcdsec.test", "plain": "é"})
    writer.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3 and writer.lines == 3
    assert json.loads(lines[0])["value"] == "a\udc80b"  # written as a \u escape: reads back the same
    assert json.loads(lines[1])["n"] == 2**70
    assert json.loads(lines[2])["plain"] == "é"


def test_a_held_writer_writes_the_batch_in_one_write_at_release(tmp_path, monkeypatch) -> None:
    """hold() keeps the lines (nested holds count); the last release() hands them over in one write()."""
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path)
    writes: list[int] = []
    real_write = os.write
    monkeypatch.setattr("etcdsec.events.jsonl.os.write",  # the writer's own writes counted, nothing else
                        lambda fd, data: (fd == writer._fd and writes.append(len(data))) or real_write(fd, data))
    writer({"n": 0})  # not held: written at once
    assert path.read_bytes().count(b"\n") == 1 and len(writes) == 1
    writer.hold()
    writer.hold()
    for i in range(1, 6):
        writer({"n": i})
    writer.release()
    assert path.read_bytes().count(b"\n") == 1  # the outer hold still keeps them
    writer.release()
    assert [json.loads(x)["n"] for x in path.read_text().splitlines()] == list(range(6))
    assert len(writes) == 2  # the five held lines in one write
    writer.release()  # one release too many: harmless, the next line is written at once
    writer({"n": 6})
    assert path.read_bytes().count(b"\n") == 7
    writer.close()


def test_a_held_batch_rotates_between_whole_lines(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, max_bytes=2000, backups=3)
    writer.hold()
    for i in range(300):
        writer({"n": i, "pad": "h" * (i % 37)})
    assert not path.read_bytes()
    writer.release()
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl", "events.jsonl.1", "events.jsonl.2",
                                                          "events.jsonl.3"]
    kept = []
    for f in sorted(tmp_path.glob("events.jsonl*"), reverse=True):
        data = f.read_bytes()
        assert data.endswith(b"\n") and len(data) <= 2000
        kept += [json.loads(x)["n"] for x in data.splitlines()]
    assert kept == list(range(300 - len(kept), 300))  # the newest lines, in order, none split


def test_release_leaves_a_flush_interval_batch_to_its_interval(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, flush_interval=60)
    writer.hold()
    writer({"n": 1})
    writer.release()
    assert path.read_bytes() == b""  # --flush-interval's batching, as before
    writer.flush()
    assert json.loads(path.read_bytes())["n"] == 1
    writer.close()


def test_held_batches_of_workers_sharing_a_file_rotate_whole(tmp_path) -> None:
    """Two writers on one file (--workers), each writing held batches: every line whole, in one of the
    files, none lost, each file within the bound."""
    path = tmp_path / "events.jsonl"
    first, second = (JsonlWriter(path, max_bytes=1000, backups=200, shared=True) for _ in range(2))
    n = 0
    for batch in range(40):
        writer = first if batch % 2 else second
        writer.hold()
        for _ in range(batch % 5 + 1):
            writer({"n": n, "pad": "s" * (n % 41)})
            n += 1
        writer.release()
    first.close()
    second.close()
    assert first.rotations + second.rotations >= 3
    for f in tmp_path.glob("events.jsonl*"):
        assert f.read_bytes().endswith(b"\n") and os.path.getsize(f) <= 1000
    assert sorted(json.loads(x)["n"] for x in all_lines(path)) == list(range(n))

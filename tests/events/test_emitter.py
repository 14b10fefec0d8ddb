"""The emitter's fan-out: outputs added at any time are called, a failing one is counted, holds reach
the outputs that buffer; and the honeypot's sink keeps every field as given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from etcdsec.events.emitter import Emitter
from etcdsec.events.jsonl import JsonlWriter
from etcdsec.honeypot.core.eventsink import EventSink
from etcdsec.honeypot.core.session import Session


class Collect:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.seen.append(event)


class Broken(Collect):  # __call__ inherited from a base class
    def hold(self) -> None:
        raise OSError("disk gone")

    def release(self) -> None:
        raise OSError("disk gone")


def test_outputs_added_later_and_of_every_kind_are_called() -> None:
    first, later, calls = Collect(), Collect(), []
    emitter = Emitter("s", [first])
    emitter.emit("a")
    emitter.outputs.append(later)
    emitter.outputs.append(calls.append)
    emitter.emit("b")
    emitter.outputs = [first]
    emitter.emit("c")
    assert [e["eventid"] for e in first.seen] == ["etcdsec.a", "etcdsec.b", "etcdsec.c"]
    assert [e["eventid"] for e in later.seen] == ["etcdsec.b"] and [e["eventid"] for e in calls] == ["etcdsec.b"]
    assert emitter.emitted == 3


def test_a_failing_output_is_counted_and_the_others_still_run(tmp_path: Path) -> None:
    def boom(event: dict[str, Any]) -> None:
        raise ValueError("broken sink")

    after, broken = Collect(), Broken()
    writer = JsonlWriter(tmp_path / "e.jsonl")
    sink = EventSink("s", [boom, broken, writer, after])
    sink.hold()
    sink.emit("http.request", None, path="/x")
    assert (tmp_path / "e.jsonl").read_bytes() == b""  # held
    sink.release()
    assert json.loads((tmp_path / "e.jsonl").read_bytes())["path"] == "/x"
    assert [e["path"] for e in broken.seen] == ["/x"] == [e["path"] for e in after.seen]
    assert sink.output_errors == 3  # boom in deliver, Broken's hold and release: counted, never raised
    writer.close()


def test_the_sink_leaves_out_none_only_where_asked() -> None:
    out = Collect()
    sink = EventSink("s", [out])
    sink.worker = 2
    session = Session("abc", "10.0.0.1", 5, "10.0.0.2", 2379, peer_ip="127.0.0.1")
    sink.emit("grpc.request", session, grpc_method="/m", status=None, raw="")
    sink.emit_fields("http.request", session, {"method": "GET", "status": 200})
    assert list(out.seen[0]) == ["timestamp", "eventid", "sensor", "session", "src_ip", "src_port", "dst_ip",
                                 "dst_port", "peer_ip", "worker", "grpc_method", "raw"]
    assert list(out.seen[1])[-2:] == ["method", "status"] and out.seen[1]["status"] == 200

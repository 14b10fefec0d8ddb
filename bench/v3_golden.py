#!/usr/bin/env python3
"""A byte-exact transcript of the v3 handlers' answers, to prove a performance change answers the same.

Usage:  .venv/bin/python bench/v3_golden.py OUT.jsonl   (then diff two runs: before and after a change)

Runs, on fixed ids and frozen clocks, every gateway case of the v3 corpus plus seeded random JSON
bodies through `gateway.handle`, and every gRPC case plus random payloads through one in-memory
h2c `GrpcConnection` per persona; writes each answer (status, headers, body / the server's raw
h2 bytes) and each event (minus timestamp and session id) as one JSON line. No sockets.
"""

from __future__ import annotations

import base64
import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support

import h2.config
import h2.connection
import h2.events
import yaml

from etcdsec.honeypot.context import (
    EventSink,
    Honeytokens,
    Identity,
    SensorContext,
    Session,
    load_persona,
)
from etcdsec.honeypot.core.bait import kubernetes_bait
from etcdsec.honeypot.v3.gateway import json_gateway
from etcdsec.honeypot.v3.grpc.server import GrpcConnection, frame_message
from etcdsec.honeypot.v3.state import V3State
from tests.support import fidelity_grpc
from tests.support.memory_events import MemoryEvents

START = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
WALL = START.timestamp() + 3600.0
FIELDS = ["key", "range_end", "rangeEnd", "limit", "revision", "keys_only", "count_only", "sort_order",
          "sort_target", "value", "lease", "prev_kv", "ignore_value", "TTL", "ID", "x", "serializable",
          "min_mod_revision", "max_create_revision"]
VALUES: list[Any] = [True, False, None, 0, 1, -1, 7, 2**31, 2**63, 2**64, 2**70, 1.5, 1e400, "Zm9v", "AA==", "",
                     "%%%", "12", "-3", "DESCEND", "MOD", "99999999999999999999", "<&>", "é", "\u2028", [], {},
                     ["Zm9v"], {"a": 1}, "Zm9vMg==", "YQ", "YQ==\n", "\ud800"]
PATHS = ["/v3/kv/range", "/v3/kv/put", "/v3/kv/deleterange", "/v3/kv/txn", "/v3/lease/grant",
         "/v3/lease/timetolive", "/v3/maintenance/status", "/v3/auth/user/get", "/v3/watch",
         "/v3/lease/keepalive", "/v3/cluster/member/list", "/v3beta/kv/range", "/v3alpha/kv/range"]
GRPC_HEADERS = [(":method", "POST"), (":scheme", "http"), (":authority", "x"), (":path", ""),
                ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", "golden/1")]


def make_ctx(persona: str, dataset: list[tuple[bytes, bytes]]) -> tuple[SensorContext, MemoryEvents]:
    ident = Identity(cluster_id=0x1234567890ABCDEF, member_id=0xFEDCBA0987654321, member_name="golden",
                     start_time=START, peer_urls=["http://127.0.0.1:2380"], client_urls=["http://127.0.0.1:2379"],
                     revision_base=1234, raft_term=7, raft_index_base=5678, secret_seed="00" * 16)
    memory = MemoryEvents()
    events = EventSink("golden", [memory])
    ctx = SensorContext(load_persona(persona), ident, events, Honeytokens(events, {"s3cr3t-token": "tok"}),
                        dataset=dataset)
    return ctx, memory


def state_of(ctx: SensorContext) -> V3State:
    return V3State(ctx, clock=lambda: 1000.0, wall_clock=lambda: WALL)


def random_bodies(rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        obj = {rng.choice(FIELDS): rng.choice(VALUES) for _ in range(rng.randint(0, 4))}
        text = json.dumps(obj)
        r = rng.random()
        if r < 0.1:
            text = text[: rng.randint(0, len(text))]
        elif r < 0.15:
            text = " \n" + text + "\t"
        elif r < 0.2:
            text = text + text
        out.append(text.encode("utf-8", "surrogatepass"))
    return out


def clean(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in ("timestamp", "session")} for e in events]


def gateway_lines(persona: str, dataset: list[tuple[bytes, bytes]], rng: random.Random) -> list[dict[str, Any]]:
    ctx, memory = make_ctx(persona, dataset)
    state = state_of(ctx)
    sessions = [Session("s1", "127.0.0.1", 1, "127.0.0.2", 2379), Session("s2", "127.0.0.3", 1, "127.0.0.2", 2379,
                                                                          tls=True)]
    corpus = yaml.safe_load((fidelity_grpc.CORPUS / "v3.yaml").read_text())
    requests = [(c["method"], c["path"], c.get("body", "").encode(), c.get("headers", {}))
                for c in corpus if "grpc" not in c]
    for body in random_bodies(rng, 1500):
        requests.append(("POST", rng.choice(PATHS), body, {}))
    lines = []
    for i, (method, path, body, hdrs) in enumerate(requests):
        headers = [(k.lower().encode(), str(v).encode()) for k, v in hdrs.items()]  # as the HTTP readers pass them
        if i % 7 == 3:
            headers.append((b"authorization", b"s3cr3t-token"))
        memory.events.clear()
        try:
            answer: Any = json_gateway.handle(ctx, state, sessions[i % 2], method, path, headers, body)
        except Exception as exc:  # recorded: a change must raise the same way
            answer = f"raised {type(exc).__name__}: {exc}"
        if isinstance(answer, tuple):
            status, out, payload = answer
            answer = [status, [[k.decode("latin-1"), v.decode("latin-1")] for k, v in out],
                      base64.b64encode(payload).decode()]
        lines.append({"persona": persona, "gw": i, "path": path, "answer": answer, "events": clean(memory.events)})
    return lines


def grpc_lines(persona: str, dataset: list[tuple[bytes, bytes]], rng: random.Random) -> list[dict[str, Any]]:
    ctx, memory = make_ctx(persona, dataset)
    server = GrpcConnection(ctx, state_of(ctx), Session("g1", "127.0.0.1", 5, "127.0.0.2", 2379))
    server.start()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    client.initiate_connection()
    server.receive(client.data_to_send())
    lines: list[dict[str, Any]] = [{"persona": persona, "preface": server.data_to_send().hex()}]
    client.receive_data(bytes.fromhex(lines[0]["preface"]))
    calls = [(c.grpc, c.payload(), c.headers) for c in fidelity_grpc.load_cases()
             if not c.versions or persona[:3] in c.versions]
    paths = sorted({c[0] for c in calls})
    for _ in range(600):
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 24)))
        calls.append((rng.choice(paths), frame_message(raw), {}))
    for i, (path, payload, extra) in enumerate(calls):
        if path.endswith(("/Watch", "/LeaseKeepAlive", "/MemberAdd")):
            continue  # streams stay open (their bytes depend on timing); MemberAdd picks a random id
        memory.events.clear()
        sid = client.get_next_available_stream_id()
        headers = [*GRPC_HEADERS[:3], (":path", path), *GRPC_HEADERS[4:], *extra.items()]
        if i % 5 == 2:
            headers.append(("token", "s3cr3t-token"))
        client.send_headers(sid, headers)
        client.send_data(sid, payload, end_stream=True)
        server.receive(client.data_to_send())
        out = server.data_to_send()
        for ev in client.receive_data(out):
            if isinstance(ev, h2.events.DataReceived):
                client.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        lines.append({"persona": persona, "grpc": i, "path": path, "out": out.hex(), "events": clean(memory.events)})
    return lines


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print("usage: v3_golden.py OUT.jsonl", file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    rng = random.Random(20240102)
    bait = kubernetes_bait("golden-seed", START).keys
    small = [(b"foo", b"bar"), (b"foo2", b"baz"), (b"a/\xff", b"\x00\x01<&>")]
    with out.open("w") as f:
        for persona in ("3.4.23", "3.5.1"):
            for dataset in (small, bait):
                for line in gateway_lines(persona, dataset, rng) + grpc_lines(persona, dataset, rng):
                    f.write(json.dumps(line, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The gateway's live watch: created, then later writes arrive as lines, and it ends at the time bound."""

from __future__ import annotations

import asyncio
import base64
import json

from etcdsec.honeypot.v3.gateway import json_gateway
from etcdsec.honeypot.v3.state import V3State

from .conftest import make_ctx, session


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_live_watch_streams_later_puts_and_stops_at_the_bound() -> None:
    ctx, _ = make_ctx(dataset=[(b"/app/a", b"1")])
    ctx.limits.wait_timeout_s = 1.0
    state = V3State(ctx)
    body = json.dumps({"create_request": {"key": b64("/app/"), "range_end": b64("/app0")}}).encode()

    async def run() -> tuple[list[dict], float]:
        lines: list[dict] = []
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def writer() -> None:
            await asyncio.sleep(0.1)
            put = json.dumps({"key": b64("/app/b"), "value": b64("2")}).encode()
            status, _, _ = json_gateway.handle(ctx, state, session("127.0.0.9"), "POST", "/v3/kv/put", [], put)
            assert status == 200

        task = asyncio.create_task(writer())
        async for line in json_gateway.live_watch(ctx, state, session(), "/v3/watch", body):
            lines.append(json.loads(line))
        await task
        return lines, loop.time() - started

    lines, elapsed = asyncio.run(run())
    assert lines[0]["result"]["created"] is True
    event = lines[1]["result"]["events"][0]
    assert base64.b64decode(event["kv"]["key"]) == b"/app/b" and base64.b64decode(event["kv"]["value"]) == b"2"
    assert len(lines) == 2 and 0.9 <= elapsed < 5
    assert json_gateway.is_watch(ctx, "/v3/watch") and not json_gateway.is_watch(ctx, "/v3/lease/keepalive")
    assert state.namespace(session()).hub.count == 0  # the watcher is gone once the response ended

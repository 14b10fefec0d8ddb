"""The asyncio shell around `GrpcConnection`: bytes between the socket and the sans-IO core.

Input is processed as it arrives; output produced later (watch events caused by other connections,
flow-control window updates) is flushed by a callback the state machine schedules. One idle
deadline, a per-source throttle, and nothing else happen here.
"""

from __future__ import annotations

import asyncio
import time

from etcdsec.honeypot.context import SensorContext
from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.serve.guard import MAX_THROTTLE_S, Guard
from etcdsec.honeypot.v3.grpc.server import READ_CHUNK, GrpcConnection, H2HttpHandler
from etcdsec.honeypot.v3.state import V3State
from etcdsec.tokenbucket import TokenBucket

HOLD_FROM = 256  # bytes in one read from which it may carry several calls (a unary call is ~50-200)


class _Throttle:
    """The per-source request rate: the sensor's Guard when given, else a token bucket per connection."""

    def __init__(self, ctx: SensorContext, session: Session, guard: Guard | None) -> None:
        self.guard, self.src = guard, session.src_ip
        rate, burst = ctx.limits.rate_per_source, float(ctx.limits.burst_per_source)
        self.bucket = TokenBucket(rate, burst, time.monotonic()) if guard is None and rate > 0 else None

    def delay(self, calls: int) -> float:
        if self.guard is not None:
            return self.guard.delay_for(self.src, calls)
        return 0.0 if self.bucket is None else self.bucket.reserve(time.monotonic(), calls)


async def serve_h2(ctx: SensorContext, state: V3State, session: Session,
                   reader: asyncio.StreamReader, writer: asyncio.StreamWriter, initial: bytes,
                   guard: Guard | None = None, http: H2HttpHandler | None = None) -> None:
    """Serve one HTTP/2 (gRPC) connection until the peer leaves, idles out or breaks the protocol.

    Input is processed as it arrives; output produced later (watch events caused by other
    connections, flow-control window updates) is flushed by a callback the state machine schedules.
    A source over its request rate is slowed down (we stop reading from it for a while), not cut off.
    `http` answers plain (non-gRPC) HTTP/2 requests over TLS, as etcd's HTTP handlers do.
    """
    loop = asyncio.get_running_loop()
    throttle = _Throttle(ctx, session, guard)
    handled = 0
    scheduled = False

    def flush() -> None:
        nonlocal scheduled
        scheduled = False
        conn.pump()
        out = conn.data_to_send()
        if out and not writer.is_closing():
            writer.write(out)

    def on_ready() -> None:
        nonlocal scheduled
        if not scheduled:
            scheduled = True
            loop.call_soon(flush)

    def tick() -> None:  # ends watches that reached their time bound even on a silent connection
        nonlocal ticker
        flush()
        ticker = loop.call_later(1.0, tick)

    events = ctx.events

    def receive(data: bytes) -> None:
        """The calls in one read: their events go to the file in one write, before flush() answers."""
        if len(data) < HOLD_FROM:  # one call at most: written as it comes, holding would only cost
            conn.receive(data)
            return
        events.hold()
        try:
            conn.receive(data)
        finally:
            events.release()

    conn = GrpcConnection(ctx, state, session, on_ready=on_ready, http=http)
    conn.start()
    ticker = loop.call_later(1.0, tick)
    idle = ctx.limits.idle_timeout_s
    # One idle deadline for the whole loop instead of an asyncio.timeout per read and per drain (each
    # costs a timer and a context): `since` marks when the current wait began, and a lazy watchdog
    # fires once per idle period, re-arming itself while the connection keeps making progress.
    since = loop.time()
    waiting = "read"  # what the loop awaits: "read", "drain" or "sleep" (throttling is not idleness)
    deadline: asyncio.Timeout | None = None

    def watchdog() -> None:
        nonlocal watch
        now = loop.time()
        if waiting == "sleep" or now < since + idle or (waiting == "read" and conn.watching()):
            watch = loop.call_at(max(now, since) + idle, watchdog)
        elif deadline is not None:
            deadline.reschedule(now)

    watch = loop.call_at(since + idle, watchdog)
    try:
        receive(initial)
        flush()
        try:
            async with asyncio.timeout(None) as deadline:
                waiting, since = "drain", loop.time()
                await writer.drain()  # a peer that never reads cannot pin this task
                while not conn.closed:
                    waiting, since = "read", loop.time()
                    data = await reader.read(READ_CHUNK)
                    if not data:
                        break
                    session.bytes_in += len(data)
                    receive(data)
                    session.requests_in = conn.calls
                    flush()
                    waiting, since = "drain", loop.time()
                    await writer.drain()
                    if conn.calls > handled:
                        pause = throttle.delay(conn.calls - handled)
                        handled = conn.calls
                        if pause > 0:
                            waiting = "sleep"
                            await asyncio.sleep(min(pause, MAX_THROTTLE_S))
        except TimeoutError:
            if waiting != "read":  # stuck writing: nothing more can go out
                return
        finally:
            watch.cancel()  # the deadline above is over: the watchdog must not touch it
        flush()
        async with asyncio.timeout(idle):
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
        pass
    finally:
        watch.cancel()
        ticker.cancel()
        conn.close()

"""The life of one HTTP/1 request, the same whichever reader parsed it (fast recogniser or h11).

`exchange` runs, in this order: X-Forwarded-For (the rate limit and the events are the client's,
not the balancer's), the throttle decision, the honeytoken scan over `request_view` (before any
wait, so a throttled or abandoned request still raises its alert), the wait, the handler (Go's
`OPTIONS *` answer; a crash becomes Go's empty 500), the `http.request` event (logged before the
answer is written: a crash never loses an answered request) and the keep-alive decision. The
reader only writes the `Answer`. When nothing waits, `exchange` answers inline with no task.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from etcdsec.honeypot.context import SensorContext
from etcdsec.honeypot.core.events_fields import request_event_fields
from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.routes import ClientApp, PeerApp
from etcdsec.honeypot.serve.guard import MAX_THROTTLE_S, Guard
from etcdsec.honeypot.serve.inline_start import start_eagerly
from etcdsec.honeypot.wire.go_http_rules import connection_tokens
from etcdsec.honeypot.wire.go_response import Response, keeps_http10
from etcdsec.honeypot.wire.proxyproto import xff_client
from etcdsec.honeypot.wire.request import Request, token_view

Items = list[tuple[bytes, bytes, bytes]]  # (name as sent, lower-cased name, value) per header, as sent


@dataclass(slots=True)
class Http1State:
    """What one HTTP/1 connection carries from request to request, whichever reader serves it."""

    app: ClientApp | PeerApp
    ctx: SensorContext
    session: Session
    guard: Guard | None
    trusted_xff: list[Any] | None  # networks whose X-Forwarded-For is believed; None: not honoured
    socket_peer: str  # the address the socket came from (X-Forwarded-For may name another client)
    requests: int = 0  # answered so far

    @classmethod
    def new(cls, app: ClientApp | PeerApp, ctx: SensorContext, session: Session, guard: Guard | None,
            trusted_xff: list[Any] | None = None) -> Http1State:
        # PROXY protocol named the client already: X-Forwarded-For is not believed on top of it
        return cls(app, ctx, session, guard, None if session.peer_ip else trusted_xff, session.src_ip)


@dataclass(slots=True)
class Answer:
    """A request's answer and what the connection does after writing it."""

    resp: Response
    close: bool  # the request asked for Connection: close (said in the answer)
    keep: bool  # the connection may carry another request
    cors: bool  # add etcd's CORS headers
    head: bool  # a HEAD request: no body goes out
    http10: bool  # answered as HTTP/1.0


def exchange(state: Http1State, req: Request, items: Items,
             raw: bytes | None = None) -> Answer | Coroutine[Any, Any, Answer]:
    """One request's life; the Answer itself when nothing had to wait, else a coroutine for it.

    `raw`: the request's bytes as received, when the reader has them (the fast reader). They hold
    every piece of the view verbatim, so they are searched first and the view is built only on a
    hit: the same events at the cost of one search, unless a token itself holds a line break or
    ": " (a test in tests/honeypot/test_honeytoken_paths.py checks this on generated requests)."""
    started = time.perf_counter()
    session = state.session
    if state.trusted_xff is not None:
        apply_xff(session, state.socket_peer, state.trusted_xff, req.header(b"x-forwarded-for"))
    delay = state.guard.delay_for(session.src_ip) if state.guard is not None else 0.0
    tokens = state.ctx.honeytokens
    if raw is None or tokens.find(raw):
        tokens.check(session, token_view(req.method, req.target, [(name, value) for name, _, value in items],
                                         req.body))
    if delay:
        return _after_throttle(state, req, items, started, min(delay, MAX_THROTTLE_S))
    own = go_answer(req) if req.target == "*" else None  # the test first: this is the hot path
    if own is not None:
        return _answered(state, req, items, own, started)
    try:
        pending = start_eagerly(state.app.handle(session, req))
    except Exception as exc:
        return _answered(state, req, items, _crashed(state, exc, req), started)
    if isinstance(pending, Response):
        return _answered(state, req, items, pending, started)
    return _when_ready(state, req, items, pending, started)


async def _after_throttle(state: Http1State, req: Request, items: Items, started: float, delay: float) -> Answer:
    await asyncio.sleep(delay)  # throttle the flooding source, not the sensor
    try:
        resp = go_answer(req) or await state.app.handle(state.session, req)
    except Exception as exc:
        resp = _crashed(state, exc, req)
    return _answered(state, req, items, resp, started)


async def _when_ready(state: Http1State, req: Request, items: Items, pending: asyncio.Future[Response],
                      started: float) -> Answer:
    try:
        resp = await pending
    except Exception as exc:
        resp = _crashed(state, exc, req)
    return _answered(state, req, items, resp, started)


def go_answer(req: Request) -> Response | None:
    """What Go's server answers itself instead of etcd's handlers (`OPTIONS *`)."""
    if req.target == "*" and req.method == "OPTIONS":
        return Response(200, b"", [("Content-Length", "0")])
    return None


def _crashed(state: Http1State, exc: Exception, req: Request) -> Response:
    # never leak a traceback to the client: answer like Go's recover
    state.ctx.events.emit("sensor.error", state.session, error=type(exc).__name__, path=req.target)
    return Response(500, b"", [])


def _answered(state: Http1State, req: Request, items: Items, resp: Response, started: float) -> Answer:
    state.ctx.events.emit_fields("http.request", state.session, request_event_fields(
        req.method, req.target, "1.0" if req.http10 else "1.1", items, resp.status, state.session.tls, req.body,
        state.ctx.limits.max_logged_body, started))
    state.requests += 1
    tokens = connection_tokens(req.header(b"connection"))
    close = b"close" in tokens
    keep = (b"keep-alive" in tokens and keeps_http10(resp, req.method == "HEAD")) if req.http10 else not close
    if b"upgrade" in tokens or req.method == "CONNECT":
        keep = False
    if req.body_error:  # Go's discard of the unread body fails too: it says Connection: close and ends
        close, keep = True, False
    return Answer(resp, close, keep, state.app.cors and req.target != "*", req.method == "HEAD", req.http10)


def log_request(state: Http1State, method: str, target: str, version: str, items: Items, status: int,
                body: bytes, started: float | None = None) -> None:
    """The `http.request` event, also for requests Go's server refuses before any handler."""
    state.ctx.events.emit_fields("http.request", state.session, request_event_fields(
        method, target, version, items, status, state.session.tls, body, state.ctx.limits.max_logged_body,
        started))


def malformed(state: Http1State, reason: str, raw: bytes) -> None:
    """The `malformed` event: input that never became a request, its bytes kept (bounded)."""
    raw = raw[:state.ctx.limits.max_logged_body]
    state.ctx.events.emit("malformed", state.session, protocol="http/1.1", reason=reason,
                          raw_b64=base64.b64encode(raw).decode(), raw_len=len(raw))


def apply_xff(session: Session, socket_peer: str, trusted_networks: list[Any], header: bytes | None) -> None:
    """Make the session's client the one X-Forwarded-For names, keeping the socket peer beside it."""
    client = xff_client(socket_peer, header, trusted_networks)
    session.src_ip = client
    session.peer_ip = socket_peer if client != socket_peer else ""

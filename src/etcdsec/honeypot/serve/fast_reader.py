"""The fast reader of an HTTP/1.x connection: an asyncio.Protocol that answers simple requests inline.

Streams cost a task wake-up, a future and a timer per read; h11 costs ~65 µs per request here. This
protocol parses with `fasthead` straight from `data_received` and runs `exchange` (no task unless
something really waits), then writes Go's bytes, all in one callback. At the first bytes `fasthead`
cannot vouch for it stops reading and resolves `finished` to every byte it holds: `Http1Connection`
then hands them to the h11 reader, which owns all of Go's refusals and odd cases from then on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from etcdsec.honeypot.serve.exchange import Answer, Http1State, exchange, malformed
from etcdsec.honeypot.wire import fast_head, go_response
from etcdsec.honeypot.wire.request import Request


class FastReader(asyncio.Protocol):
    """An HTTP/1.x connection (plain text or TLS) while its requests stay simple.

    `finished` resolves to None when the connection is over, or to the bytes the h11 reader must
    start from (reading is then paused, so nothing arrives in between).
    """

    def __init__(self, state: Http1State) -> None:
        self.state = state
        self.ctx, self.session = state.ctx, state.session
        self.limits = state.ctx.limits
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.finished: asyncio.Future[bytes | None] = self.loop.create_future()
        self.buf = bytearray()
        self.eof = False
        self.end_reason = "closed"
        self.alpn: str | None = None  # over TLS: the protocol ALPN picked ("h2" goes to gRPC)
        self._busy = False  # a request is being answered asynchronously: later bytes wait
        self._write_paused = False
        self._closing = False
        self._last_active = self.loop.time()
        self._idle: asyncio.TimerHandle | None = None
        self._head_timer: asyncio.TimerHandle | None = None  # the request head being waited for
        self._task: asyncio.Task[None] | None = None
        self._last_task: asyncio.Task[None] | None = None  # kept for wait_closed
        self._streaming = False  # the async answer is a held stream (watch, v2 wait)

    # --- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._idle = self.loop.call_at(self._last_active + self.limits.idle_timeout_s, self._idle_check)
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_expired)
        ssl_obj = transport.get_extra_info("ssl_object")
        if ssl_obj is not None:  # the handshake is done: logged before any request on it
            self.alpn = ssl_obj.selected_alpn_protocol()
            self.ctx.events.emit("tls.handshake", self.session, alpn=self.alpn, tls_version=ssl_obj.version())
            if self.alpn == "h2":
                self._hand_over()  # gRPC: the listener gives the connection to the h2 server

    def data_received(self, data: bytes) -> None:
        self._last_active = self.loop.time()
        self.session.bytes_in += len(data)
        self.buf += data
        if len(self.buf) > self.limits.max_header_bytes + self.limits.max_request_bytes and self.transport:
            self.transport.pause_reading()  # a client far ahead of us waits in its own socket buffer
        if not self._busy and not self._write_paused:
            self._serve_buffered()

    def eof_received(self) -> bool:
        self.eof = True
        if self._streaming and self._task is not None:
            # Go cancels a request's context when its client goes away: a held watch ends with it
            self._task.cancel()
            self._close_after_answer()
        elif not self._busy:
            self._end_of_input()
        return True  # keep the socket open for an answer still being prepared

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._stop_head_timer()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.buf.strip() and not self.finished.done():
            # every byte is recorded: what was left unparsed, or sent after we closed (Connection: close)
            self._malformed("sent after the connection was closed" if self._closing else "incomplete request")
            self.buf.clear()
        self._finish(None)

    def pause_writing(self) -> None:
        self._write_paused = True  # the client does not read its answers: stop reading its requests
        if self.transport:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._last_active = self.loop.time()  # the client reads again: that is activity too
        if self.transport and not self._busy and not self.finished.done():
            self.transport.resume_reading()
            self._serve_buffered()

    # --- the streams-like ends the listener uses -------------------------------------------
    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self.finished)
        if self._last_task is not None and not self._last_task.done():  # a cancelled stream finishing
            await asyncio.wait([self._last_task], timeout=1.0)

    # --- serving -------------------------------------------------------------------------
    def _serve_buffered(self) -> None:
        """Answer every complete simple request in the buffer (pipelined ones in order)."""
        limits = self.limits
        while self.buf and not self._busy and not self._closing and not self._write_paused:
            head = fast_head.parse(self.buf, limits.max_header_bytes, limits.max_header_count,
                                  limits.max_request_bytes)
            if head is fast_head.NEED_MORE:
                break
            if head is fast_head.UNSURE:
                self._hand_over()
                return
            assert isinstance(head, fast_head.Head)
            raw = bytes(self.buf[:head.end])
            del self.buf[:head.end]
            self._answer(head, raw)
        if self._head_timer is not None or self.buf:  # else: no head pending, no deadline running
            self._time_head()
        if self.eof and not self._busy:
            self._end_of_input()

    def _answer(self, head: fast_head.Head, raw: bytes) -> None:
        self.session.requests_in += 1
        req = Request(head.method, head.target, head.headers, raw[head.body_start:], http10=head.http10)
        answer = exchange(self.state, req, head.items, raw)
        if isinstance(answer, Answer):
            self._write(answer)
        else:
            self._go_async(self._write_when_ready(answer))

    async def _write_when_ready(self, pending: Coroutine[Any, Any, Answer]) -> None:
        answer = await pending
        if answer.resp.stream is None:
            self._write(answer)
        else:
            await self._write_stream(answer)

    def _write(self, answer: Answer) -> None:
        """Write an answer the exchange has logged; held streams go async."""
        resp = answer.resp
        if resp.stream is not None or resp.websocket is not None:
            self._go_async(self._write_stream(answer))
            return
        assert self.transport is not None
        self.transport.write(go_response.render(resp, head=answer.head, http10=answer.http10,
                                           close=answer.close, cors=answer.cors, keep=answer.keep))
        if not answer.keep:
            self._close_after_answer()

    async def _write_stream(self, answer: Answer) -> None:
        resp = answer.resp
        assert self.transport is not None and resp.stream is not None
        self.transport.write(go_response.render_stream_head(resp, cors=answer.cors, close=answer.close))
        self._streaming = True
        try:
            async for piece in resp.stream:  # type: ignore[attr-defined]
                if self.transport.is_closing():
                    return
                self.transport.write(go_response.chunk(piece))
        finally:
            self._streaming = False
        self.transport.write(go_response.last_chunk(resp.trailers))
        if not answer.keep:
            self._close_after_answer()

    def _go_async(self, coro: Coroutine[Any, Any, None]) -> None:
        """Finish this request in a task; bytes that arrive meanwhile wait in the buffer."""
        self._busy = True
        self._task = self._last_task = self.loop.create_task(coro)
        self._task.add_done_callback(self._async_done)

    def _async_done(self, task: asyncio.Task[None]) -> None:
        self._busy = False
        self._task = None
        if task.cancelled() or self.finished.done():
            return
        if task.exception() is not None:
            self.ctx.events.emit("sensor.error", self.session, error=type(task.exception()).__name__)
            self._close_after_answer()
            return
        if self.transport is not None and not self._write_paused and not self._closing:
            self.transport.resume_reading()
            self._serve_buffered()

    # --- endings ------------------------------------------------------------------------
    def _close_after_answer(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.close()

    def _end_of_input(self) -> None:
        """The client closed its side: what is left can never become a request."""
        if self.buf.strip():
            self._malformed("incomplete request")
            self.buf.clear()
        self._close_after_answer()

    def _idle_check(self) -> None:
        """No bytes either way for idle_timeout_s: the connection ends. One timer per idle period."""
        idle_for = self.loop.time() - self._last_active
        if self._busy or idle_for < self.limits.idle_timeout_s:
            self._idle = self.loop.call_at(self._last_active + self.limits.idle_timeout_s + (1 if self._busy else 0),
                                           self._idle_check)
            return
        if self._write_paused and self.transport is not None:
            self.end_reason = "client stopped reading"  # its answers can never leave: drop them
            self._closing = True
            self.transport.abort()
            return
        self._end_of_input()

    def _time_head(self) -> None:
        """Keep the head deadline running exactly while a request head is incomplete and ours to
        read: from its first byte (the first request: from the connection's start) to its end."""
        if self._busy or self._closing or self.finished.done() or b"\r\n\r\n" in self.buf or b"\n\n" in self.buf:
            self._stop_head_timer()  # not reading a head now
        elif not self.buf:
            if self.session.requests_in:
                self._stop_head_timer()  # a keep-alive wait: the idle time's business
        elif self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_expired)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        """The head did not arrive in time: close without a word, as Go does at ReadHeaderTimeout."""
        self._head_timer = None
        if self._busy or self._closing or self.finished.done():
            return
        self.end_reason = "request head timeout"
        if self.buf.strip():
            self._malformed("request head timeout")
            self.buf.clear()
        self._close_after_answer()

    def _hand_over(self) -> None:
        """Not a simple request: the h11 path takes the connection from here, bytes and all."""
        if self.transport is not None:
            self.transport.pause_reading()
        if self._idle is not None:
            self._idle.cancel()
        self._stop_head_timer()
        self._finish(bytes(self.buf))
        self.buf.clear()

    def _finish(self, handoff: bytes | None) -> None:
        if not self.finished.done():
            self.finished.set_result(handoff)

    def _malformed(self, reason: str) -> None:
        malformed(self.state, reason, bytes(self.buf[:self.limits.max_logged_body]))

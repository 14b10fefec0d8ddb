"""A tiny loopback server that puts the v3 layers (gRPC over h2, JSON gateway over h11) on a socket.

It is the v3 side alone, without HP-CORE's listener: the first 24 bytes decide h2 vs HTTP/1.1,
and HTTP/1.1 requests go straight to `gateway.handle`. Runs its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import h11

from etcdsec.honeypot.context import SensorContext, Session
from etcdsec.honeypot.v3 import gateway
from etcdsec.honeypot.v3.grpc_server import serve_h2
from etcdsec.honeypot.v3.state import V3State
from etcdsec.testbed.addresses import free_loopback_ip, is_loopback

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class V3Sensor:
    def __init__(self, ctx: SensorContext, ip: str | None = None, port: int = 2379) -> None:
        self.ctx = ctx
        self.ip = ip or free_loopback_ip((port,))
        assert is_loopback(self.ip)
        self.port = port
        self.state = V3State(ctx)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.base_events.Server | None = None
        self.lock = threading.Lock()  # tests read state from another thread

    @property
    def endpoint(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    def __enter__(self) -> V3Sensor:
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, self.ip, self.port), self.loop)
        self.server = fut.result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self.server is not None
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def call(self, fn: Any) -> Any:
        """Run fn() on the sensor's loop thread (state is single-threaded)."""
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("sockname")
        session = Session.new(peer[0], peer[1], sock[0], sock[1])
        try:
            head = b""
            while len(head) < len(PREFACE):
                chunk = await asyncio.wait_for(reader.read(len(PREFACE) - len(head)), 10)
                if not chunk:
                    break
                head += chunk
                if not PREFACE.startswith(head):
                    break
            if head == PREFACE:
                await serve_h2(self.ctx, self.state, session, reader, writer, head)
            else:
                await self._http1(session, reader, writer, head)
        except (ConnectionError, TimeoutError, h11.RemoteProtocolError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _http1(self, session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     head: bytes) -> None:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(head)
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(65536), 30)
                conn.receive_data(data)
                if not data and conn.their_state is not h11.SEND_BODY:
                    return
                continue
            if isinstance(ev, h11.Request):
                req, body = ev, b""
                while True:
                    ev2 = conn.next_event()
                    if ev2 is h11.NEED_DATA:
                        conn.receive_data(await asyncio.wait_for(reader.read(65536), 30))
                        continue
                    if isinstance(ev2, h11.Data):
                        body += ev2.data
                        continue
                    break
                result = gateway.handle(self.ctx, self.state, session, req.method.decode(), req.target.decode(),
                                        list(req.headers), body)
                status, headers, payload = result if result is not None else (
                    404, [(b"Content-Type", b"text/plain; charset=utf-8")], b"404 page not found\n")
                chunked = any(k.lower() == b"transfer-encoding" for k, _ in headers)
                if not chunked:
                    headers = [*headers, (b"Content-Length", str(len(payload)).encode())]
                writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
                if payload:
                    writer.write(conn.send(h11.Data(data=payload)))
                trailers = gateway.TRAILERS if any(k == b"Trailer" for k, _ in headers) else []
                writer.write(conn.send(h11.EndOfMessage(headers=trailers)))
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
                continue
            return

"""Misbehaving servers for tests and benchmarks: things on port 2379 that are not (honest) etcd."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
        return b""


async def json_everything(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An HTTP service that answers 200 JSON to every path and method (keep-alive)."""
    while True:
        head = await _read_request(reader)
        if not head:
            break
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length:
            await reader.readexactly(length)
        body = b'{"status":"ok","version":"1.0","health":"ok"}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
    writer.close()


async def nested_json(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Looks like etcd on /version, then answers every other path with JSON nested 200,000 deep."""
    while True:
        head = await _read_request(reader)
        if not head:
            break
        version = head.startswith(b"GET /version ")
        body = b'{"etcdserver":"3.5.1","etcdcluster":"3.5.0"}' if version else b"[" * 200_000 + b"]" * 200_000
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
    writer.close()


async def tarpit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, interval: float = 2.0) -> None:
    """Accepts, then drips one byte of a never-ending response every `interval` seconds."""
    await _read_request(reader)
    payload = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    try:
        for i in range(10_000):  # bounded: ~5.5 hours at most per connection
            writer.write(payload[i % len(payload): i % len(payload) + 1])
            await writer.drain()
            await asyncio.sleep(interval)
    except (ConnectionError, OSError):
        pass
    writer.close()


async def endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """200 with a chunked body that never ends (bounded at 1 GiB)."""
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"{" * 0x10000 + b"\r\n"
    try:
        for _ in range(16_384):
            writer.write(chunk)
            await writer.drain()
            # drain() does not yield while the socket takes everything: without this a fast reader
            # keeps the shared fakes loop busy and every other fake server stalls
            await asyncio.sleep(0)
    except (ConnectionError, OSError):
        pass
    writer.close()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers binary junk, as a non-HTTP service on 2379 might."""
    await _read_request(reader)
    writer.write(b"\x00\xffSSH-2.0-not-http\x13\x37" * 64)
    await writer.drain()
    writer.close()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts and never says a word (closes after 60 s)."""
    try:
        async with asyncio.timeout(60):
            while await reader.read(65536):
                pass
    except (TimeoutError, ConnectionError):
        pass
    writer.close()


KINDS: dict[str, Handler] = {
    "json": json_everything, "nested": nested_json, "tarpit": tarpit, "endless": endless_body, "garbage": garbage,
    "silent": silent,
}


@dataclass
class FakeServer:
    kind: str
    host: str
    port: int


class FakeServers:
    """Runs fake servers on loopback in a background event loop thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._servers: list[asyncio.Server] = []

    def start(self, kind: str | Handler, host: str, port: int = 2379) -> FakeServer:
        """`kind` names one of KINDS, or is a handler of the test's own."""
        if not host.startswith("127.") and host != "::1":
            raise ValueError("fakes bind loopback only")
        handler = KINDS[kind] if isinstance(kind, str) else kind

        async def _start() -> asyncio.Server:
            async def guarded(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                try:
                    await handler(r, w)
                except (Exception, asyncio.CancelledError):  # a fake must never take the loop down
                    w.close()

            return await asyncio.start_server(guarded, host, port, reuse_address=True)

        server = asyncio.run_coroutine_threadsafe(_start(), self.loop).result(5)
        self._servers.append(server)
        return FakeServer(kind if isinstance(kind, str) else getattr(kind, "__name__", "custom"), host, port)

    def close(self) -> None:
        async def _stop() -> None:
            for s in self._servers:
                s.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def __enter__(self) -> FakeServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

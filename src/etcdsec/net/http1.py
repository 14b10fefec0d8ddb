"""A small, strictly bounded HTTP/1.1 client: h11 does the protocol, this file only moves bytes.

Every request has one overall timeout (a server that drips a byte every second cannot stretch it)
and a cap on body bytes (an endless body is cut, not buffered).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import h11

USER_AGENT = "etcdsec/0.1 (+https://github.com/etcdsec/etcdsec)"
_READ_CHUNK = 65536


class HTTPError(Exception):
    """The peer did not speak HTTP within the bounds: a short reason for the `error` field."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool = False
    http_version: str = "1.1"
    reason: str = ""
    raw_headers: list[tuple[str, str]] = field(default_factory=list)


class HTTPConnection:
    """One keep-alive connection. Not safe for concurrent use: the pool hands it to one task at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host_header: str) -> None:
        self.reader = reader
        self.writer = writer
        self.host_header = host_header
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=32 * 1024)
        self.reusable = True

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return self.writer.get_extra_info("ssl_object")

    async def request(self, method: str, target: str, *, body: bytes = b"",
                      headers: list[tuple[str, str]] | None = None,
                      timeout: float = 5.0, max_body: int = 1 << 20) -> Response:
        if not self.reusable:
            raise HTTPError("connection not reusable")
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(method, target, body, headers or [], max_body)
        except TimeoutError:
            self.reusable = False
            raise HTTPError(f"no complete response to {method} {target} within {timeout:g}s") from None
        except h11.ProtocolError as exc:
            self.reusable = False
            raise HTTPError(f"not HTTP: {exc}") from None
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            self.reusable = False
            raise HTTPError(_describe_io_error(exc)) from exc

    async def _exchange(self, method: str, target: str, body: bytes,
                        extra: list[tuple[str, str]], max_body: int) -> Response:
        conn = self._h11
        hdrs = [("Host", self.host_header), ("User-Agent", USER_AGENT), ("Accept", "*/*")]
        if body or method in ("POST", "PUT"):
            hdrs.append(("Content-Length", str(len(body))))
        hdrs += extra
        out = conn.send(h11.Request(method=method, target=target, headers=hdrs))
        if body:
            out += conn.send(h11.Data(data=body))
        out += conn.send(h11.EndOfMessage())
        self.writer.write(out)
        await self.writer.drain()

        response: h11.Response | None = None
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(_READ_CHUNK)
                if not data and response is None:
                    self.reusable = False
                    raise HTTPError("connection closed before a response")
                conn.receive_data(data)
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                response = event
                if method == "HEAD":
                    pass
                continue
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > max_body:
                    keep = max_body - (size - len(event.data))
                    chunks.append(bytes(event.data[:keep]))
                    self.reusable = False
                    assert response is not None
                    return _build(response, b"".join(chunks), truncated=True)
                chunks.append(bytes(event.data))
                continue
            if isinstance(event, h11.EndOfMessage):
                assert response is not None
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                else:
                    self.reusable = False
                return _build(response, b"".join(chunks))
            if isinstance(event, h11.ConnectionClosed):
                self.reusable = False
                if response is None:
                    raise HTTPError("connection closed before a response")
                return _build(response, b"".join(chunks))
            raise HTTPError(f"unexpected HTTP event {type(event).__name__}")

    async def close(self) -> None:
        self.reusable = False
        try:
            self.writer.close()
            async with asyncio.timeout(1):
                await self.writer.wait_closed()
        except (TimeoutError, OSError, ssl.SSLError):
            pass


def _build(resp: h11.Response, body: bytes, truncated: bool = False) -> Response:
    raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers]
    headers: dict[str, str] = {}
    for k, v in raw:
        headers[k.lower()] = v if k.lower() not in headers else headers[k.lower()] + ", " + v
    return Response(resp.status_code, headers, body, truncated, resp.http_version.decode(),
                    resp.reason.decode("latin-1"), raw)


def _describe_io_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}"

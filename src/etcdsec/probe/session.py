"""A small connection pool to one endpoint, so independent probe requests run side by side."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from etcdsec.net.http1 import HTTPConnection, HTTPError, Response


class ConnectError(Exception):
    """TCP or TLS could not be established; `refused` tells a closed port from a silent one."""

    def __init__(self, message: str, refused: bool = False, tls_alert: BaseException | None = None) -> None:
        super().__init__(message)
        self.refused = refused
        self.tls_alert = tls_alert


@dataclass
class Limits:
    connect_timeout: float = 3.0
    request_timeout: float = 4.0
    max_body: int = 1 << 20
    max_connections: int = 4


async def open_connection(ip: str, port: int, host_header: str, tls: ssl.SSLContext | None,
                          server_hostname: str | None, limits: Limits) -> HTTPConnection:
    try:
        async with asyncio.timeout(limits.connect_timeout):
            reader, writer = await asyncio.open_connection(
                ip, port, ssl=tls, server_hostname=(server_hostname or "") if tls else None,
                ssl_handshake_timeout=limits.connect_timeout if tls else None, limit=1 << 16)
    except TimeoutError:
        raise ConnectError(f"{'TLS handshake' if tls else 'connect'} timed out after "
                           f"{limits.connect_timeout:g}s") from None
    except ConnectionRefusedError:
        raise ConnectError("connection refused", refused=True) from None
    except ssl.SSLError as exc:
        raise ConnectError(f"TLS handshake failed: {exc.reason or exc}", tls_alert=exc) from None
    except OSError as exc:
        what = "TLS handshake failed" if tls else "connect failed"
        raise ConnectError(f"{what}: {exc.strerror or str(exc) or 'connection closed'}") from None
    return HTTPConnection(reader, writer, host_header)


class EndpointSession:
    """Pool of keep-alive connections to one (ip, port, scheme)."""

    def __init__(self, ip: str, port: int, host_header: str, tls: ssl.SSLContext | None,
                 server_hostname: str | None, limits: Limits, first: HTTPConnection | None = None) -> None:
        self.ip, self.port, self.host_header = ip, port, host_header
        self.tls, self.server_hostname, self.limits = tls, server_hostname, limits
        self._idle: list[HTTPConnection] = [first] if first else []
        self._open = 1 if first else 0
        self._cond = asyncio.Condition()
        self.requests = 0

    async def _acquire(self) -> HTTPConnection:
        async with self._cond:
            while True:
                if self._idle:
                    return self._idle.pop()
                if self._open < self.limits.max_connections:
                    self._open += 1
                    break
                await self._cond.wait()
        try:
            return await open_connection(self.ip, self.port, self.host_header, self.tls,
                                         self.server_hostname, self.limits)
        except BaseException:
            async with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    async def _release(self, conn: HTTPConnection) -> None:
        if not conn.reusable:
            await conn.close()
        async with self._cond:
            if conn.reusable:
                self._idle.append(conn)
            else:
                self._open -= 1
            self._cond.notify()

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: list[tuple[str, str]] | None = None, max_body: int | None = None) -> Response:
        conn = await self._acquire()
        self.requests += 1
        try:
            return await conn.request(method, path, body=body, headers=headers,
                                      timeout=self.limits.request_timeout,
                                      max_body=max_body or self.limits.max_body)
        finally:
            await self._release(conn)

    async def try_request(self, method: str, path: str, body: bytes = b"",
                          headers: list[tuple[str, str]] | None = None,
                          max_body: int | None = None) -> Response | None:
        """Like request(), but a failed optional request is just 'no answer'."""
        try:
            return await self.request(method, path, body, headers, max_body)
        except (HTTPError, ConnectError):
            return None

    async def close(self) -> None:
        async with self._cond:
            idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()

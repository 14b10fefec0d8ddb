"""One port, three protocols: sniff the first bytes (peeked, never consumed) and hand the socket over.

TLS ClientHello (0x16) -> TLS, then ALPN picks h2 or HTTP/1.1; the HTTP/2 preface -> gRPC (v3
side); anything else -> HTTP/1.1. An optional PROXY protocol header from a trusted balancer is
consumed first. Connection caps and idle time are enforced here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import etcdsec.honeypot.serve.cmuxsniff as cmuxsniff
from etcdsec.honeypot.context import SensorContext
from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.serve import grpc_shell
from etcdsec.honeypot.serve.guard import Guard, trusted
from etcdsec.honeypot.serve.http1 import ClientApp, Http1Connection, PeerApp
from etcdsec.honeypot.serve.shedding import pick_victim
from etcdsec.honeypot.v3.state import V3State
from etcdsec.honeypot.wire import proxyproto

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PEEK = 24


@dataclass
class ListenerOptions:
    tls: ssl.SSLContext | None = None  # when set, TLS is accepted (plain text still is, as etcd does not)
    proxy_protocol: bool = False
    trusted_proxies: list[Any] = field(default_factory=list)  # ip networks allowed to send PROXY / XFF
    trust_xff: bool = False
    peer: bool = False  # serve the peer port routes


def keepalive(conn: socket.socket) -> None:
    """TCP keepalive as Go's net.Listen gives every accepted connection (15 s idle, 15 s interval):
    a client that vanished without a FIN is found, so a watch held for it ends."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 15)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 15)
    except OSError:
        pass


class Listener:
    def __init__(self, ctx: SensorContext, app: ClientApp | PeerApp, guard: Guard,
                 options: ListenerOptions | None = None, v3_state: V3State | None = None) -> None:
        self.ctx, self.app, self.guard = ctx, app, guard
        self.options = options or ListenerOptions()
        self.v3_state = v3_state
        self.sockets: list[socket.socket] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.accepting: list[asyncio.Task[None]] = []
        self.sessions = 0
        self.active = 0
        self.shed = 0
        self.live: dict[str, tuple[Session, asyncio.Task[Any]]] = {}  # session id -> (session, its task)
        self._shedding: set[str] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        return self.adopt(sock)

    def adopt(self, sock: socket.socket) -> tuple[str, int]:
        """Serve an already listening socket (a worker's share of a SO_REUSEPORT group)."""
        sock.setblocking(False)
        self.sockets.append(sock)
        self.accepting.append(asyncio.create_task(self._accept_loop(sock)))
        return sock.getsockname()[:2]

    async def close(self) -> None:
        for task in self.accepting:
            task.cancel()
        for sock in self.sockets:
            sock.close()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)

    async def _accept_loop(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _addr = await loop.sock_accept(lsock)
            except OSError:
                await asyncio.sleep(0.05)  # EMFILE and friends: back off instead of spinning
                continue
            keepalive(conn)
            task = asyncio.create_task(self._serve(conn))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            peer = conn.getpeername()
            local = conn.getsockname()
        except OSError:  # gone between accept and here
            conn.close()
            return
        session = Session.new(peer[0], peer[1], local[0], local[1])
        # Behind a trusted balancer every connection comes from its address: the per-source cap is
        # applied to the real client once PROXY protocol names it (see _dispatch).
        via_proxy = (self.options.proxy_protocol or self.options.trust_xff) and \
            trusted(session.src_ip, self.options.trusted_proxies)
        over_cap = self.guard.full() and not (not via_proxy and self.guard.source_full(session.src_ip)) \
            and self._shed_for(session)
        if not self.guard.admit(session.src_ip, per_source=not via_proxy, over_cap=over_cap):
            self.ctx.events.emit("session.refused", session, reason="connection cap")
            conn.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self.live[session.id] = (session, task)
        admitted = [(session.src_ip, not via_proxy)]  # (key, per-source counted); the first also counts total
        self.sessions += 1
        self.active += 1
        started = time.monotonic()
        writer = None
        reason = "closed"
        opened: list[Any] = []  # the transport's closer once one exists: closed even after an error
        try:
            writer, reason = await self._dispatch(conn, session, admitted, opened)
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError) as exc:
            reason = type(exc).__name__
        except asyncio.CancelledError:
            if session.id not in self._shedding:
                reason = "shutdown"
                raise
            reason = "shed"  # closed to make room for a newcomer (see _shed_for)
            task.uncancel()  # handled: the closing below may wait again
        except Exception as exc:  # a bug must cost one connection, never the sensor
            reason = "sensor error"
            self.ctx.events.emit("sensor.error", session, error=f"{type(exc).__name__}: {exc}"[:300])
        finally:
            self.active -= 1
            self.live.pop(session.id, None)
            self._shedding.discard(session.id)
            first_key, first_per_source = admitted[0]
            self.guard.release(first_key, per_source=first_per_source)
            for key, _ in admitted[1:]:
                self.guard.release_source(key)
            writer = writer if writer is not None else (opened[-1] if opened else None)
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1)
            else:
                conn.close()
            self.ctx.events.emit("session.closed", session, duration=round(time.monotonic() - started, 3),
                                 reason=reason)

    def _shed_for(self, newcomer: Session) -> bool:
        """At the total cap: close the live connection that has sent least so `newcomer` is served."""
        victim = pick_victim((s for s, _ in self.live.values()), time.monotonic(),
                             lambda src: self.guard.per_source.get(src, 0))
        if victim is None:
            return False
        _, task = self.live.pop(victim.id)
        self._shedding.add(victim.id)
        self.shed += 1
        self.ctx.events.emit("session.shed", victim, reason="connection cap", for_src_ip=newcomer.src_ip,
                             bytes_in=victim.bytes_in, requests_in=victim.requests_in,
                             duration=round(time.monotonic() - victim.started, 3))
        task.cancel()
        return True

    async def _peek(self, conn: socket.socket, want: int, timeout: float) -> bytes:
        """Up to `want` bytes without consuming them; fewer if the client stops sending."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        grace_until: float | None = None
        data = b""
        while True:
            try:
                data = conn.recv(want, socket.MSG_PEEK)
            except BlockingIOError:
                pass
            else:
                if not data:
                    return b""  # closed before sending anything
                if len(data) >= want or not _could_grow(data, self.options.proxy_protocol):
                    return data
                # a prefix that more bytes could still change (h2 preface, PROXY header): short grace
                grace_until = grace_until or loop.time() + 0.05
                if loop.time() >= grace_until:
                    return data
                await asyncio.sleep(0.005)
                continue
            left = deadline - loop.time()
            if left <= 0:
                return data
            fut: asyncio.Future[None] = loop.create_future()
            loop.add_reader(conn.fileno(), _wake, fut)
            try:
                await asyncio.wait_for(fut, left)
            except TimeoutError:
                return data
            finally:
                loop.remove_reader(conn.fileno())

    async def _dispatch(self, conn: socket.socket, session: Session, admitted: list[tuple[str, bool]],
                        opened: list[Any]) -> tuple[Any, str]:
        limits = self.ctx.limits  # the first bytes are part of the first request head
        idle = min(limits.idle_timeout_s, limits.header_timeout_s)
        head = await self._peek(conn, PEEK, idle)
        if self.options.proxy_protocol and head and proxyproto.looks_like_proxy(head):
            if not trusted(session.src_ip, self.options.trusted_proxies):
                self.ctx.events.emit("malformed", session, protocol="proxy", reason="PROXY header from untrusted peer",
                                     raw_b64=base64.b64encode(head).decode())
                return None, "untrusted proxy"
            if not await self._consume_proxy(conn, session, idle):
                return None, "bad proxy header"
            if session.peer_ip:  # the real client is known now: its own connection cap applies
                if not self.guard.admit_source(session.src_ip):
                    self.ctx.events.emit("session.refused", session, reason="connection cap")
                    return None, "connection cap"
                admitted.append((session.src_ip, True))
            head = await self._peek(conn, PEEK, idle)
        self.ctx.events.emit("session.connect", session, protocol=_protocol_name(head))
        if not head:
            return None, "no data"
        if head[0] == 0x16 and self.options.tls is not None:
            session.tls = True
            return await self._http1(conn, session, opened, self.options.tls)  # ALPN h2 is handed on from there
        if self.app.cmux:  # the plain-text client port of a 3.x persona (TLS went above)
            refused, head = await cmuxsniff.judge(conn, self.ctx, session, idle)  # etcd's cmux, byte for byte
            if refused:
                return None, refused
        is_h2 = H2_PREFACE.startswith(head[: len(H2_PREFACE)]) and head.startswith(b"PRI ")
        if not is_h2 and head[0] != 0x16:
            return await self._http1(conn, session, opened)
        reader, writer = await self._streams(conn)
        opened.append(writer)
        if is_h2:
            return writer, await self._h2(session, reader, writer)
        raw = await _read_some(reader, 4096, 2.0)  # a TLS ClientHello where no TLS is configured
        self.ctx.events.emit("malformed", session, protocol="tls", reason="TLS on a plain-text listener",
                             raw_b64=base64.b64encode(raw).decode(), raw_len=len(raw))
        return writer, "tls on plain port"

    async def _http1(self, conn: socket.socket, session: Session, opened: list[Any],
                     tls: ssl.SSLContext | None = None) -> tuple[Any, str]:
        """HTTP/1.x, plain or TLS (the fast reader first, h11 from its first odd request); over TLS
        with ALPN h2, gRPC from the start."""
        connection = Http1Connection(self.app, self.ctx, session, self.guard, self._xff_ok(session))
        await connection.attach(conn, tls)
        opened.append(connection)
        reason = await connection.serve()
        if connection.h2_streams is not None:
            reader, writer, leftover = connection.h2_streams
            reader.feed_data(leftover)
            return connection, await self._h2(session, reader, writer)
        return connection, reason

    def _xff_ok(self, session: Session) -> list[Any] | None:
        """The trusted networks when this connection's X-Forwarded-For may be believed, else None."""
        if self.options.trust_xff and trusted(session.peer_ip or session.src_ip, self.options.trusted_proxies):
            return self.options.trusted_proxies
        return None

    async def _consume_proxy(self, conn: socket.socket, session: Session, idle: float) -> bool:
        """Read the PROXY header off the socket and take the client address from it."""
        data = await self._peek(conn, 232, idle)
        try:
            header = proxyproto.parse(data)
        except proxyproto.ProxyError as exc:
            self.ctx.events.emit("malformed", session, protocol="proxy", reason=str(exc),
                                 raw_b64=base64.b64encode(data).decode())
            return False
        if header is None:
            return False
        conn.setblocking(True)
        try:
            conn.settimeout(1.0)
            _ = conn.recv(header.length, socket.MSG_WAITALL)
        finally:
            conn.setblocking(False)
        if header.src_ip is not None:
            session.peer_ip = session.src_ip
            session.src_ip = header.src_ip.removeprefix("::ffff:")
            session.src_port = header.src_port or session.src_port
        return True

    async def _streams(self, conn: socket.socket) -> tuple[Any, Any]:
        """Plain-text streams (h2c gRPC; a stray ClientHello)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self.ctx.limits.max_header_bytes * 4)
        protocol = asyncio.StreamReaderProtocol(reader)
        transport, _ = await asyncio.wait_for(loop.connect_accepted_socket(lambda: protocol, conn), timeout=15.0)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return reader, writer

    async def _h2(self, session: Session, reader: Any, writer: Any) -> str:
        if self.v3_state is None or not self.ctx.persona.grpc_enabled:
            raw = await _read_some(reader, 4096, 1.0)
            self.ctx.events.emit("malformed", session, protocol="h2", reason="HTTP/2 with gRPC unavailable",
                                 raw_b64=base64.b64encode(raw).decode(), raw_len=len(raw))
            return "h2 refused"
        # guard: gRPC shares the sensor's per-source rate limit instead of a bucket per connection;
        # http: the client port's routes answer plain HTTP/2 requests (TLS + ALPN h2), as etcd's do.
        http = self.app.h2_request if isinstance(self.app, ClientApp) else None
        await grpc_shell.serve_h2(self.ctx, self.v3_state, session, reader, writer, b"", guard=self.guard, http=http)
        return "closed"


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _could_grow(data: bytes, proxy: bool) -> bool:
    """Whether waiting for more bytes can change the protocol decision (a PROXY header only when
    PROXY protocol is on: else "\r\n\r\n" would wait as a v2 signature's start, which etcd does not)."""
    if H2_PREFACE.startswith(data):
        return True
    if not proxy:
        return False
    if data.startswith(b"PROXY "):
        return b"\r\n" not in data
    if proxyproto.V2_SIGNATURE.startswith(data[:12]):
        try:
            return proxyproto.parse(data) is None
        except proxyproto.ProxyError:
            return False
    return b"PROXY ".startswith(data)


def _protocol_name(head: bytes) -> str:
    if not head:
        return "none"
    if head[0] == 0x16:
        return "tls"
    if head.startswith(b"PRI * HTTP/2"):
        return "h2c"
    return "http/1.1"


async def _read_some(reader: asyncio.StreamReader, n: int, timeout: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(n), timeout)
    except (TimeoutError, ConnectionError):
        return b""


def parse_networks(specs: list[str]) -> list[Any]:
    return [ipaddress.ip_network(s, strict=False) for s in specs]

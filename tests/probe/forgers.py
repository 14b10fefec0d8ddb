"""Servers that forge etcd's answers, for tests: each says what a liar on port 2379 would say.

A forger answers by path from a table (the longest matching prefix wins), 200 with `default` headers
and body for anything else, and keeps the connection alive the way etcd does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Answer = tuple[int, list[tuple[str, str]], bytes]

VERSION_35 = b'{"etcdserver":"3.5.1","etcdcluster":"3.5.0"}'
# A v3 ResponseHeader as etcd 3.5.1 sent it in the test bed.
HEADER = (b'"header":{"cluster_id":"11313014310491733454","member_id":"12051723177237743377",'
          b'"revision":"7","raft_term":"2"}')
STATUS = b'{' + HEADER + b',"version":"3.5.1","dbSize":"20480","leader":"12051723177237743377"}'


def forger(routes: dict[str, Answer], default: Answer) -> Callable[..., Awaitable[None]]:
    """A handler answering `routes` ("GET /version", "POST /v3/kv/range", or a bare path for any method)."""

    def answer(method: str, path: str) -> Answer:
        best = ""
        for key in routes:
            want_method, _, want_path = key.rpartition(" ")
            if (not want_method or want_method == method) and path.startswith(want_path) and len(key) > len(best):
                best = key
        return routes[best] if best else default

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(1000):  # bounded: no test sends more on one connection
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                break
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = next((int(ln.split(":", 1)[1]) for ln in lines if ln.lower().startswith("content-length:")), 0)
            if length:
                await reader.readexactly(length)
            status, headers, body = answer(method, path)
            out = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers)]
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        writer.close()

    return handler

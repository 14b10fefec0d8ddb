"""--shared-keyspace for v2: a forwarding worker's /v2 requests answered by the owner's v2 API.

The request goes over the keyspace link as it was parsed (method, target, headers, body) and the
answer comes back as status, body and headers; events and honeytoken checks stay with the worker
that holds the connection. A held `wait=true` watch is not forwarded: it is served by the worker's
own v2 store (a gap, docs/honeypot.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import msgpack

from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.v3 import errors
from etcdsec.honeypot.v3.remote import RemoteKeyspace
from etcdsec.honeypot.wire.go_response import Response
from etcdsec.honeypot.wire.request import Request

V2_CALL = "v2/request"  # the CALL path of a forwarded v2 request

V2Handler = Callable[[Session, Request], Coroutine[Any, Any, Response]]
# runs a handler's coroutine until it first waits (serve/inline_start.py): its Response, or the Task
EagerStart = Callable[[Coroutine[Any, Any, Response]], Response | asyncio.Task[Response]]


def forwardable(req: Request) -> bool:
    """Everything but a held watch (its answer is a stream that stays here)."""
    return not (req.path.startswith("/v2/keys") and "wait" in req.form())


async def forward(remote: RemoteKeyspace, session: Session, req: Request) -> Response:
    payload = msgpack.packb([req.method, req.target, [list(h) for h in req.headers], req.body, req.http10],
                            use_bin_type=True)
    try:
        answer = await remote.call_async(V2_CALL, session.src_ip, None, payload)
        status, body, headers, sniff = msgpack.unpackb(answer, raw=False)
    except errors.V3Error as err:  # the owner is away: as an etcd v2 member without a leader
        body = (b'{"errorCode":300,"message":"Raft Internal Error","cause":"' + err.message.encode()
                + b'","index":0}\n')
        return Response(500, body, [("Content-Type", "application/json")])
    return Response(status, body, [(k, v) for k, v in headers], sniff_type=sniff)


def answer(start: EagerStart, handle: V2Handler, session: Session, payload: bytes) -> bytes:
    """The owner's side: run the request on its v2 API (which never waits for a non-watch request)."""
    method, target, headers, body, http10 = msgpack.unpackb(payload, raw=False)
    req = Request(method, target, [(k, v) for k, v in headers], body, http10)
    resp = start(handle(session, req))
    if not isinstance(resp, Response):  # it waited after all: never hold the owner for it
        resp.cancel()
        raise errors.V3Error(errors.Code.UNKNOWN, "etcdserver: request timed out")
    return msgpack.packb([resp.status, resp.body if resp.stream is None else b"", resp.headers, resp.sniff_type],
                         use_bin_type=True)

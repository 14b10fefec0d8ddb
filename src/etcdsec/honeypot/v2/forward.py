"""One keyspace for all workers, v2: a forwarding worker's /v2 requests answered by the owner's v2 API.

The request goes over the keyspace link as it was parsed (method, target, headers, body) and the
answer comes back as status, body and headers; events and honeytoken checks stay with the worker
that holds the connection. A `wait=true` watch is held by the owner (whose store sees every write):
its head comes back at once, as etcd sends it, and its body when the event happens (V2_CHUNK and
V2_END frames); a client that leaves lets go of the owner's watcher.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import msgpack

from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.v3 import errors
from etcdsec.honeypot.v3.remote import HeldBody, RemoteKeyspace
from etcdsec.honeypot.wire.go_response import Response
from etcdsec.honeypot.wire.request import Request

V2_CALL = "v2/request"  # the CALL path of a forwarded v2 request

V2Handler = Callable[[Session, Request], Coroutine[Any, Any, Response]]
# runs a handler's coroutine until it first waits (serve/inline_start.py): its Response, or the Task
EagerStart = Callable[[Coroutine[Any, Any, Response]], Response | asyncio.Task[Response]]


def held(req: Request) -> bool:
    """A request the owner may answer with a body it holds open (a v2 watch)."""
    return req.path.startswith("/v2/keys") and "wait" in req.form()


async def forward(remote: RemoteKeyspace, session: Session, req: Request) -> Response:
    payload = msgpack.packb([req.method, req.target, [list(h) for h in req.headers], req.body, req.http10,
                             req.body_error], use_bin_type=True)
    body_stream: HeldBody | None = None
    try:
        if held(req):
            body_stream, answer = await remote.hold(session.src_ip, payload)
        else:
            answer = await remote.call_async(V2_CALL, session.src_ip, None, payload)
        status, body, headers, sniff, streamed = msgpack.unpackb(answer, raw=False)
    except errors.V3Error as err:  # the owner is away: as an etcd v2 member without a leader
        body = (b'{"errorCode":300,"message":"Raft Internal Error","cause":"' + err.message.encode()
                + b'","index":0}\n')
        return Response(500, body, [("Content-Type", "application/json")])
    resp = Response(status, body, [(k, v) for k, v in headers], sniff_type=sniff)
    if body_stream is not None:
        if streamed:
            resp.stream = body_stream.body()
        else:
            body_stream.end()  # the owner answered at once (a bad form, wait=false): nothing is held
    return resp


def _run(start: EagerStart, handle: V2Handler, session: Session, payload: bytes) -> Response:
    method, target, headers, body, http10, body_error = msgpack.unpackb(payload, raw=False)
    req = Request(method, target, [(k, v) for k, v in headers], body, http10, body_error)
    resp = start(handle(session, req))
    if not isinstance(resp, Response):  # it waited after all: never hold the owner for it
        resp.cancel()
        raise errors.V3Error(errors.Code.UNKNOWN, "etcdserver: request timed out")
    return resp


def _head(resp: Response) -> bytes:
    return msgpack.packb([resp.status, resp.body if resp.stream is None else b"", resp.headers, resp.sniff_type,
                          resp.stream is not None], use_bin_type=True)


def answer(start: EagerStart, handle: V2Handler, session: Session, payload: bytes) -> bytes:
    """The owner's side: run the request on its v2 API (which never waits for a non-watch request)."""
    return _head(_run(start, handle, session, payload))


def answer_held(start: EagerStart, handle: V2Handler, session: Session,
                payload: bytes) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """The owner's side of a v2 wait: the head now, and the body's stream to send on as it comes."""
    resp = _run(start, handle, session, payload)
    return _head(resp), resp.stream

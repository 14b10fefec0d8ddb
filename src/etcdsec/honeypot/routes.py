"""etcd's HTTP routes on the client and peer ports, per persona (what a handler answers).

The bytes on the wire are gohttp's job and the connection handling is http1's; this module only
decides the `Response` for a `Request`, as etcd's ServeMux and handlers do.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections import OrderedDict
from collections.abc import AsyncIterator
from urllib.parse import quote_from_bytes, unquote_to_bytes

from etcdsec.honeypot.context import SensorContext
from etcdsec.honeypot.core.events_fields import request_event_fields
from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.endpoints import config_log
from etcdsec.honeypot.endpoints.surface import (
    EtcdSurface,
    cluster_id_hex,
    peer_members_body,
    raft_probing_body,
    version_body,
)
from etcdsec.honeypot.v2 import forward
from etcdsec.honeypot.v2.api import V2Api
from etcdsec.honeypot.v2.keystore import V2Store
from etcdsec.honeypot.v3.gateway import json_gateway
from etcdsec.honeypot.v3.remote import RemoteKeyspace
from etcdsec.honeypot.v3.state import V3State
from etcdsec.honeypot.wire import go_response
from etcdsec.honeypot.wire.go_http_rules import connection_tokens
from etcdsec.honeypot.wire.go_response import Response, json_response, method_not_allowed, not_found, text_error
from etcdsec.honeypot.wire.request import Request, token_view

MAX_V2_NAMESPACES = 256


class ClientApp:
    """Routes of etcd's client port for the persona; `v3_state` comes from the v3 side (or None)."""

    def __init__(self, ctx: SensorContext, v2: V2Store | None = None, v3_state: V3State | None = None,
                 remote: RemoteKeyspace | None = None) -> None:
        self.ctx = ctx
        self.remote = remote  # with workers, in a worker other than the owner: v2 requests go there
        self.v2_store = v2 or V2Store(start_index=3, max_keys=ctx.limits.max_keys,
                                      max_bytes=ctx.limits.max_store_bytes, max_watchers=ctx.limits.max_watches)
        self.v2 = V2Api(ctx, self.v2_store)
        # --namespace-writes: each source gets its own copy of the seeded v2 store (LRU-bounded)
        self.v2_by_source: OrderedDict[str, V2Api] = OrderedDict()
        self.v3_state = v3_state
        # The v3 JSON gateway when this persona has a v3 side (the WebSocket path in http1 reaches it here).
        self.gateway = json_gateway if v3_state is not None else None
        self.cors = bool(ctx.persona.extra.get("cors", True))
        self.cmux = ctx.persona.grpc_enabled  # one port for HTTP and gRPC: cmux picks the protocol
        self.surface = EtcdSurface(ctx, v3_state)  # /metrics and /debug/vars
        self._subtree_names: frozenset[str] | None = None

    async def h2_request(self, session: Session, method: str, path: str, headers: list[tuple[bytes, bytes]],
                         body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The same routes for a non-gRPC HTTP/2 stream (TLS + ALPN h2), framed as Go's h2 server does."""
        # h2 refuses upper-case names (RFC 9113 8.2.1): they are lower-case already
        fields = [(k, v) for k, v in headers if not k.startswith(b":")]
        req = Request(method, path, fields, body)
        self.ctx.honeytokens.check(session, token_view(method, path, fields, body))
        resp = await self.handle(session, req, live=False)
        if resp.stream is not None:  # h2 streams are not held open here: send what is known
            chunks = [piece async for piece in resp.stream]  # type: ignore[attr-defined]
            resp.body = b"".join(chunks)
        out = go_response.h2_headers(resp, cors=self.cors, head=method == "HEAD")
        self.ctx.events.emit_fields("http.request", session, request_event_fields(
            method, path, "2", [(k, k, v) for k, v in fields], resp.status, session.tls, body,
            self.ctx.limits.max_logged_body))
        return resp.status, out, b"" if method == "HEAD" else resp.body

    async def v2_handle(self, session: Session, req: Request) -> Response:
        """A /v2 request on this process's v2 API (the source's own with --namespace-writes)."""
        return await self._v2_for(session).handle(req)

    def _v2_for(self, session: Session) -> V2Api:
        if not self.ctx.namespace_writes:
            return self.v2
        api = self.v2_by_source.get(session.src_ip)
        if api is None:
            api = V2Api(self.ctx, self.v2_store.namespace_copy())
            self.v2_by_source[session.src_ip] = api
            if len(self.v2_by_source) > MAX_V2_NAMESPACES:
                self.v2_by_source.popitem(last=False)
        else:
            self.v2_by_source.move_to_end(session.src_ip)
        return api

    def subtrees(self) -> list[str]:
        """ServeMux patterns ending in "/": a request for the bare name is redirected to them."""
        trees = [p + "/" for p in self.ctx.persona.v3_prefixes_served] if self.v3_state is not None else []
        if self.ctx.persona.v2_enabled:
            trees += ["/v2/keys/", "/v2/members/", "/v2/auth/"]
        return trees

    def reads_body(self, method: str, target: str, headers: list[tuple[bytes, bytes, bytes]]) -> bool:
        """Whether etcd's handler for this request reads its body: Go sends `100 Continue` on that
        first read only (a handler that never reads gets its answer out at once; measured on 3.4.23
        and 3.5.1). Gateway routes decode their body; v2 key writes parse a form body (Go's
        ParseForm: POST/PUT/PATCH with a form content type); v2 members and auth writes decode JSON;
        `/config/local/log` PUT decodes JSON."""
        persona = self.ctx.persona
        path = target.split("?", 1)[0]
        if self.v3_state is not None and persona.grpc_enabled:
            canon = persona.v3_path(path)
            if canon is not None:
                return method == "POST" and json_gateway.reads_body(canon, persona)
        if persona.v2_enabled and path.startswith("/v2/"):
            if path.startswith("/v2/keys"):
                ctype = next((v for _, low, v in headers if low == b"content-type"), b"")
                return method in ("POST", "PUT", "PATCH") and \
                    ctype.split(b";")[0].strip().lower() == b"application/x-www-form-urlencoded"
            if path.startswith("/v2/members"):
                return method in ("POST", "PUT")
            if path.startswith("/v2/auth"):
                return method == "PUT"
            return False
        return path == config_log.PATH and method == "PUT" and persona.extra.get("config_local_log", False)

    def _gateway_outside_cors(self, path: str) -> bool:
        """Before 3.4 the gateway's mux is not behind etcd's CORS wrapper (embed/serve.go@v3.3.25): a
        preflight on a gateway path gets grpc-gateway's own 405/404 (measured on 3.3.25)."""
        persona = self.ctx.persona
        return persona.major_minor < (3, 4) and any(path.startswith(p + "/") for p in persona.v3_prefixes_served)

    def _bare_subtree(self, path: str) -> bool:
        """Whether `path` names a subtree without its slash (ServeMux redirects it); the set is fixed."""
        if self._subtree_names is None:
            self._subtree_names = frozenset(t[:-1] for t in self.subtrees()) - {"/v2/keys", "/v2/members"}
        return path in self._subtree_names

    async def handle(self, session: Session, req: Request, live: bool = True) -> Response:
        """`live`: streams may stay open for later events (HTTP/1); False sends what is known now."""
        clean = _unclean_redirect(req.raw_path)
        if clean is not None and req.method != "CONNECT":
            return _redirect(clean, req)
        if req.method == "OPTIONS" and not self._gateway_outside_cors(req.path):
            return Response(200, b"")  # etcd's CORS wrapper answers every preflight (headers only with --cors)
        path = req.path
        if self._bare_subtree(path):
            return _redirect(path + "/", req)
        if path == "/version":
            return json_response(200, version_body(self.ctx)) if req.method == "GET" else method_not_allowed("GET")
        if path == "/health":
            if req.method != "GET":
                return method_not_allowed("GET")
            return Response(200, self.ctx.persona.health_body.encode(), sniff_type=True)
        if path == "/metrics":
            body, headers = self.surface.metrics_response(session, req.header(b"accept-encoding"))
            return Response(200, body, headers)
        if path == "/debug/vars":
            if req.method != "GET":  # etcd wraps expvar's handler in its GET-only check
                return method_not_allowed("GET")
            return Response(200, self.surface.debug_vars_body(session),
                            [("Content-Type", "application/json; charset=utf-8")])
        if path == config_log.PATH and self.ctx.persona.extra.get("config_local_log", False):
            return config_log.config_log_response(req.method, req.body)
        if path.startswith("/v2/") and self.ctx.persona.v2_enabled:
            if self.remote is not None:  # one keyspace for all workers: the owner answers
                return await forward.forward(self.remote, session, req)
            return await self.v2_handle(session, req)
        if (self.v3_state is not None and self.ctx.persona.v3_path(path) is not None and _wants_websocket(req)
                and self.ctx.persona.extra.get("gateway_websocket", True)):
            # etcd wraps the gateway in grpc-websocket-proxy (gorilla): GET upgrades, others are refused
            # (since 3.3: before, the upgrade request reaches grpc-gateway as any other request)
            if req.method != "GET":
                return text_error(405, "Method Not Allowed", [("Sec-Websocket-Version", "13")])
            if json_gateway.is_streaming(self.ctx, path) and req.header(b"sec-websocket-key"):
                return Response(101, b"", websocket=path)
        if self.v3_state is not None and self.ctx.persona.v3_path(path) is not None:
            result = json_gateway.handle(self.ctx, self.v3_state, session, req.method, path, req.headers, req.body,
                                         req.body_error)
            if asyncio.iscoroutine(result):  # --shared-keyspace: the keyspace owner answers
                result = await result
            if result is not None:
                status, headers, body = result
                kept = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers
                        if k.lower() not in (b"date", b"content-length")]
                resp = Response(status, body, kept)
                if any(k.lower() == "trailer" for k, _ in kept):  # 3.4 streams RPC errors with a trailer
                    resp.trailers = [(k.decode(), v.decode()) for k, v in json_gateway.TRAILERS]
                # the mux's own refusals (405 for a GET or PUT) are http.Error text with a length
                plain_error = any(k.lower() == "content-type" and v.startswith("text/plain") for k, v in kept)
                if json_gateway.is_streaming(self.ctx, path) and not plain_error:
                    if live and status == 200 and json_gateway.is_watch(self.ctx, path):
                        # held open like etcd's: later writes arrive as lines (bounded by wait_timeout_s)
                        resp.stream = json_gateway.live_watch(self.ctx, self.v3_state, session, path, req.body)
                    else:
                        resp.stream = _lines(body)  # keepalive: one JSON line per chunk
                return resp
        return not_found()


def _wants_websocket(req: Request) -> bool:
    upgrade = (req.header(b"upgrade") or b"").lower()
    return upgrade == b"websocket" and b"upgrade" in connection_tokens(req.header(b"connection"))


async def _lines(body: bytes) -> AsyncIterator[bytes]:
    for line in body.splitlines(keepends=True):
        yield line


class PeerApp:
    """The peer port as a scanner sees it: /members, /version, /raft/probing, and the raft and
    lease endpoints refusing what is not a peer (etcd checks versions and the cluster id first)."""

    def __init__(self, ctx: SensorContext) -> None:
        self.ctx = ctx
        self.cors = False
        self.cmux = False  # the peer port is served by net/http alone

    def reads_body(self, method: str, target: str, headers: list[tuple[bytes, bytes, bytes]]) -> bool:
        return False  # what a scanner reaches here is refused before any read (see ClientApp.reads_body)

    async def handle(self, session: Session, req: Request) -> Response:
        clean = _unclean_redirect(req.raw_path)
        if clean is not None and req.method != "CONNECT":
            return _redirect(clean, req)
        cid = [("X-Etcd-Cluster-Id", cluster_id_hex(self.ctx))]
        if req.path in ("/raft", "/raft/"):
            return method_not_allowed("POST") if req.method != "POST" else self._incompatible(req, cid)
        if req.path.startswith("/raft/stream/") or req.path.startswith("/raft/snapshot"):
            return self._incompatible(req, cid)
        if req.path.startswith("/leases"):
            if req.method != "POST":
                return text_error(405, "Method Not Allowed")
            return self._incompatible(req, cid)
        if req.path.startswith("/members/promote/") and self.ctx.persona.major_minor >= (3, 4):  # learners: 3.4
            if req.method != "POST":
                return method_not_allowed("POST")
            return text_error(404, "membership: ID not found", cid)
        if req.path == "/members":
            if req.method != "GET":
                return method_not_allowed("GET")
            return json_response(200, peer_members_body(self.ctx), [("X-Etcd-Cluster-Id", cluster_id_hex(self.ctx))])
        if req.path == "/version":
            return json_response(200, version_body(self.ctx)) if req.method == "GET" else method_not_allowed("GET")
        if req.path == "/raft/probing":
            return Response(200, raft_probing_body(), sniff_type=True)
        return not_found()

    def _incompatible(self, req: Request, cid: list[tuple[str, str]]) -> Response:
        """A request without a peer's version headers, or from another cluster: 412 as etcd answers."""
        version = [("X-Server-Version", self.ctx.persona.version)]
        if req.header(b"x-server-version") is None or req.header(b"x-min-cluster-version") is None:
            return text_error(412, "incompatible version", cid + version)
        if req.header(b"x-etcd-cluster-id") != cluster_id_hex(self.ctx).encode():
            return text_error(412, "cluster ID mismatch", cid + version)
        return text_error(400, "bad request")


def _unclean_redirect(raw_path: str) -> str | None:
    """Where Go's ServeMux redirects a request whose path is not clean, or None. Go cleans the
    decoded path (`%2e%2e` and `%2F%2F` count) and writes the Location as url.URL.String escapes
    the cleaned path (EscapedPath: the raw form no longer matches, so Go's own escaping)."""
    if raw_path.startswith("/") and "//" not in raw_path and "/." not in raw_path and "%" not in raw_path:
        return None  # nothing to resolve (the usual case): skip normpath
    path = unquote_to_bytes(raw_path).decode("latin-1")  # the bytes as Go has them, one char each
    clean = _resolve_path(path)
    return None if clean == path else quote_from_bytes(clean.encode("latin-1"), safe=_GO_PATH_SAFE)


_GO_PATH_SAFE = "$&+,/:;=@"  # url.shouldEscape(encodePath) keeps these and the unreserved ones


def _resolve_path(p: str) -> str:
    if not p.startswith("/"):
        p = "/" + p
    cleaned = posixpath.normpath(p)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if p.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def _redirect(location: str, req: Request) -> Response:
    query = req.target.split("?", 1)[1] if "?" in req.target else ""
    target = location + ("?" + query if query else "")
    body = f'<a href="{target}">Moved Permanently</a>.\n\n'.encode() if req.method in ("GET", "HEAD") else b""
    headers = [("Location", target)]
    if body:
        headers.append(("Content-Type", "text/html; charset=utf-8"))
    return Response(301, body, headers)

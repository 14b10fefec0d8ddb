"""One gRPC stream's state in a GrpcConnection (server.py): what it asked, what is queued for it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from etcdsec.honeypot.v3 import service
from etcdsec.honeypot.v3.grpc.request_head import BASE_CONTENT_TYPE
from etcdsec.honeypot.v3.remote import RemoteWatch
from etcdsec.honeypot.v3.watch import WatchStream


@dataclass(slots=True)
class GrpcStream:
    id: int
    path: str = ""
    method: service.Method | None = None
    user_agent: str = ""
    encoding: str = ""
    content_type: str = BASE_CONTENT_TYPE  # what we answer with: grpc-go echoes the content-subtype
    token: str | None = None  # `token` / `authorization` metadata (etcd checks it even with auth off)
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytearray = field(default_factory=bytearray)
    headers_sent: bool = False
    trailers: list[tuple[bytes, bytes]] | None = None  # queued until the outbox drains
    done: bool = False
    watch: WatchStream | RemoteWatch | None = None
    opened: float = field(default_factory=time.monotonic)
    # A plain HTTP request on HTTP/2 (TLS + ALPN h2): etcd's Go server answers it with its HTTP routes.
    http_headers: list[tuple[bytes, bytes]] | None = None
    end_after_outbox: bool = False
    held: bool = False  # a call the persona's release never answers (errors.NoReply): left open
    # the client has not ended its side (no END_STREAM yet): grpc-go follows its trailers with
    # RST_STREAM(NO_ERROR) then (http2_server.go WriteStatus; measured by the field corpus)
    client_open: bool = True

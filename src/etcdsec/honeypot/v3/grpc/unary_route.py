"""Which request blocks the server takes as a plain unary call, judged once per block.

A block routed here is one `GrpcConnection._on_request` would accept for a unary method with nothing
left to decide: gRPC's own content type (no subtype: the answer's content type is the plain one), a
method this persona serves, no compression. Anything else (health, Watch and LeaseKeepAlive, unknown
methods, gzip, subtypes, non-gRPC streams) goes the usual way, event by event. Pure: the same block,
persona and session give the same verdict, so `LeanH2` keeps it per block.
"""

from __future__ import annotations

from dataclasses import dataclass

from etcdsec.honeypot.core.persona import Persona
from etcdsec.honeypot.v3 import service
from etcdsec.honeypot.v3.grpc.request_head import RequestHead, request_head


@dataclass(frozen=True, slots=True)
class Route:
    head: RequestHead
    method: service.Method


def unary_route(persona: Persona, headers: list[tuple[bytes, bytes]]) -> Route | None:
    head = request_head(headers)
    method = service.METHODS.get(head.path)
    if head.subtype != "" or head.encoding not in ("", "identity") or method is None or method.streaming \
            or not service.available(method, persona):
        return None
    return Route(head, method)

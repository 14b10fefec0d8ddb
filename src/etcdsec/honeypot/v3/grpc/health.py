"""grpc.health.v1 as etcd serves it: grpc-go's health server, with only the service "" set SERVING.

grpc_health_probe and Kubernetes-style gRPC probes ask for a service by name; etcd never sets one, so
Check of a named service is trailers-only NOT_FOUND "unknown service" and Watch of one streams
SERVICE_UNKNOWN and stays open (grpc-go health/server.go; measured on etcd 3.4.23 and 3.5.1 by the
field corpus).
"""

from __future__ import annotations

from etcdsec.honeypot.v3.errors import Code

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"  # streams its status once, then stays open
HEALTH_PATHS = (HEALTH_CHECK, HEALTH_WATCH)
HEALTH_SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}
HEALTH_SERVICE_UNKNOWN = b"\x08\x03"  # HealthCheckResponse{status: SERVICE_UNKNOWN} (Watch only)
UNKNOWN_SERVICE = "unknown service"  # Check's grpc-message for a service never set


def asked_service(payload: bytes) -> str:
    """HealthCheckRequest.service (field 1): "" when absent. Its last occurrence wins, as in protobuf;
    bytes that do not decode read as "" (grpc-go would refuse them: not modelled)."""
    service, i, n = b"", 0, len(payload)
    while i < n:
        tag = payload[i]
        i += 1
        if tag != 0x0A:
            return ""
        length, shift = 0, 0
        while i < n and shift < 35:
            byte = payload[i]
            i += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        else:
            return ""
        if i + length > n:
            return ""
        service, i = payload[i:i + length], i + length
    return service.decode("utf-8", "replace")


def health_reply(path: str, payload: bytes) -> tuple[bytes | None, Code, str | None]:
    """(message to send or None, status, grpc-message or None while the stream stays open)."""
    known = asked_service(payload) == ""
    if path == HEALTH_WATCH:
        return (HEALTH_SERVING if known else HEALTH_SERVICE_UNKNOWN), Code.OK, None
    if known:
        return HEALTH_SERVING, Code.OK, ""
    return None, Code.NOT_FOUND, UNKNOWN_SERVICE

"""One TCP connection as the honeypot believes it (the client after PROXY protocol / X-Forwarded-For)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


@dataclass
class Session:
    """One TCP connection. src_* is the client as we believe it (after PROXY/XFF when trusted)."""

    id: str
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    tls: bool = False
    peer_ip: str = ""  # the socket peer when src_ip came from PROXY protocol / X-Forwarded-For
    started: float = field(default_factory=time.monotonic)
    # what the client has sent so far: at the connection cap, the connection that sent least goes
    bytes_in: int = 0
    requests_in: int = 0  # complete requests, WebSocket messages, gRPC messages

    @classmethod
    def new(cls, src_ip: str, src_port: int, dst_ip: str, dst_port: int, tls: bool = False) -> Session:
        return cls(uuid.uuid4().hex[:12], _strip_mapped(src_ip), src_port, _strip_mapped(dst_ip), dst_port,
                   tls)


def _strip_mapped(ip: str) -> str:
    return ip[7:] if ip.startswith("::ffff:") else ip

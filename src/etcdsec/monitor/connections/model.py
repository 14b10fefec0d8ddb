"""The data the connection monitor passes around: watched endpoints and observed connections."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

PEER_PORTS = frozenset({2380, 7001})  # etcd's peer port (and the pre-2.x one); every other port is a client port
DEFAULT_PORTS = (2379, 2380, 4001)


def default_role(port: int) -> str:
    return "peer" if port in PEER_PORTS else "client"


@dataclass(frozen=True)
class Endpoint:
    """A watched listener. `ip` may be a wildcard (0.0.0.0 or ::): then it matches every local address."""

    ip: str
    port: int
    role: str

    @functools.cached_property
    def wildcard(self) -> bool:
        return ipaddress.ip_address(self.ip).is_unspecified

    def matches(self, ip: str, port: int) -> bool:
        if port != self.port:
            return False
        if not self.wildcard:
            return ip == self.ip
        # an IPv6 wildcard listener also takes IPv4 connections (dual stack); 0.0.0.0 takes only IPv4
        return ":" in self.ip or ":" not in ip

    @property
    def text(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class Process:
    pid: int
    name: str
    user: str


@dataclass(frozen=True)
class Connection:
    """One TCP connection (or connection attempt, for the SYN source) to a watched endpoint."""

    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    time: float  # wall clock, seconds since the epoch
    process: Process | None = None  # the client's process, when the client is on this host and visible

    @property
    def key(self) -> tuple[str, int, str, int]:
        return self.src_ip, self.src_port, self.dst_ip, self.dst_port


def normalize_ip(text: str) -> str:
    """IPv4-mapped IPv6 (`::ffff:10.0.0.1`, as a dual-stack listener sees IPv4 clients) -> `10.0.0.1`."""
    addr = ipaddress.ip_address(text)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def address_class(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr.is_private:
        return "private"
    return "public"

"""The real client behind a load balancer (sans-IO): PROXY protocol v1/v2 headers, X-Forwarded-For."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Any

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107  # the spec's longest v1 line, CRLF included


class ProxyError(ValueError):
    pass


@dataclass(frozen=True)
class ProxyHeader:
    length: int  # bytes the header occupies on the wire
    src_ip: str | None  # None for LOCAL / UNKNOWN: keep the socket peer
    src_port: int | None
    dst_ip: str | None = None
    dst_port: int | None = None


def looks_like_proxy(data: bytes) -> bool:
    return data.startswith(b"PROXY ") or (data.startswith(V2_SIGNATURE[: len(data)]) and len(data) >= 1 \
        and data[:1] == b"\r")


def parse(data: bytes) -> ProxyHeader | None:
    """The header at the start of `data`; None when more bytes are needed; ProxyError when invalid."""
    if data.startswith(b"PROXY "):
        end = data.find(b"\r\n", 0, V1_MAX)
        if end < 0:
            if len(data) >= V1_MAX:
                raise ProxyError("PROXY v1 line too long")
            return None
        return _parse_v1(data[:end].decode("ascii", "replace"), end + 2)
    if len(data) < 16:
        if V2_SIGNATURE.startswith(data[:12]):
            return None
        raise ProxyError("not a PROXY header")
    if data[:12] != V2_SIGNATURE:
        raise ProxyError("not a PROXY header")
    ver_cmd, fam, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if ver_cmd >> 4 != 2:
        raise ProxyError("PROXY v2: bad version")
    total = 16 + length
    if len(data) < total:
        return None
    if ver_cmd & 0x0F == 0:  # LOCAL: health check from the balancer itself
        return ProxyHeader(total, None, None)
    body = data[16:total]
    if fam >> 4 == 1 and len(body) >= 12:
        src, dst, sport, dport = struct.unpack("!4s4sHH", body[:12])
        v4 = ipaddress.IPv4Address
        return ProxyHeader(total, str(v4(src)), sport, str(v4(dst)), dport)
    if fam >> 4 == 2 and len(body) >= 36:
        src, dst, sport, dport = struct.unpack("!16s16sHH", body[:36])
        v6 = ipaddress.IPv6Address
        return ProxyHeader(total, str(v6(src)), sport, str(v6(dst)), dport)
    return ProxyHeader(total, None, None)  # UNSPEC / unix sockets: keep the socket peer


def _parse_v1(line: str, length: int) -> ProxyHeader:
    parts = line.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(length, None, None)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyError("PROXY v1: malformed line")
    try:
        src, dst = ipaddress.ip_address(parts[2]), ipaddress.ip_address(parts[3])
        sport, dport = int(parts[4]), int(parts[5])
    except ValueError:
        raise ProxyError("PROXY v1: bad address or port") from None
    if not (0 <= sport <= 65535 and 0 <= dport <= 65535):
        raise ProxyError("PROXY v1: port out of range")
    return ProxyHeader(length, str(src), sport, str(dst), dport)


def xff_client(socket_peer: str, header: bytes | None, trusted_networks: list[Any]) -> str:
    """The client an X-Forwarded-For names: the rightmost hop that is not a trusted proxy (hops to
    its left are whatever the client wrote, so they are not believed). The header's bytes are read
    as latin-1 (as Go keeps them): an address is text, and ipaddress takes bytes for packed ones."""
    client = socket_peer
    text = header.decode("latin-1") if header else ""
    for hop in reversed([h.strip() for h in text.split(",") if h.strip()]):
        try:
            addr = ipaddress.ip_address(hop)
        except ValueError:
            break
        client = hop
        if not any(addr in net for net in trusted_networks):
            break
    return client

"""Address ranges as integer intervals: parse, merge, subtract. Pure, no I/O."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, order=True)
class AddrRange:
    """Addresses `first`..`last` inclusive of one IP version, as integers."""

    version: int
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def address(self, offset: int) -> str:
        value = self.first + offset
        if self.version == 4:  # inet_ntoa: the sweep calls this per address, ipaddress is 5x slower
            return socket.inet_ntoa(value.to_bytes(4, "big"))
        return str(ipaddress.IPv6Address(value))

    def __str__(self) -> str:
        if self.first == self.last:
            return self.address(0)
        return f"{self.address(0)}-{self.address(self.size - 1)}"

    @classmethod
    def from_network(cls, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> AddrRange:
        return cls(network.version, int(network.network_address), int(network.broadcast_address))

    @classmethod
    def single(cls, ip: IPAddress) -> AddrRange:
        return cls(ip.version, int(ip), int(ip))


def parse_range(text: str) -> AddrRange | None:
    """`10.0.0.0/24`, `10.0.0.1-10.0.0.9`, `10.0.0.1-9`, `::1`, `2001:db8::/126`; None if not an address form."""
    found = _parse_range(text)
    return found if isinstance(found, AddrRange) else None


def range_problem(text: str) -> str | None:
    """Why `text`, which starts like an address range (`a-b`), is not one: reversed, mixed, bad octet."""
    found = _parse_range(text)
    return found if isinstance(found, str) else None


def _parse_range(text: str) -> AddrRange | str | None:
    """The range; or, for `address-something` that is no range, the reason; None for other text."""
    text = text.strip()
    if "/" in text:
        try:
            return AddrRange.from_network(ipaddress.ip_network(text, strict=False))
        except ValueError:
            return None
    if "-" in text:
        left, right = (part.strip() for part in text.split("-", 1))
        try:
            start = ipaddress.ip_address(left)
        except ValueError:
            return None  # not an address on the left: maybe a host name such as etcd-1
        try:
            end = ipaddress.ip_address(right)
        except ValueError:
            # `10.0.0.1-9`: the last octet only (IPv4, as nmap and masscan accept it)
            if start.version != 4 or not right.isdigit() or int(right) > 255:
                return f"range {text!r}: {right!r} is neither an address nor a last octet (0-255)"
            end = ipaddress.IPv4Address((int(start) & ~0xFF) | int(right))
        if end.version != start.version:
            return f"range {text!r} mixes IPv{start.version} and IPv{end.version}"
        if int(end) < int(start):
            return f"range {text!r} is reversed: {end} comes before {start} (write {end}-{start})"
        return AddrRange(start.version, int(start), int(end))
    try:
        return AddrRange.single(ipaddress.ip_address(text))
    except ValueError:
        return None


def merge(ranges: list[AddrRange]) -> list[AddrRange]:
    """Sorted, with overlapping and adjacent ranges joined."""
    out: list[AddrRange] = []
    for r in sorted(ranges):
        if out and out[-1].version == r.version and r.first <= out[-1].last + 1:
            if r.last > out[-1].last:
                out[-1] = AddrRange(r.version, out[-1].first, r.last)
        else:
            out.append(r)
    return out


def subtract(ranges: list[AddrRange], holes: list[AddrRange]) -> list[AddrRange]:
    """`ranges` minus every address in `holes` (both merged first)."""
    holes = merge(holes)
    out: list[AddrRange] = []
    for r in merge(ranges):
        pieces = [r]
        for h in holes:
            if h.version != r.version or h.last < r.first or h.first > r.last:
                continue
            next_pieces: list[AddrRange] = []
            for p in pieces:
                if h.last < p.first or h.first > p.last:
                    next_pieces.append(p)
                    continue
                if p.first < h.first:
                    next_pieces.append(AddrRange(p.version, p.first, h.first - 1))
                if h.last < p.last:
                    next_pieces.append(AddrRange(p.version, h.last + 1, p.last))
            pieces = next_pieces
        out.extend(pieces)
    return out


def overlaps(r: AddrRange, other: AddrRange) -> bool:
    return r.version == other.version and r.first <= other.last and other.first <= r.last

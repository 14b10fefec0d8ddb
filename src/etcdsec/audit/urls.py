"""Classify the addresses etcd listens on: loopback, wildcard, private, public, or a name."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ListenURL:
    text: str
    scheme: str
    host: str
    reach: str  # "loopback", "local-socket", "wildcard", "private", "public", "name", "invalid"
    problem: str | None = None  # why etcd would not accept the URL (reach is then "invalid")

    @property
    def plain(self) -> bool:
        return self.scheme == "http"

    @property
    def remote(self) -> bool:
        """Reachable from other machines."""
        return self.reach in ("wildcard", "private", "public", "name")


def _reach(scheme: str, host: str) -> str:
    if scheme in ("unix", "unixs"):
        return "local-socket"
    if host in ("", "0.0.0.0", "::", "[::]", "*"):
        return "wildcard"
    if host == "localhost":
        return "loopback"
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "name"
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "wildcard"
    return "private" if ip.is_private or ip.is_link_local else "public"


def _problem(text: str) -> str | None:
    """Why Go's url.Parse (and so etcd) would refuse `text`, for the faults a hostile file plants."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return "invalid control character in URL"
    try:
        parts = urlsplit(text if "://" in text else "http://" + text)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number in range)
    except ValueError as exc:
        return str(exc)
    if host.startswith("[") or ":" in host:
        try:
            ipaddress.IPv6Address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return f"host {host!r} is not an IPv6 address"
    return None


def parse_urls(value: str) -> list[ListenURL]:
    """Each comma-separated URL, classified; one etcd would refuse has reach "invalid" and a problem."""
    out = []
    for raw in value.split(","):
        text = raw.strip()
        if not text:
            continue
        problem = _problem(text)
        if problem is not None:
            out.append(ListenURL(text.encode("unicode_escape").decode("ascii"), "", "", "invalid", problem))
            continue
        parts = urlsplit(text if "://" in text else "http://" + text)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        out.append(ListenURL(text, scheme, host, _reach(scheme, host)))
    return out

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
    reach: str  # "loopback", "local-socket", "wildcard", "private", "public", "name"

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


def parse_urls(value: str) -> list[ListenURL]:
    out = []
    for raw in value.split(","):
        text = raw.strip()
        if not text:
            continue
        parts = urlsplit(text if "://" in text else "http://" + text)
        scheme = parts.scheme.lower()
        try:
            host = parts.hostname or ""
        except ValueError:
            host = ""
        out.append(ListenURL(text, scheme, host, _reach(scheme, host)))
    return out

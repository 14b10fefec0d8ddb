"""Parse what a user types as a target: `10.1.2.3`, `host:port`, `https://host:2379`, `[::1]:2379`."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from etcdsec.errors import UserError

CLIENT_PORT = 2379
PEER_PORT = 2380
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")


@dataclass(frozen=True)
class Target:
    host: str  # IP literal (no brackets) or hostname
    port: int
    scheme: str | None  # "http"/"https" when the user said so, else None (detect)
    text: str  # what the user typed
    port_given: bool = True

    @property
    def netloc(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _port(text: str, original: str) -> int:
    if not text.isdigit():
        raise UserError(f"bad target {original!r}: port {text!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise UserError(f"bad target {original!r}: port {port} out of range 1-65535")
    return port


def _host(text: str, original: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not _HOSTNAME.match(text) or text.replace(".", "").isdigit():
        raise UserError(f"bad target {original!r}: {text!r} is not an IP address or host name")
    return text.lower().rstrip(".")


def parse_target(text: str, default_port: int = CLIENT_PORT) -> Target:
    original = text
    text = text.strip()
    if not text:
        raise UserError("empty target")
    scheme: str | None = None
    if "://" in text:
        scheme_text = text.split("://", 1)[0].lower()
        if scheme_text not in ("http", "https"):
            raise UserError(f"bad target {original!r}: scheme must be http or https")
        try:
            parts = urlsplit(text)
            port_text = parts.netloc.rsplit("]", 1)[-1]
            has_port = ":" in port_text
            if has_port:
                _port(port_text.rsplit(":", 1)[1], original)
            host = parts.hostname or ""
            port = parts.port
        except ValueError as exc:
            raise UserError(f"bad target {original!r}: {exc}") from None
        if parts.path not in ("", "/") or parts.query:
            raise UserError(f"bad target {original!r}: give a base URL without a path")
        return Target(_host(host, original), port or default_port, scheme_text, original, port is not None)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise UserError(f"bad target {original!r}: missing ']'")
        if rest and not rest.startswith(":"):
            raise UserError(f"bad target {original!r}: expected ':port' after ']'")
        port = _port(rest[1:], original) if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UserError(f"bad target {original!r}: {host!r} is not an IPv6 address") from None
        return Target(_host(host, original), port or default_port, scheme, original, port is not None)
    if text.count(":") > 1:  # bare IPv6 address
        return Target(_host(text, original), default_port, scheme, original, False)
    host, sep, port_text = text.partition(":")
    port = _port(port_text, original) if sep else None
    return Target(_host(host, original), port or default_port, scheme, original, port is not None)

"""What a scan must never touch: reserved and special-purpose ranges (as zmap's blocklist), plus the
user's own `--exclude` list. Loopback and RFC 1918 / ULA private ranges stay scannable on purpose:
internal audits and the loopback test bed need them.

A target wider than a /8 is an Internet-wide sweep: it also loses every IANA special-purpose range
(loopback and private included), read from the shipped `special-purpose.conf` or the user's file.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from etcdsec.errors import UserError
from etcdsec.files import read_capped
from etcdsec.scan.ranges import AddrRange, overlaps, parse_range

# (network, why) — IANA special-purpose registries (RFC 6890 and successors).
DEFAULT_EXCLUDES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "RFC 1122 'this network'"),
    ("100.64.0.0/10", "RFC 6598 carrier-grade NAT shared space"),
    ("169.254.0.0/16", "RFC 3927 link-local"),
    ("192.0.0.0/24", "RFC 6890 IETF protocol assignments"),
    ("192.0.2.0/24", "RFC 5737 documentation (TEST-NET-1)"),
    ("192.88.99.0/24", "RFC 7526 deprecated 6to4 relay anycast"),
    ("198.18.0.0/15", "RFC 2544 benchmarking"),
    ("198.51.100.0/24", "RFC 5737 documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "RFC 5737 documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "RFC 5771 multicast"),
    ("240.0.0.0/4", "RFC 1112 reserved for future use"),
    ("255.255.255.255/32", "RFC 919 limited broadcast"),
    ("::/128", "RFC 4291 unspecified address"),
    ("::ffff:0:0/96", "RFC 4291 IPv4-mapped addresses"),
    ("64:ff9b::/96", "RFC 6052 IPv4/IPv6 translation"),
    ("100::/64", "RFC 6666 discard-only"),
    ("2001::/23", "RFC 2928 IETF protocol assignments"),
    ("2001:db8::/32", "RFC 3849 documentation"),
    ("fe80::/10", "RFC 4291 link-local unicast"),
    ("ff00::/8", "RFC 4291 multicast"),
)


WIDE_TARGET_ADDRESSES = 1 << 24  # a /8: wider targets get WIDE_EXCLUDES_FILE and need --confirm-wide
WIDE_EXCLUDES_FILE = Path(__file__).with_name("special-purpose.conf")
MAX_LIST_FILE_BYTES = 256 << 20  # a target or exclusion list: ~16 million lines


@dataclass(frozen=True)
class Exclusion:
    range: AddrRange
    reason: str


def default_exclusions() -> list[Exclusion]:
    return [
        Exclusion(AddrRange.from_network(ipaddress.ip_network(net)), reason) for net, reason in DEFAULT_EXCLUDES
    ]


def parse_exclusion(text: str, reason: str) -> Exclusion:
    r = parse_range(text)
    if r is None:
        raise UserError(f"bad exclusion {text!r}: expected an address, CIDR or range")
    return Exclusion(r, reason)


def read_list_file(path: str, what: str) -> str:
    """A target or exclusion list, at most MAX_LIST_FILE_BYTES (a pipe works; /dev/zero is refused)."""
    return read_capped(path, MAX_LIST_FILE_BYTES, what).decode("utf-8", errors="replace")


def read_exclude_file(path: str) -> list[Exclusion]:
    """One address/CIDR/range per line; `#` starts a comment (zmap blocklist file format)."""
    lines = read_list_file(path, "exclude file").splitlines()
    out = []
    for number, line in enumerate(lines, 1):
        entry, _, comment = line.partition("#")
        entry = entry.strip()
        if not entry:
            continue
        r = parse_range(entry)
        if r is None:
            raise UserError(f"{path}:{number}: bad exclusion {entry!r}")
        out.append(Exclusion(r, comment.strip() or f"{path}:{number}"))
    return out


def wide_exclusions(path: str | None = None) -> list[Exclusion]:
    """What targets wider than a /8 lose: the shipped IANA special-purpose list, or the user's file."""
    return read_exclude_file(path or str(WIDE_EXCLUDES_FILE))


def build_exclusions(
    excludes: list[str] | None = None, exclude_files: list[str] | None = None, defaults: bool = True
) -> list[Exclusion]:
    out = default_exclusions() if defaults else []
    for text in excludes or []:
        out.append(parse_exclusion(text, "--exclude"))
    for path in exclude_files or []:
        out.extend(read_exclude_file(path))
    return out


def why_excluded(r: AddrRange, exclusions: list[Exclusion]) -> list[Exclusion]:
    """The exclusions that remove part or all of `r`."""
    return [e for e in exclusions if overlaps(r, e.range)]

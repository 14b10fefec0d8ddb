"""The target set of a scan: address ranges x ports, plus explicit (address, port) pairs from imports.

Every (address, port) gets an index in 0..size-1 so that the permutation and the resume cursor can
work on plain integers. The set serialises to JSON so `--resume` rebuilds exactly the same one
without re-resolving names or re-reading import files.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import json
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from etcdsec.errors import UserError
from etcdsec.scan.exclusions import (
    MAX_LIST_FILE_BYTES,
    WIDE_TARGET_ADDRESSES,
    Exclusion,
    read_list_file,
    why_excluded,
)
from etcdsec.scan.ranges import AddrRange, merge, parse_range, range_problem, subtract

DEFAULT_PORTS = (2379, 2380)
# 2^40 (address, port) pairs: the whole IPv4 space on 256 ports. Beyond that a scan never ends.
MAX_TARGETS = 1 << 40


def parse_ports(text: str) -> tuple[int, ...]:
    """`2379,2380`, `2379-2381`, `4001` -> sorted unique ports."""
    ports: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                ports.update(range(lo, hi + 1))
            else:
                ports.add(int(part))
        except ValueError:
            raise UserError(f"bad port list {text!r}: expected e.g. 2379,2380 or 2379-2381") from None
    if not ports or min(ports) < 1 or max(ports) > 65535:
        raise UserError(f"bad port list {text!r}: ports are 1-65535")
    return tuple(sorted(ports))


Resolver = Callable[[str], list[str]]


def resolve_host(name: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise UserError(f"cannot resolve target {name!r}: {exc}") from None
    return sorted({str(info[4][0]) for info in infos})


def _looks_like_hostname(text: str) -> bool:
    if not text or len(text) > 253 or text.startswith("-"):
        return False
    labels = text.rstrip(".").split(".")
    return all(
        label and len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label) for label in labels
    ) and not text.replace(".", "").isdigit()


def parse_target(text: str, resolver: Resolver = resolve_host) -> list[AddrRange]:
    """One target as typed: address, CIDR, range or hostname (resolved now, all its addresses)."""
    r = parse_range(text)
    if r is not None:
        return [r]
    problem = range_problem(text)
    if problem is not None:  # never looked up in DNS as a host name
        raise UserError(f"cannot parse target: {problem}")
    if _looks_like_hostname(text.strip()):
        return [AddrRange.single(ipaddress.ip_address(ip)) for ip in resolver(text.strip())]
    raise UserError(f"cannot parse target {text!r}: expected an address, CIDR, range (a-b) or hostname")


def read_target_lines(lines: Iterable[str]) -> list[str]:
    """Targets from a file or stdin: whitespace/comma separated, `#` comments."""
    out: list[str] = []
    for line in lines:
        for word in line.split("#", 1)[0].replace(",", " ").split():
            out.append(word)
    return out


def gather_target_words(targets: list[str], target_files: list[str] | None = None) -> list[str]:
    """CLI words, `-` for stdin, `@file` or --targets-file for files."""
    words: list[str] = []
    files = list(target_files or [])
    for t in targets:
        if t == "-":
            words.extend(read_target_lines(_read_stdin().splitlines()))
        elif t.startswith("@"):
            files.append(t[1:])
        else:
            words.append(t)
    for path in files:
        words.extend(read_target_lines(read_list_file(path, "targets file").splitlines()))
    return words


def _read_stdin() -> str:
    """Targets piped in, at most MAX_LIST_FILE_BYTES."""
    data = sys.stdin.read(MAX_LIST_FILE_BYTES + 1)
    if len(data) > MAX_LIST_FILE_BYTES:
        raise UserError(f"targets on stdin: more than {MAX_LIST_FILE_BYTES >> 20} MiB")
    return data


@dataclass
class TargetSet:
    """ranges x ports, then explicit pairs; `meta` carries per-address import fields (org, asn...)."""

    ranges: list[AddrRange]
    ports: tuple[int, ...]
    pairs: list[tuple[str, int]] = field(default_factory=list)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._starts: list[int] = []
        total = 0
        for r in self.ranges:
            self._starts.append(total)
            total += r.size
        self.address_count = total
        self.size = total * len(self.ports) + len(self.pairs)

    def target(self, index: int) -> tuple[str, int]:
        """The (address, port) with this index."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        range_part = self.address_count * len(self.ports)
        if index >= range_part:
            return self.pairs[index - range_part]
        address_index, port_index = divmod(index, len(self.ports))
        i = bisect.bisect_right(self._starts, address_index) - 1
        return self.ranges[i].address(address_index - self._starts[i]), self.ports[port_index]

    def distinct_addresses(self) -> int:
        in_ranges = {(r.version, r.first, r.last) for r in self.ranges}
        extra = {ip for ip, _ in self.pairs}
        return self.address_count + len([ip for ip in extra if not _in_ranges(ip, in_ranges)])

    def to_json(self) -> dict[str, Any]:
        return {
            "ranges": [[r.version, str(r.first), str(r.last)] for r in self.ranges],
            "ports": list(self.ports),
            "pairs": [[ip, port] for ip, port in self.pairs],
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TargetSet:
        return cls(
            ranges=[AddrRange(int(v), int(a), int(b)) for v, a, b in raw["ranges"]],
            ports=tuple(raw["ports"]),
            pairs=[(ip, int(port)) for ip, port in raw.get("pairs", [])],
            meta=raw.get("meta") or {},
        )

    def fingerprint(self) -> str:
        """Same targets, same fingerprint: shards of one scan must agree on it."""
        body = json.dumps({k: v for k, v in self.to_json().items() if k != "meta"}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:32]


def _in_ranges(ip: str, ranges: set[tuple[int, int, int]]) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(v == addr.version and a <= int(addr) <= b for v, a, b in ranges)


@dataclass
class ExcludedNote:
    target: str
    reasons: list[str]
    whole: bool


def build_target_set(
    words: list[str],
    ports: tuple[int, ...],
    exclusions: list[Exclusion],
    pairs: Iterable[tuple[str, int]] = (),
    hosts: Iterable[str] = (),
    meta: dict[str, dict[str, Any]] | None = None,
    resolver: Resolver = resolve_host,
    wide_exclusions: list[Exclusion] | None = None,
) -> tuple[TargetSet, list[ExcludedNote]]:
    """Parse, exclude, merge. Returns the set and a note for every target the exclusions cut.

    `wide_exclusions` also cut every target wider than a /8; narrower ones (127.0.0.0/8) keep them.
    """
    notes: list[ExcludedNote] = []
    kept: list[AddrRange] = []
    for word in [*words, *hosts]:
        for r in parse_target(word, resolver):
            applying = exclusions + (wide_exclusions or []) if r.size > WIDE_TARGET_ADDRESSES else exclusions
            hit = why_excluded(r, applying)
            if hit:
                left = subtract([r], [e.range for e in applying])
                notes.append(ExcludedNote(word, sorted({f"{e.range} ({e.reason})" for e in hit}), not left))
                kept.extend(left)
            else:
                kept.append(r)
    ranges = merge(kept)
    covered = {(r.version, r.first, r.last) for r in ranges}
    explicit: set[tuple[str, int]] = set()
    for ip, port in pairs:
        addr = ipaddress.ip_address(ip)
        single = AddrRange.single(addr)
        hit = why_excluded(single, exclusions)
        if hit:
            notes.append(ExcludedNote(f"{ip}:{port}", sorted({f"{e.range} ({e.reason})" for e in hit}), True))
            continue
        # Pairs already covered by ranges x ports would be probed twice.
        if port in ports and _in_ranges(str(addr), covered):
            continue
        explicit.add((str(addr), int(port)))
    target_set = TargetSet(ranges, tuple(ports), sorted(explicit, key=_pair_key), dict(meta or {}))
    if target_set.size > MAX_TARGETS:
        raise UserError(
            f"{target_set.size} (address, port) pairs is too many to scan (limit 2^40); narrow the ranges"
        )
    return target_set, notes


def wide_scan_refusal(targets: TargetSet, rate: float | None, concurrency: int,
                      connect_timeout: float) -> str | None:
    """Why a target set wider than a /8 needs --confirm-wide: how many addresses, at what rate, how long."""
    addresses = targets.distinct_addresses()
    if addresses <= WIDE_TARGET_ADDRESSES:
        return None
    if rate:
        per_second, how = rate, f"{rate:,.0f} connections/s (--rate)"
    else:  # unlimited: bounded by connections in flight, each waiting up to the connect timeout
        per_second = concurrency / connect_timeout
        how = (f"about {per_second:,.0f} connections/s (no --rate; --concurrency {concurrency} / "
               f"--connect-timeout {connect_timeout:g} s where nothing answers)")
    return (f"refusing a scan wider than a /8: {addresses:,} addresses, {targets.size:,} (address, port) pairs, "
            f"at {how} takes about {_duration(targets.size / per_second)}; add --confirm-wide to run it")


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.0f} seconds"


def _pair_key(pair: tuple[str, int]) -> tuple[int, int, int]:
    addr = ipaddress.ip_address(pair[0])
    return addr.version, int(addr), pair[1]

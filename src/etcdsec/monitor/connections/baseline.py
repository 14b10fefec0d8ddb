"""Which sources talk to which watched port: learnt, stored, exported, imported, extended by --allow.

Like Zeek's known_hosts: a first-seen table. A source is known for a port when it was seen on that port
while learning (or imported), or when it falls in an allowed CIDR.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from etcdsec.monitor.connections.model import Connection, Endpoint

FORMAT = "etcdsec.monitor.connections.baseline/1"
MAX_ENTRIES = 100_000  # an imported file or a database row count beyond this is refused, not loaded
MAX_PROCESSES = 16  # distinct client processes kept per entry
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BaselineError(ValueError):
    """A baseline document that is not one (wrong format, bad address, too big)."""


@dataclass
class Entry:
    src_ip: str
    port: int
    role: str
    first_seen: float
    last_seen: float
    count: int = 0
    processes: list[str] = field(default_factory=list)  # "name (user)" of local clients, where visible

    def to_doc(self) -> dict[str, Any]:
        return {"src_ip": self.src_ip, "port": self.port, "role": self.role, "first_seen": self.first_seen,
                "last_seen": self.last_seen, "count": self.count, "processes": list(self.processes)}


def process_label(conn: Connection) -> str | None:
    return f"{conn.process.name} ({conn.process.user})" if conn.process else None


def subnet_of(ip: str) -> Network:
    """The neighbourhood a new address is compared with: its /24 (IPv4) or /64 (IPv6)."""
    prefix = 24 if ":" not in ip else 64
    return ipaddress.ip_network(f"{ip}/{prefix}", strict=False)


class Baseline:
    def __init__(self, allow: list[Network] | None = None) -> None:
        self.entries: dict[tuple[str, int], Entry] = {}
        self.allow: list[Network] = list(allow or [])

    def __len__(self) -> int:
        return len(self.entries)

    def learn(self, conn: Connection, endpoint: Endpoint) -> Entry:
        key = (conn.src_ip, endpoint.port)
        entry = self.entries.get(key)
        if entry is None:
            if len(self.entries) >= MAX_ENTRIES:
                raise BaselineError(f"baseline full ({MAX_ENTRIES} sources)")
            entry = self.entries[key] = Entry(conn.src_ip, endpoint.port, endpoint.role, conn.time, conn.time)
        entry.first_seen = min(entry.first_seen, conn.time)
        entry.last_seen = max(entry.last_seen, conn.time)
        entry.count += 1
        label = process_label(conn)
        if label and label not in entry.processes and len(entry.processes) < MAX_PROCESSES:
            entry.processes.append(label)
        return entry

    def allowed(self, ip: str) -> Network | None:
        addr = ipaddress.ip_address(ip)
        return next((net for net in self.allow if addr.version == net.version and addr in net), None)

    def known(self, ip: str, port: int) -> bool:
        return (ip, port) in self.entries or self.allowed(ip) is not None

    def context(self, conn: Connection, endpoint: Endpoint, nearest: int = 3) -> dict[str, Any]:
        """The baseline around a new source: how many are known on the port, the nearest, and what is new."""
        on_port = [e for e in self.entries.values() if e.port == endpoint.port]
        addr = ipaddress.ip_address(conn.src_ip)
        same_family = [e for e in on_port if ipaddress.ip_address(e.src_ip).version == addr.version]
        same_family.sort(key=lambda e: abs(int(ipaddress.ip_address(e.src_ip)) - int(addr)))
        net = subnet_of(conn.src_ip)
        new = ["address"]
        if not any(ipaddress.ip_address(e.src_ip) in net for e in same_family):
            new.append(f"subnet {net}")
        other_roles = sorted({e.role for e in self.entries.values() if e.src_ip == conn.src_ip} - {endpoint.role})
        if other_roles:
            new.append(f"{endpoint.role} port (the address is known on the {other_roles[0]} port)")
        label = process_label(conn)
        if label and not any(label in e.processes for e in on_port):
            new.append(f"process {label}")
        return {
            "known_sources": len(on_port),
            "allowed_networks": [str(n) for n in self.allow],
            "nearest_known": [e.src_ip for e in same_family[:nearest]],
            "new": new,
        }

    # --- the file form (export / import) ---------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        return {"format": FORMAT, "entries": [e.to_doc() for e in self.entries.values()],
                "allow": [str(n) for n in self.allow]}

    def merge_doc(self, doc: object) -> int:
        """Adds a document's entries (hostile input: every field checked); returns how many it held."""
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BaselineError(f"not an etcdsec connections baseline (expected \"format\": \"{FORMAT}\")")
        rows, allow = doc.get("entries"), doc.get("allow", [])
        if not isinstance(rows, list) or not isinstance(allow, list):
            raise BaselineError("\"entries\" and \"allow\" must be lists")
        if len(rows) + len(self.entries) > MAX_ENTRIES:
            raise BaselineError(f"more than {MAX_ENTRIES} entries")
        for i, raw in enumerate(rows):
            self.add_entry(entry_from_doc(raw, f"entry {i + 1}"))
        for text in allow[:MAX_ENTRIES]:
            net = parse_network(str(text))
            if net not in self.allow:
                self.allow.append(net)
        return len(rows)

    def add_entry(self, entry: Entry) -> None:
        old = self.entries.get((entry.src_ip, entry.port))
        if old is not None:
            entry.first_seen = min(old.first_seen, entry.first_seen)
            entry.last_seen = max(old.last_seen, entry.last_seen)
            entry.count += old.count
            entry.processes = list(dict.fromkeys(old.processes + entry.processes))[:MAX_PROCESSES]
        self.entries[(entry.src_ip, entry.port)] = entry


def parse_network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise BaselineError(f"not a CIDR: {text[:80]!r}") from None


def entry_from_doc(raw: object, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise BaselineError(f"{where}: not an object")
    try:
        ip = str(ipaddress.ip_address(str(raw["src_ip"])))
        port = int(raw["port"])
        role = str(raw.get("role", "client"))
        first, last = float(raw.get("first_seen", 0.0)), float(raw.get("last_seen", 0.0))
        count = int(raw.get("count", 0))
        processes = [str(p)[:200] for p in raw.get("processes", [])][:MAX_PROCESSES]
    except (KeyError, TypeError, ValueError) as exc:
        raise BaselineError(f"{where}: {type(exc).__name__}: {str(exc)[:100]}") from None
    if not 0 < port < 65536 or role not in ("client", "peer") or count < 0:
        raise BaselineError(f"{where}: port, role or count out of range")
    return Entry(ip, port, role, first, last, count, processes)

"""Unprivileged source: poll the kernel's TCP socket table through sock_diag netlink.

Each poll asks only for sockets on the watched ports (the kernel filters dumps by port), on the server
side (local port = watched port) and, for clients on this host, the client side too, which carries the
client's uid and socket inode and so its process. A connection is new when its 4-tuple was not in the
previous poll. It can miss a connection that opens and closes between two polls and leaves no socket
behind (closing sockets linger in TIME_WAIT/FIN states, which are seen): the poll interval is the
shortest connection it is sure to see.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Sequence

from etcdsec.monitor.connections.diagwire import DiagSocket, Row, endpoint_filter
from etcdsec.monitor.connections.model import Connection, Endpoint, Process
from etcdsec.monitor.connections.procs import processes_of

TCP_LISTEN = 10
STATES_CONNECTED = 0xFFF & ~(1 << TCP_LISTEN) & ~(1 << 7)  # every TCP state but LISTEN and CLOSE
MEMORY_S = 2.0  # how long a 4-tuple that left the table still counts as the connection already seen
MAX_PROCESS_LOOKUPS = 64  # new client sockets per poll whose process is looked up in /proc


def _rows(diag: DiagSocket, family: int, states: int, sport: int = 0, dport: int = 0) -> list[Row]:
    return diag.dump(family, states, sport, dport)


def families(endpoints: Iterable[Endpoint]) -> list[int]:
    fams = {socket.AF_INET6 if ":" in e.ip else socket.AF_INET for e in endpoints}
    if any(e.wildcard and ":" in e.ip for e in endpoints):
        fams.add(socket.AF_INET)  # dual stack listener: IPv4 clients' own sockets are AF_INET
    return sorted(fams)


def connections_from(rows: Iterable[Row], endpoints: Sequence[Endpoint]) -> dict[tuple[str, int, str, int], Row]:
    """Every socket of a connection to a watched endpoint, keyed (client ip, client port, server ip, port).
    When both ends are on this host the client's socket is preferred: its uid and inode are the client's."""
    out: dict[tuple[str, int, str, int], Row] = {}
    for row in rows:
        if any(e.matches(row.remote_ip, row.remote_port) and not e.wildcard for e in endpoints):  # a local client
            out[(row.local_ip, row.local_port, row.remote_ip, row.remote_port)] = row
        elif any(e.matches(row.local_ip, row.local_port) for e in endpoints):  # the server's accepted socket
            out.setdefault((row.remote_ip, row.remote_port, row.local_ip, row.local_port), row)
    return out


class SockDiagSource:
    name = "sockdiag"

    def __init__(self, endpoints: Sequence[Endpoint], interval: float = 0.1) -> None:
        self.endpoints = list(endpoints)
        self.interval = interval
        self.port_set = frozenset(e.port for e in endpoints)
        self.bytecode = endpoint_filter([(e.ip, e.port) for e in endpoints])
        self.families = families(endpoints)
        self.diag = DiagSocket()
        self.last_seen: dict[tuple[str, int, str, int], float] = {}
        self.polls = 0

    @property
    def misses(self) -> str:
        return f"connections shorter than {self.interval * 1000:g} ms that leave no closing socket behind"

    def rows(self) -> list[Row]:
        # One dump per family; the kernel's own filter (the bytecode ss uses) keeps only sockets with an
        # end at a watched endpoint, so a busy host's other sockets cost no Python.
        rows: list[Row] = []
        for family in self.families:
            rows += self.diag.dump(family, STATES_CONNECTED, ports=self.port_set, bytecode=self.bytecode)
        return rows

    def poll(self) -> list[Connection]:
        now = time.time()
        current = connections_from(self.rows(), self.endpoints)
        # A dump is not atomic: under churn a socket can be skipped by one or two of them. A 4-tuple seen
        # within the last MEMORY_S is the same connection (the client's TIME_WAIT keeps its port from
        # being reused sooner).
        new_keys = [k for k in current if k not in self.last_seen]
        for k in current:
            self.last_seen[k] = now
        if self.polls % 16 == 0:
            self.last_seen = {k: t for k, t in self.last_seen.items() if now - t < MEMORY_S}
        self.polls += 1
        local_clients = {current[k].inode: current[k].uid for k in new_keys
                         if current[k].local_port == k[1] and current[k].inode}
        procs = processes_of(list(local_clients)[:MAX_PROCESS_LOOKUPS], local_clients) if local_clients else {}
        return [Connection(k[0], k[1], k[2], k[3], now,
                           procs.get(current[k].inode) if current[k].local_port == k[1] else None)
                for k in new_keys]

    def close(self) -> None:
        self.diag.close()


def local_listeners(ports: Sequence[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP listener on this host on one of `ports` (the default watch list)."""
    found: set[tuple[str, int]] = set()
    with DiagSocket() as diag:
        for family in (socket.AF_INET, socket.AF_INET6):
            for port in ports:
                found.update((r.local_ip, r.local_port) for r in _rows(diag, family, 1 << TCP_LISTEN, sport=port))
    return sorted(found)


def client_process(conn: Connection) -> Process | None:
    """The process of a client on this host, from its own socket (looked up by the connection's ports)."""
    family = socket.AF_INET6 if ":" in conn.src_ip else socket.AF_INET
    try:
        with DiagSocket() as diag:
            rows = _rows(diag, family, STATES_CONNECTED, sport=conn.src_port, dport=conn.dst_port)
            if family == socket.AF_INET:  # a client of a dual-stack socket shows as IPv4-mapped IPv6
                rows += _rows(diag, socket.AF_INET6, STATES_CONNECTED, sport=conn.src_port, dport=conn.dst_port)
    except OSError:
        return None
    for row in rows:
        if (row.local_ip, row.local_port, row.remote_ip, row.remote_port) == conn.key and row.inode:
            return processes_of([row.inode], {row.inode: row.uid}).get(row.inode)
    return None

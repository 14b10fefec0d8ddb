"""sock_diag (NETLINK_SOCK_DIAG, inet_diag) requests and replies as bytes, no I/O.

Written out rather than taken from pyroute2: its synchronous API runs an asyncio loop of its own,
which cannot run inside ours, and its generic parser costs ~40 µs a socket; this one needs two structs.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from typing import NamedTuple

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_REQ_BYTECODE = 1
BC_JMP, BC_S_COND, BC_D_COND = 1, 7, 8
_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states; sockid: sport, dport (big-endian), src, dst, if, cookie
_PORT = struct.Struct("!H")
_MSG = struct.Struct("=BBBB2s2s16s16sIIIIIIII")  # inet_diag_msg


class Row(NamedTuple):
    """One socket, local side first."""

    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    state: int
    uid: int
    inode: int


def request(family: int, states: int, seq: int, sport: int = 0, dport: int = 0, bytecode: bytes = b"") -> bytes:
    """A dump of the TCP sockets in `states` (a bit mask); the kernel itself keeps only those on
    local port `sport` / remote port `dport` when they are non-zero, and those `bytecode` accepts."""
    body = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, states)
    body += struct.pack("!HH", sport, dport) + bytes(32) + struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF)
    if bytecode:
        body += struct.pack("=HH", 4 + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def endpoint_filter(endpoints: list[tuple[str, int]]) -> bytes:
    """inet_diag bytecode keeping the sockets with one end at one of `endpoints` (address, port).

    "0.0.0.0" or "::" means any address; then only accepted sockets are asked for. Each test is a host
    condition on the local end (the server's accepted socket) or the remote end (a client's socket on
    this host); they are OR-ed the way ss does it: a test that holds falls on a jump to the end
    (accept), one that fails skips that jump to the next test, the last one's failure jumps past the
    end (reject)."""
    conds: list[bytes] = []
    for ip, port in endpoints:
        addr = ipaddress.ip_address(ip)
        family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
        raw, prefix = (b"", 0) if addr.is_unspecified else (addr.packed, addr.max_prefixlen)
        hostcond = struct.pack("=BBxxi", socket.AF_UNSPEC if not raw else family, prefix, port) + raw
        # a wildcard's remote-end test would also match this host's clients of *other* hosts' etcd
        for code in (BC_S_COND,) if addr.is_unspecified else (BC_S_COND, BC_D_COND):
            conds.append(struct.pack("=BBH", code, 4 + len(hostcond), 4 + len(hostcond) + 4) + hostcond)
    out = b""
    for i, cond in enumerate(conds):
        out += cond
        if i < len(conds) - 1:
            rest = sum(len(c) + 4 for c in conds[i + 1:]) - 4  # the tests after this jump
            out += struct.pack("=BBH", BC_JMP, 4, 4 + rest)
    return out


_MAPPED = bytes(10) + b"\xff\xff"


def _ip(family: int, raw: bytes) -> str:
    """inet_ntop (C, ~20x faster than ipaddress on a table of 50k sockets); IPv4-mapped IPv6 as IPv4."""
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if raw[:12] == _MAPPED:
        return socket.inet_ntop(socket.AF_INET, raw[12:16])
    return socket.inet_ntop(socket.AF_INET6, raw)


def parse(data: bytes, seq: int, ports: frozenset[int] | None = None) -> tuple[list[Row], bool]:
    """The sockets in one datagram of the reply (only those with a local or remote port in `ports`, when
    given), and whether the dump is done (NLMSG_DONE or an error)."""
    rows: list[Row] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, msg_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            return rows, True  # a malformed reply ends the dump rather than looping
        if msg_seq == seq:
            if kind == NLMSG_ERROR and length >= _NLMSGHDR.size + 4:
                errno = -struct.unpack_from("=i", data, offset + _NLMSGHDR.size)[0]
                if errno > 0:
                    raise OSError(errno, f"sock_diag: {os.strerror(errno)}")
            if kind in (NLMSG_DONE, NLMSG_ERROR):
                return rows, True
            if kind == SOCK_DIAG_BY_FAMILY and length >= _NLMSGHDR.size + _MSG.size:
                f = _MSG.unpack_from(data, offset + _NLMSGHDR.size)
                sport, dport = _PORT.unpack(f[4])[0], _PORT.unpack(f[5])[0]
                if ports is None or sport in ports or dport in ports:
                    rows.append(Row(_ip(f[0], f[6]), sport, _ip(f[0], f[7]), dport, f[1], f[14], f[15]))
        offset += (length + 3) & ~3
    return rows, False


class DiagSocket:
    """A blocking sock_diag socket (each dump takes well under a millisecond for a few sockets)."""

    MAX_ROWS = 1_000_000  # per dump: a host with more sockets on etcd's ports than this is cut short

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
        self.sock.settimeout(5.0)
        self.seq = 0

    def dump(self, family: int, states: int, sport: int = 0, dport: int = 0,
             ports: frozenset[int] | None = None, bytecode: bytes = b"") -> list[Row]:
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self.sock.send(request(family, states, self.seq, sport, dport, bytecode))
        rows: list[Row] = []
        while len(rows) < self.MAX_ROWS:
            got, done = parse(self.sock.recv(1 << 16), self.seq, ports)
            rows += got
            if done:
                break
        return rows

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> DiagSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

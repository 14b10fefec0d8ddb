"""Listening sockets for several worker processes, each client address always served by the same one.

The kernel spreads connections over a SO_REUSEPORT group; a classic BPF program attached to the
group picks the socket from the client's *address* alone (not its port), so every connection from
one source reaches the same worker and sees the same keyspace, watches and per-source limits.
`worker_for` is the same function in Python (tests check the kernel agrees with it).
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import sys

SO_ATTACH_REUSEPORT_CBPF = 51  # Linux, asm-generic/socket.h
SKF_NET_OFF = (-0x100000) & 0xFFFFFFFF  # loads relative to the IP header, wherever skb->data is
GOLDEN = 0x9E3779B1  # Fibonacci hashing: consecutive addresses land on different workers

# classic BPF opcodes (linux/filter.h)
_LDB_ABS, _LDW_ABS = 0x30, 0x20
_RSH_K, _MUL_K, _MOD_K, _XOR_X = 0x74, 0x24, 0x94, 0xAC
_JEQ_K, _JA = 0x15, 0x05
_TAX, _RET_A = 0x07, 0x16


def steering_program(workers: int) -> list[tuple[int, int, int, int]]:
    """(code, jt, jf, k) instructions: A = hash(source address) % workers, returned as the socket index.

    IPv4: the 32-bit source address. IPv6: the XOR of its four 32-bit words."""
    if not 1 <= workers <= 0xFFFF:
        raise ValueError("workers must be 1..65535")
    net = SKF_NET_OFF
    v6 = [
        (_LDW_ABS, 0, 0, net + 8), (_TAX, 0, 0, 0),
        (_LDW_ABS, 0, 0, net + 12), (_XOR_X, 0, 0, 0), (_TAX, 0, 0, 0),
        (_LDW_ABS, 0, 0, net + 16), (_XOR_X, 0, 0, 0), (_TAX, 0, 0, 0),
        (_LDW_ABS, 0, 0, net + 20), (_XOR_X, 0, 0, 0),
        (_JA, 0, 0, 1),  # over the IPv4 load
    ]
    head = [
        (_LDB_ABS, 0, 0, net + 0),  # version nibble
        (_RSH_K, 0, 0, 4),
        (_JEQ_K, 0, len(v6), 6),  # IPv6: fall into v6; else jump to the IPv4 load
    ]
    tail = [
        (_LDW_ABS, 0, 0, net + 12),  # IPv4 source address
        (_MUL_K, 0, 0, GOLDEN),
        (_RSH_K, 0, 0, 16),
        (_MOD_K, 0, 0, workers),
        (_RET_A, 0, 0, 0),
    ]
    return head + v6 + tail


def worker_for(address: str, workers: int) -> int:
    """The worker index the steering program gives a client address (IPv4-mapped IPv6 counts as IPv4)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    raw = ip.packed
    word = 0
    for i in range(0, len(raw), 4):
        word ^= int.from_bytes(raw[i:i + 4], "big")
    return (((word * GOLDEN) & 0xFFFFFFFF) >> 16) % workers


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def attach_steering(sock: socket.socket, workers: int) -> None:
    program = steering_program(workers)
    insns = (_SockFilter * len(program))(*[_SockFilter(*insn) for insn in program])
    fprog = _SockFprog(len(program), ctypes.cast(insns, ctypes.POINTER(_SockFilter)))
    # The kernel copies the program during the call; `insns` stays alive until it returns.
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(fprog))


def listen_group(host: str, port: int, workers: int, backlog: int = 1024) -> list[socket.socket]:
    """`workers` listening sockets on one address; socket i receives the sources `worker_for` maps to i.

    The caller keeps every socket open for the group's lifetime: closing one would move the last
    socket into its slot and re-map sources."""
    if not sys.platform.startswith("linux"):
        raise OSError("several workers need Linux (SO_REUSEPORT with a BPF steering program)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:
        # SO_REUSEPORT would let this group join another process's group on the same port (same
        # user) and silently take part of its connections: a plain bind first fails if anyone listens.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    socks: list[socket.socket] = []
    try:
        for i in range(workers):
            sock = socket.socket(family, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port if i == 0 else socks[0].getsockname()[1]))
            sock.listen(backlog)  # joins the group: the listen order is the index order
            if i == 0:
                attach_steering(sock, workers)
            sock.setblocking(False)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


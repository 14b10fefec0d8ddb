"""The SYN capture's kernel filter (classic BPF) and its packet parser, both pure.

The filter runs on an AF_PACKET SOCK_DGRAM socket, so a packet starts at its IP header on every kind of
interface. It keeps only incoming TCP SYNs without ACK (connection openings) to the watched ports, IPv4
(unfragmented, any header length) or IPv6 (TCP as the first next header), and only their first
SNAP_BYTES; address matching and everything else happen in Python on those few packets.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

SNAP_BYTES = 128  # the largest IPv4 header (60) + the TCP header's first 20 bytes fit

# classic BPF opcodes (linux/filter.h)
LD_W_ABS, LD_H_ABS, LD_B_ABS, LD_B_IND = 0x20, 0x28, 0x30, 0x50
LDX_B_MSH = 0xB1
AND_K = 0x54
JEQ_K, JSET_K = 0x15, 0x45
RET_K = 0x06
SKF_AD_PKTTYPE = 0xFFFFF000 + 4  # SKF_AD_OFF + SKF_AD_PKTTYPE
PACKET_OUTGOING = 4
TCP_SYN_ACK_MASK, TCP_SYN = 0x12, 0x02

Insn = tuple[int, int, int, int]


def _assemble(program: Sequence[tuple]) -> list[Insn]:
    """Instructions with symbolic jump targets -> (code, jt, jf, k). A target is a label name or None (next)."""
    labels: dict[str, int] = {}
    real: list[tuple] = []
    for item in program:
        if isinstance(item, str):
            labels[item] = len(real)
        else:
            real.append(item)
    out: list[Insn] = []
    for i, (code, k, *targets) in enumerate(real):
        jt, jf = [*targets, None, None][:2]
        rel = [0 if t is None else labels[t] - i - 1 for t in (jt, jf)]
        if any(not 0 <= r <= 255 for r in rel):
            raise ValueError("BPF jump out of range")
        out.append((code, rel[0], rel[1], k))
    return out


def _port_test(ports: Sequence[int]) -> list[tuple]:
    return [(JEQ_K, p, "accept", None) for p in ports] + [(RET_K, 0)]


def syn_filter(ports: Sequence[int]) -> list[Insn]:
    """A filter accepting incoming TCP SYNs (no ACK) to any of `ports`."""
    ports = sorted(set(ports))
    if not ports or len(ports) > 64:
        raise ValueError("between 1 and 64 ports")
    program: list[tuple] = [
        (LD_W_ABS, SKF_AD_PKTTYPE), (JEQ_K, PACKET_OUTGOING, "drop", None),  # loopback shows each packet twice
        (LD_B_ABS, 0), (AND_K, 0xF0), (JEQ_K, 0x40, "v4", None), (JEQ_K, 0x60, "v6", "drop"),
        "v4",
        (LD_B_ABS, 9), (JEQ_K, 6, None, "drop"),
        (LD_H_ABS, 6), (JSET_K, 0x1FFF, "drop", None),  # a later fragment has no TCP header
        (LDX_B_MSH, 0),
        (LD_B_IND, 13), (AND_K, TCP_SYN_ACK_MASK), (JEQ_K, TCP_SYN, None, "drop"),
        (0x48, 2),  # ldh [x + 2]: destination port
        *_port_test(ports),
        "v6",
        (LD_B_ABS, 6), (JEQ_K, 6, None, "drop"),
        (LD_B_ABS, 40 + 13), (AND_K, TCP_SYN_ACK_MASK), (JEQ_K, TCP_SYN, None, "drop"),
        (LD_H_ABS, 40 + 2),
        *_port_test(ports),
        "accept", (RET_K, SNAP_BYTES),
        "drop", (RET_K, 0),
    ]
    return _assemble(program)


def pack_filter(insns: Sequence[Insn]) -> bytes:
    return b"".join(struct.pack("=HBBI", *insn) for insn in insns)


def parse_syn(packet: bytes) -> tuple[str, int, str, int, int] | None:
    """(src_ip, src_port, dst_ip, dst_port, seq) of a TCP SYN starting at its IP header; None for anything else.

    Checks everything again rather than trusting the filter: the bytes are a stranger's.
    """
    if len(packet) < 20:
        return None
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        if ihl < 20 or packet[9] != 6 or len(packet) < ihl + 20:
            return None
        src, dst, tcp = packet[12:16], packet[16:20], packet[ihl:ihl + 20]
    elif version == 6:
        if len(packet) < 60 or packet[6] != 6:
            return None
        src, dst, tcp = packet[8:24], packet[24:40], packet[40:60]
    else:
        return None
    sport, dport, seq = struct.unpack_from("!HHI", tcp)
    if tcp[13] & TCP_SYN_ACK_MASK != TCP_SYN:
        return None
    return str(ipaddress.ip_address(src)), sport, str(ipaddress.ip_address(dst)), dport, seq

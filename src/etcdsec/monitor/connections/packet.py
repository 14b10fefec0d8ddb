"""Root source: every TCP SYN to a watched port, captured with AF_PACKET and a kernel BPF filter.

It sees each connection opening however short the connection, on every interface of this network
namespace, without touching firewall rules. The kernel keeps only SYNs to the watched ports (see bpf.py),
so the rest of the traffic costs nothing in Python. A full receive buffer is the one way to miss a SYN,
and the kernel counts those drops (PACKET_STATISTICS): they are reported, never silent.
"""

from __future__ import annotations

import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Sequence

from etcdsec.monitor.connections.bpf import SNAP_BYTES, pack_filter, parse_syn, syn_filter
from etcdsec.monitor.connections.model import Connection, Endpoint, normalize_ip

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
RCVBUF = 32 << 20  # room for ~100k queued SYNs while Python is busy
MAX_PER_READ = 10_000  # packets taken per wake-up before the event loop gets a turn
RECENT = 65_536  # SYNs remembered to drop retransmissions of the same opening


class PacketSource:
    name = "packet"
    misses = "nothing while its receive buffer keeps up (SYNs the kernel drops are counted)"

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self.endpoints = list(endpoints)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        try:
            insns = syn_filter([e.port for e in endpoints])
            blob = pack_filter(insns)
            import ctypes

            buf = ctypes.create_string_buffer(blob)
            fprog = struct.pack("HL", len(insns), ctypes.addressof(buf))
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            self._filter_buf = buf  # the kernel copies it, but keep it alive until then anyway
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.recent: OrderedDict[tuple[str, int, str, int, int], None] = OrderedDict()
        self.drops = 0
        self.packets = 0
        self._drain_stats()  # packets queued before the filter was attached are not ours

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> list[Connection]:
        """Every SYN queued now (up to MAX_PER_READ), retransmissions dropped."""
        out: list[Connection] = []
        now = time.time()
        for _ in range(MAX_PER_READ):
            try:
                data = self.sock.recv(SNAP_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            self.packets += 1
            syn = parse_syn(data)
            if syn is None:
                continue
            src, sport, dst, dport, seq = syn
            src, dst = normalize_ip(src), normalize_ip(dst)
            if not any(e.matches(dst, dport) for e in self.endpoints):
                continue
            key = (src, sport, dst, dport, seq)
            if key in self.recent:
                continue
            self.recent[key] = None
            if len(self.recent) > RECENT:
                self.recent.popitem(last=False)
            out.append(Connection(src, sport, dst, dport, now))
        return out

    def _drain_stats(self) -> int:
        """SYNs the kernel dropped for lack of buffer since the last call (the counters reset on read)."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        _packets, drops = struct.unpack("II", raw)
        return drops

    def update_drops(self) -> int:
        self.drops += self._drain_stats()
        return self.drops

    def close(self) -> None:
        self.sock.close()

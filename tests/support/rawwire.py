"""Raw-socket observation of what a server does with a connection's first bytes: the exact bytes it
answers, how the connection ends (FIN, RST, or still open), and how soon, bucketed.

Used by the first-bytes differential tests and by `python -m tests.support.rawwire` to print the
measurement table for docs/honeypot-fidelity.md. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

HOLD_S = 3.0  # a connection still open after this long counts as "held"
IMMEDIATE_S = 1.0  # closed within this counts as "immediate"
MAX_ANSWER = 65536


@dataclass(frozen=True)
class Outcome:
    answer: bytes  # every byte the server sent (capped at MAX_ANSWER)
    end: str  # "fin" (orderly close), "rst" (reset), "held" (still open after HOLD_S)
    seconds: float

    @property
    def bucket(self) -> str:
        if self.end == "held":
            return "held"
        return "immediate" if self.seconds < IMMEDIATE_S else "later"

    def row(self) -> str:
        shown = repr(self.answer[:60]) + ("…" if len(self.answer) > 60 else "")
        return f"{self.end:<4} {self.bucket:<9} {len(self.answer):>5} B {shown}"


@dataclass(frozen=True)
class Shape:
    name: str
    pieces: tuple[bytes, ...]  # sent one after another, `gap_s` apart
    gap_s: float = 0.0
    half_close: bool = False  # shutdown(SHUT_WR) after the last piece


def observe(ip: str, port: int, shape: Shape, hold_s: float = HOLD_S) -> Outcome:
    """Send `shape` and watch the connection for at most `hold_s` seconds after the last piece."""
    if not ipaddress.ip_address(ip).is_loopback:
        raise ValueError("raw-wire observations go to loopback only")
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        sock.connect((ip, port))
        answer = b""
        for i, piece in enumerate(shape.pieces):
            if i and shape.gap_s:
                time.sleep(shape.gap_s)
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                return Outcome(answer, "rst", 0.0)
        if shape.half_close:
            sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        deadline = started + hold_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return Outcome(answer, "held", hold_s)
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                return Outcome(answer, "rst", time.monotonic() - started)
            if not chunk:
                return Outcome(answer, "fin", time.monotonic() - started)
            answer = (answer + chunk)[:MAX_ANSWER]


def main() -> None:
    """Print the table: every shape against etcd 3.5.1 and 3.4.23 (started here on loopback)."""
    from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
    from tests.support.first_bytes import SHAPES

    servers = {v: EtcdServer(EtcdConfig(version=v)).start() for v in ("3.5", "3.4")}
    try:
        with ThreadPoolExecutor(8) as pool:  # the held shapes wait HOLD_S each: side by side
            jobs = [(shape, version, pool.submit(observe, server.ip, server.config.client_port, shape))
                    for shape in SHAPES for version, server in servers.items()]
            for shape, version, job in jobs:
                out = job.result()
                print(f"{shape.name:<34} etcd {version}: {out.row()}  ({out.seconds:.3f} s)")
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()

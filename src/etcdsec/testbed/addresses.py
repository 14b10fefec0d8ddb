"""Hand out loopback addresses that nothing else is listening on."""

from __future__ import annotations

import ipaddress
import random
import socket
import threading

_lock = threading.Lock()
_given: set[str] = set()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_loopback_ip(ports: tuple[int, ...] = (2379, 2380)) -> str:
    """A random 127.x.y.z (x >= 100) where every port in `ports` is free, never handed out twice."""
    rng = random.SystemRandom()
    with _lock:
        for _ in range(1000):
            ip = str(ipaddress.IPv4Address((127 << 24) | rng.randrange(100 << 16, 255 << 16) | rng.randrange(2, 254)))
            if ip in _given:
                continue
            if all(port_free(ip, p) for p in ports):
                _given.add(ip)
                return ip
    raise RuntimeError("no free loopback address found")

#!/usr/bin/env python3
"""Instructions per HTTP/1 request in the honeypot process, end to end (event loop and sockets included).

Usage:  .venv/bin/python bench/http1_callgrind.py [--request version|put|careful] [--requests 100,600]
                                                  [--ip 127.9.9.26]

Starts `etcdsec honeypot --enable-v2 true --rate 0` under callgrind twice, sends it the given number
of sequential keep-alive requests (after 20 warm-up ones) over one socket, stops it with SIGTERM and
reads callgrind's total; the difference over the difference in requests is the per-request cost,
start-up excluded. `version` (GET /version) and `put` (v2 PUT) take the fast recogniser; `careful`
(GET /version with a %-escape in the query) is one the recogniser leaves to h11. Loopback only; at
most 5,000 requests per run; each run bounded by a timeout.
"""

from __future__ import annotations

import argparse
import re
import socket
import sys

from callgrind_honeypot import MAX_REQUESTS, PORT, counts, instructions, per_request

from etcdsec.testbed.addresses import is_loopback

REQUESTS = {
    "version": b"GET /version HTTP/1.1\r\nHost: h\r\n\r\n",
    "put": b"PUT /v2/keys/bench HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           b"Content-Length: 7\r\n\r\nvalue=v",
    "careful": b"GET /version?x=%41 HTTP/1.1\r\nHost: h\r\n\r\n",
}


def _one(sock: socket.socket, request: bytes) -> None:
    """Send one request and read its whole answer (Content-Length bodies only)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        body += chunk


def run(n: int, request: bytes, ip: str) -> int:
    def drive() -> None:  # n sequential keep-alive requests after 20 warm-up ones, over one socket
        with socket.create_connection((ip, PORT), timeout=120) as sock:
            for _ in range(20 + n):
                _one(sock, request)

    return instructions(ip, ["--enable-v2", "true", "--rate", "0"], drive)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--request", choices=sorted(REQUESTS), default="version")
    parser.add_argument("--requests", default="100,600", help="two request counts, A<B")
    parser.add_argument("--ip", default="127.9.9.26")
    args = parser.parse_args()
    ab = counts(args.requests)
    if not is_loopback(args.ip) or ab is None:
        print(f"http1_callgrind: --ip on 127.0.0.0/8, --requests A<B<={MAX_REQUESTS}", file=sys.stderr)
        return 2
    request = REQUESTS[args.request]
    cost = per_request(lambda n: run(n, request, args.ip), *ab)
    print(f"{args.request}: {cost} instructions per request, end to end")
    return 0


if __name__ == "__main__":
    sys.exit(main())

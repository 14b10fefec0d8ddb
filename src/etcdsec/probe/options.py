"""Knobs for one probe. Every read and wait is bounded by one of these."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProbeOptions:
    deadline: float = 10.0  # whole endpoint, all requests included
    connect_timeout: float = 3.0
    request_timeout: float = 4.0
    max_body: int = 1 << 20  # bytes kept from any response
    max_connections: int = 4  # per endpoint
    max_prefix_queries: int = 48  # bound on count_only calls used to size key prefixes
    collect_data: bool = True  # count keys by prefix (names only, never values)
    scheme: str | None = None  # force "http"/"https"; None detects
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    user: str | None = None
    password: str | None = None
    # Opt-in: decide v2 guest write access with a PUT that can only fail (prevExist on a random
    # missing key). It changes no key but adds one entry to the raft log.
    check_write: bool = False

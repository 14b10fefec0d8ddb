"""The sensor's hard caps: connections, sizes, times, request rate. One object, set from the command line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Limits:
    """Hard caps. A source that exceeds them is throttled or cut off; the sensor is not."""

    max_connections: int = 1024
    max_connections_per_source: int = 64
    max_request_bytes: int = 1 << 20  # one HTTP body / gRPC message
    max_header_count: int = 100
    max_header_bytes: int = 16 << 10
    idle_timeout_s: float = 120.0
    # A request head (request line + headers) must be in within this, counted from the connection's
    # start or the head's first byte (Go's ReadHeaderTimeout, nginx's client_header_timeout): far
    # below the idle time, so a slowloris holds a slot for seconds, not minutes.
    header_timeout_s: float = 10.0
    rate_per_source: float = 200.0  # requests per second, token bucket refill
    burst_per_source: int = 400
    # v2 ?wait=true and v3 watches: held at most this long; 0 = until the client leaves, as etcd does
    # (the connection caps bound how many; TCP keepalive finds clients that vanished)
    wait_timeout_s: float = 0.0
    # v3 store (HP-V3) and v2 store share these
    max_keys: int = 100_000
    max_store_bytes: int = 64 << 20
    max_value_bytes: int = 1 << 20
    max_watches: int = 1000
    max_watches_per_source: int = 64
    max_logged_body: int = 4096  # bytes of a body copied into an event

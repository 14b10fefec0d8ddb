"""Seeded hostile inputs for the whole sensor (tests/honeypot/test_fuzz.py, bench/honeypot_fuzz.py).

`case(rng)` returns what one client sends on one connection: a list of writes and whether it then
half-closes. The grammar mixes what attackers send (HTTP/1.x with every framing trick, gateway JSON
nested past Go's limits, v2 forms, WebSockets, h2c with reused and odd frames, PROXY headers, TLS
on the plain port) with byte-level mutation of all of it. The same seed gives the same inputs.
"""

from __future__ import annotations

import base64
import json
import random
import struct
from dataclasses import dataclass

import h2.config
import h2.connection

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PROXY_V2 = b"\r\n\r\n\x00\r\nQUIT\n"
METHODS = ["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "PRI", "get", "G\x00T", ""]
PATHS = ["/version", "/health", "/metrics", "/debug/vars", "/v2/keys/", "/v2/keys/a", "/v2/keys/a?wait=true",
         "/v2/keys/d?recursive=true&sorted=true", "/v2/keys/a?ttl=-1", "/v2/members", "/v2/machines",
         "/v2/auth/users/root", "/v2/auth/enable", "/v2/stats/self", "/v2/stats/store", "/v3/kv/range",
         "/v3/kv/put", "/v3/kv/txn", "/v3/kv/deleterange", "/v3/watch", "/v3/lease/grant", "/v3/lease/keepalive",
         "/v3/auth/authenticate", "/v3/maintenance/status", "/v3beta/kv/range", "/v3alpha/kv/range", "*",
         "//..//", "/v2/keys/%zz", "/v3", "http://x/version", "/" + "a" * 5000]
VERSIONS = ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1", "HTTP/1.1 x", "", "HTTP/9.9"]
HEADERS = ["Host", "Content-Length", "Transfer-Encoding", "Content-Type", "Connection", "Expect", "Upgrade",
           "X-Forwarded-For", "Authorization", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Origin", "X"]
VALUES = ["x", "", "0", "-1", "5", "99999999999999999999", "chunked", "gzip, chunked", "close", "keep-alive",
          "Upgrade", "websocket", "100-continue", "application/json", "application/x-www-form-urlencoded",
          "203.0.113.9, 127.0.0.1", "Basic cm9vdDpyb290", "dGhlIHNhbXBsZSBub25jZQ==", "13", "\x7f", "a\tb"]
GRPC_PATHS = ["/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put", "/etcdserverpb.KV/Txn", "/etcdserverpb.Watch/Watch",
              "/etcdserverpb.Lease/LeaseKeepAlive", "/etcdserverpb.Maintenance/Status", "/grpc.health.v1.Health/Check",
              "/nope.Service/X", "/"]


@dataclass
class Case:
    kind: str
    writes: list[bytes]
    half_close: bool


def case(rng: random.Random) -> Case:
    kind = rng.choices(list(_KINDS), weights=[w for w, _ in _KINDS.values()])[0]
    writes = _KINDS[kind][1](rng)
    if rng.random() < 0.25:  # mutate one write at byte level
        i = rng.randrange(len(writes))
        writes[i] = mutate(rng, writes[i])
    if rng.random() < 0.2 and len(writes) == 1 and len(writes[0]) > 2:  # split it: a slow client
        cut = rng.randrange(1, len(writes[0]))
        writes = [writes[0][:cut], writes[0][cut:]]
    return Case(kind, writes, half_close=rng.random() < 0.5)


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 2:
            del buf[pos:pos + rng.randint(1, 16)]
        else:
            buf[pos:pos] = rng.choice([b"\r\n", b"\n", b"\r\n\r\n", b"\x00", b"{", b"[" * 600, b"%", b"\\u"])
    return bytes(buf)


def nested(rng: random.Random) -> str:
    depth = rng.choice([50, 400, 500, 999, 3000, 10000, 10001, 20000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}"), ('{"success":[{"request_txn":', "}]}")])
    inner = opener * depth + "1" + closer * depth
    return rng.choice([inner, '{"key":' + inner + "}", '{"key":"YQ==","x":' + inner + "}", opener * depth])


def json_body(rng: random.Random) -> bytes:
    pick = rng.random()
    if pick < 0.25:
        return nested(rng).encode()
    if pick < 0.35:
        return rng.randbytes(rng.randint(0, 64))
    keys = ["key", "range_end", "value", "limit", "revision", "TTL", "ID", "create_request", "compare", "success",
            "name", "password", "lease", "prev_kv", "keys_only", "sort_order"]
    values: list[object] = ["YQ==", "AA==", "%%%", "\ud800", "1", "-1", 7, True, None, [], {}, [1, 2], {"key": "YQ=="},
                            "9223372036854775808", 1.5, "x" * 300, [{"request_put": {"key": "YQ==", "value": "Yg=="}}]]
    obj = {rng.choice(keys): rng.choice(values) for _ in range(rng.randint(0, 5))}
    return json.dumps(obj).encode("utf-8", "surrogatepass")


def http_request(rng: random.Random, body: bytes | None = None, path: str | None = None) -> bytes:
    method = rng.choice(METHODS) if rng.random() < 0.3 else rng.choice(["GET", "PUT", "POST"])
    path = path or (rng.choice(PATHS) if rng.random() < 0.9 else "/" + rng.randbytes(8).decode("latin-1"))
    if body is None:
        body = json_body(rng) if "/v3" in path else rng.choice([b"", b"value=1", b"value=%zz&ttl=x", rng.randbytes(20)])
    headers = [("Host", "x")] if rng.random() < 0.9 else []
    if body:
        headers.append(("Content-Length", str(len(body)) if rng.random() < 0.85 else rng.choice(VALUES)))
    for _ in range(rng.randint(0, 3) if rng.random() < 0.5 else 0):
        headers.append((rng.choice(HEADERS), rng.choice(VALUES)))
    if rng.random() < 0.05:
        headers += [("X-Many", "y")] * rng.choice([101, 500])
    sep = "\r\n" if rng.random() < 0.9 else rng.choice(["\n", "\r"])
    version = "HTTP/1.1" if rng.random() < 0.85 else rng.choice(VERSIONS)
    head = f"{method} {path} {version}{sep}" + "".join(f"{k}: {v}{sep}" for k, v in headers) + sep
    if rng.random() < 0.1 and body:  # chunked instead, right or wrong
        head = head.replace("Content-Length", "Transfer-Encoding", 1)
        body = b"%x\r\n" % len(body) + body + rng.choice([b"\r\n0\r\n\r\n", b"\r\n", b"zz\r\n"])
    return head.encode("utf-8", "surrogatepass") + body


def _http(rng: random.Random) -> list[bytes]:
    reqs = [http_request(rng) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    if rng.random() < 0.2:
        reqs.insert(0, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")  # off the fast path, onto h11
    return [b"".join(reqs)]


def _gateway(rng: random.Random) -> list[bytes]:
    path = rng.choice(["/v3/kv/range", "/v3/kv/put", "/v3/kv/txn", "/v3/watch", "/v3/lease/keepalive",
                       "/v3/lease/grant", "/v3/auth/authenticate"])
    return [http_request(rng, json_body(rng), path)]


def _held(rng: random.Random) -> list[bytes]:
    """Watches and waits, then more requests on the same connection."""
    watch = b'{"create_request":{"key":"YQ=="}}'
    held = rng.choice([b"POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: 33\r\n\r\n" + watch,
                       b"GET /v2/keys/a?wait=true HTTP/1.1\r\nHost: x\r\n\r\n"])
    prefix = b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n" if rng.random() < 0.5 else b""
    return [prefix + held, http_request(rng)]


def ws_frame(rng: random.Random, payload: bytes, opcode: int = 1) -> bytes:
    masked = rng.random() < 0.9
    n = len(payload)
    length = (bytes([0x80 * masked | n]) if n < 126 else bytes([0x80 * masked | 126]) + struct.pack("!H", n)
              if n < 65536 else bytes([0x80 * masked | 127]) + struct.pack("!Q", n))
    return bytes([0x80 * (rng.random() < 0.9) | opcode]) + length + (b"\0\0\0\0" if masked else b"") + payload


def _websocket(rng: random.Random) -> list[bytes]:
    path = rng.choice(["/v3/watch", "/v3/lease/keepalive", "/v3beta/watch", "/version"])
    hello = (f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    frames = b""
    for _ in range(rng.randint(0, 4)):
        payload = json_body(rng) if rng.random() < 0.7 else rng.randbytes(rng.randint(0, 40))
        frames += ws_frame(rng, payload, rng.choice([0, 1, 1, 1, 2, 8, 9, 10, 3]))
    if rng.random() < 0.1:
        frames += bytes([0x81, 0xFF]) + b"\xff" * 8  # a 2^64-1 byte frame announced
    return [hello + frames]


def _h2(rng: random.Random) -> list[bytes]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, validate_outbound_headers=False))
    client.initiate_connection()
    out = client.data_to_send()
    for _ in range(rng.randint(1, 4)):
        sid = client.get_next_available_stream_id()
        path = rng.choice(GRPC_PATHS)
        client.send_headers(sid, [(":method", rng.choice(["POST", "GET"])), (":scheme", "http"), (":authority", "x"),
                                  (":path", path), ("content-type", rng.choice(["application/grpc", "text/plain"])),
                                  ("te", "trailers")])
        msg = rng.randbytes(rng.randint(0, 30))
        client.send_data(sid, b"\0" + struct.pack("!I", len(msg)) + msg, end_stream=rng.random() < 0.8)
    out += client.data_to_send()
    if rng.random() < 0.2:  # HEADERS again on stream 1, in the same write
        again = client.encoder.encode([(":method", "POST"), (":path", rng.choice(GRPC_PATHS))])
        out += struct.pack("!I", len(again))[1:] + bytes([1, 4]) + struct.pack("!I", 1) + again
    for _ in range(rng.randint(0, 3)):  # raw frames: any type, flags, stream id (reused ones too)
        payload = rng.randbytes(rng.randint(0, 20))
        out += (struct.pack("!I", len(payload))[1:] + bytes([rng.randrange(11), rng.randrange(256)])
                + struct.pack("!I", rng.choice([0, 1, 1, 3, 2, 2**31 - 1])) + payload)
    return [out]


def _proxy(rng: random.Random) -> list[bytes]:
    header = rng.choice([b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 2379\r\n", b"PROXY UNKNOWN\r\n",
                         b"PROXY TCP6 ::1 ::1 1 2\r\n", b"PROXY TCP4 1.2.3\r\n",
                         PROXY_V2 + bytes([0x21, 0x11, 0, 12]) + bytes([203, 0, 113, 8, 10, 0, 0, 1, 0, 80, 9, 83]),
                         PROXY_V2 + rng.randbytes(rng.randint(0, 20))])
    return [header + rng.choice([http_request(rng), PREFACE, b""])]


def _raw(rng: random.Random) -> list[bytes]:
    start = rng.choice([b"\x16\x03\x01", PREFACE[:rng.randint(1, 23)], b"", b"\x00" * 30])
    return [start + rng.randbytes(rng.randint(0, 300))]


def _v2_forms(rng: random.Random) -> list[bytes]:
    keys = ["value", "ttl", "dir", "prevExist", "prevValue", "prevIndex", "recursive", "refresh", "wait", "waitIndex"]
    form = "&".join(f"{rng.choice(keys)}={rng.choice(['', 'true', '-1', 'x', '99999999999999999999', '%zz'])}"
                    for _ in range(rng.randint(0, 4)))
    path = "/v2/keys/" + rng.choice(["a", "d/", "a/b", "_h", "%20", ""])
    body = form.encode()
    method = rng.choice(["PUT", "POST", "DELETE", "GET"])
    return [(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
             f"Content-Length: {len(body)}\r\n\r\n").encode() + body]


def _b64_token(rng: random.Random) -> list[bytes]:
    token = base64.b64encode(rng.randbytes(12)).decode()
    return [f"GET /v2/keys/{token} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()]


_KINDS = {"http": (30, _http), "gateway": (20, _gateway), "held": (5, _held), "websocket": (10, _websocket),
          "h2": (12, _h2), "proxy": (5, _proxy), "raw": (8, _raw), "v2form": (7, _v2_forms), "token": (3, _b64_token)}


# --- the driver: every case on its own connection, many at once ------------------------------------
@dataclass
class FuzzStats:
    seed: int
    inputs: int = 0
    server_errors: int = 0  # answers with status 500 (an unexpected error answered like Go's recover)
    hangs: int = 0  # connections the sensor still held `hang_after` seconds after the last byte
    hung_kinds: list[str] | None = None

    def line(self) -> str:
        return f"seed {self.seed}: {self.inputs} inputs, {self.server_errors} HTTP 500, {self.hangs} held past timeouts"


async def run_fuzz(host: str, port: int, seed: int, count: int, concurrency: int, hang_after: float,
                   sources: int = 32, max_seconds: float = 600.0) -> FuzzStats:
    """Send `count` cases from `seed` (bounded: at most `max_seconds` in all); loopback only."""
    import asyncio
    import time

    from etcdsec.testbed.addresses import is_loopback

    if not is_loopback(host):
        raise ValueError("the fuzzer sends to loopback only")
    rng = random.Random(seed)
    cases = [case(rng) for _ in range(count)]
    stats = FuzzStats(seed, hung_kinds=[])
    gate = asyncio.Semaphore(concurrency)
    stop_at = time.monotonic() + max_seconds

    async def one(i: int, c: Case) -> None:
        async with gate:
            if time.monotonic() > stop_at:
                return
            src = f"127.93.{i % sources // 250}.{i % sources % 250 + 1}"
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, local_addr=(src, 0), limit=1 << 20), 5)
            except (OSError, TimeoutError):
                return
            stats.inputs += 1
            tail = b""
            try:
                for w in c.writes:
                    writer.write(w)
                    await writer.drain()
                if c.half_close and writer.can_write_eof():
                    writer.write_eof()
                async with asyncio.timeout(hang_after):
                    got = 0
                    while chunk := await reader.read(65536):
                        window = tail + chunk
                        if b"HTTP/1.1 500 " in window or b"HTTP/1.0 500 " in window:
                            stats.server_errors += 1
                            tail = b""
                        else:
                            tail = window[-16:]
                        got += len(chunk)
                        if got > 64 << 20:  # bounded: a stream that never ends is a hang too
                            raise TimeoutError
            except TimeoutError:
                stats.hangs += 1
                assert stats.hung_kinds is not None
                stats.hung_kinds.append(c.kind)
            except (OSError, ConnectionError):
                pass
            finally:
                writer.close()

    await asyncio.gather(*(one(i, c) for i, c in enumerate(cases)))
    return stats

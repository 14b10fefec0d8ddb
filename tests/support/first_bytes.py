"""The first-bytes shapes sent to real etcd and the honeypot side by side: non-HTTP first lines,
partial heads, silence, the HTTP/2 preface and its near misses, and TLS ClientHellos (frozen in
corpus/clienthellos.json so whether a 0x0a byte occurs, and where, never changes between runs)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.rawwire import Shape

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS_EMPTY = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"

HELLOS: dict[str, bytes] = {
    name: bytes.fromhex(entry["hex"])
    for name, entry in json.loads((Path(__file__).parent / "corpus" / "clienthellos.json").read_text()).items()
}
# the same TLS 1.2 hello with a 0x0a inside its random, before byte 24: cmux judges the first line
# from the 24 bytes its HTTP/2 matcher read, and closes with the rest unread
TLS12_EARLY_LF = HELLOS["tls12"][:20] + b"\n" + HELLOS["tls12"][21:]

SHAPES: list[Shape] = [
    Shape("ssh banner", (b"SSH-2.0-OpenSSH_8.9\r\n",)),
    Shape("redis inline PING", (b"PING\r\n",)),
    Shape("redis RESP PING", (b"*1\r\n$4\r\nPING\r\n",)),
    Shape("hello\\n", (b"hello\n",)),
    Shape("\\r\\n\\r\\n", (b"\r\n\r\n",)),
    Shape("GET line, no blank line", (b"GET / HTTP/1.1\r\n",)),
    Shape("GET / (HTTP/0.9 style)", (b"GET /\r\n",)),
    Shape("GET line HTTP/2.0", (b"GET / HTTP/2.0\r\n\r\n",)),
    # cmux takes any method (even lower-case or unknown): Go's own 400 for the bad header follows
    Shape("FOO method, bad header", (b"FOO / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n",)),
    Shape("get method, bad header", (b"get / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n",)),
    Shape("partial head, silence", (b"GET / HTTP/1.1\r\nHost: x\r\n",)),
    Shape("a few bytes, silence", (b"abc",)),
    Shape("0 bytes, silence", ()),
    Shape("non-HTTP line + more (40 B)", (b"hello\n" + b"x" * 34,)),
    Shape("long line > 4096, no LF", (b"A" * 5000,)),
    Shape("4095 B then LF", (b"A" * 4095 + b"\n",)),
    Shape("hello, half-closed", (b"hello",), half_close=True),
    Shape("GET line no LF, half-closed", (b"GET / HTTP/1.1",), half_close=True),
    Shape("h2 preface + SETTINGS", (H2_PREFACE + SETTINGS_EMPTY,)),
    Shape("h2 preface, partial", (H2_PREFACE[:16],)),
    Shape("h2 preface, wrong tail", (b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",)),
    Shape("h2 preface in 2 pieces", (H2_PREFACE[:10], H2_PREFACE[10:] + SETTINGS_EMPTY), gap_s=0.2),
    # grpc-go's handshake: the first frame after the preface must be a whole SETTINGS frame
    Shape("h2 preface only", (H2_PREFACE,)),
    Shape("h2 preface + DATA on stream 0", (H2_PREFACE + b"\x00" * 9,)),
    Shape("h2 preface + PING first", (H2_PREFACE + b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678",)),
    Shape("h2 preface + HTTP/1 line", (H2_PREFACE + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",)),
    Shape("h2 preface + SETTINGS, bad length", (H2_PREFACE + b"\x00\x00\x05\x04\x00\x00\x00\x00\x00" + b"\x00" * 5,)),
    Shape("h2 preface + SETTINGS, half", (H2_PREFACE + b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03",)),
    *(Shape(f"TLS {name}", (hello,)) for name, hello in HELLOS.items()),
    Shape("TLS tls12, LF at byte 20", (TLS12_EARLY_LF,)),
    Shape("TLS truncated (record header)", (HELLOS["tls12"][:5],)),
    Shape("TLS tls13_sni in 2 pieces", (HELLOS["tls13_sni"][:5], HELLOS["tls13_sni"][5:]), gap_s=0.2),
]

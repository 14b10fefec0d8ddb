"""What etcd does with the first bytes of a plain-text client connection, byte for byte.

etcd (3.0 to 3.5, `embed/serve.go`) puts `soheilhy/cmux` in front of an insecure client port with two
matchers, tried in order: `cmux.HTTP2()` (the 24-byte client preface) for gRPC, then `cmux.HTTP1()`
(the first line, read through a 4096-byte `bufio.Reader`, must be `METHOD SP URI SP HTTP/1.x`).
A connection neither matches is closed without a byte sent; etcd sets no cmux read timeout, so a
client that stays quiet mid-line is held for ever. `CmuxSniffer` is that decision as a pure state
machine (the bytes seen so far in, a verdict out); `judge` is the thin asyncio around it that peeks
at the socket, reads off exactly the bytes cmux would have read (so the kernel answers the close
with FIN or RST as it does for etcd: RST when unread bytes remain) and logs what it closed.
Measured against etcd 3.4.23 and 3.5.1 in docs/honeypot-fidelity.md ("First bytes").
"""

from __future__ import annotations

import asyncio
import base64
import re
import select
import socket
import time
from dataclasses import dataclass
from enum import StrEnum

from etcdsec.honeypot.context import SensorContext
from etcdsec.honeypot.core.session import Session

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_HTTP1_READ = 4096  # cmux's maxHTTPRead, also bufio's default buffer: a longer first line is refused
_ATOI = re.compile(rb"[+-]?[0-9]+")  # what Go's strconv.Atoi accepts
_POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)


class Verdict(StrEnum):
    READ_MORE = "read more"  # cmux is still reading (for ever if nothing comes)
    HTTP2 = "http2"  # the gRPC server gets the connection, every byte replayed
    HTTP1 = "http1"  # the HTTP/1 server gets it
    CLOSE = "close"  # closed without a byte: FIN, or RST when the client sent more than cmux read


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    read: int = 0  # bytes cmux has taken off the socket when it decides
    reason: str = ""


def strict_http_version(go_version: str) -> bool:
    """Go 1.18 made http.ParseHTTPVersion accept only `HTTP/D.D` (golang/go#46587); before it,
    `HTTP/01.1` or `HTTP/+1.1` passed as 1.1."""
    found = re.match(r"go(\d+)\.(\d+)", go_version)
    return found is not None and (int(found[1]), int(found[2])) >= (1, 18)


def http_major(proto: bytes, strict: bool) -> int | None:
    """The major version Go's http.ParseHTTPVersion reads from `proto`, None when it refuses it."""
    if proto in (b"HTTP/1.1", b"HTTP/1.0"):
        return 1
    if not proto.startswith(b"HTTP/"):
        return None
    if strict:
        ok = len(proto) == 8 and proto[6:7] == b"." and proto[5:6].isdigit() and proto[7:8].isdigit()
        return int(proto[5:6]) if ok else None
    major, dot, minor = proto[5:].partition(b".")
    if not dot or not _ATOI.fullmatch(major) or not _ATOI.fullmatch(minor):
        return None
    if not (0 <= int(major) <= 1_000_000 and 0 <= int(minor) <= 1_000_000):
        return None
    return int(major)


def request_line_ok(line: bytes, strict: bool) -> bool:
    """cmux's parseRequestLine (two spaces, anything between them) plus `HTTP/1.x`."""
    first = line.find(b" ")
    second = line.find(b" ", first + 1)
    if first < 0 or second < 0:
        return False
    return http_major(line[second + 1:], strict) == 1


class CmuxSniffer:
    """cmux's two matchers over a connection's first bytes, as reads from the socket.

    Feed every byte the client has sent so far (each call at least what the last one saw) and whether
    it shut its side down. The HTTP/2 matcher reads into a 24-byte buffer until the preface is whole
    or differs; the HTTP/1 matcher then gets those bytes replayed first and reads more only while
    no LF is among them. Time plays no part: etcd gives cmux no read timeout.
    """

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.read = 0  # bytes taken off the socket so far
        self.h2_refused = False

    def feed(self, seen: bytes, eof: bool) -> Judgement:
        if not self.h2_refused:
            self.read = max(self.read, min(len(H2_PREFACE), len(seen)))
            if seen[:self.read] != H2_PREFACE[:self.read]:
                self.h2_refused = True
            elif self.read == len(H2_PREFACE):
                return Judgement(Verdict.HTTP2, self.read)
            elif eof:
                self.h2_refused = True  # a read error (EOF) is a no
            else:
                return Judgement(Verdict.READ_MORE, self.read)
        while True:
            newline = seen.find(b"\n", 0, self.read)
            if newline >= 0:
                return self._judge_line(seen[:newline + 1])
            if self.read >= MAX_HTTP1_READ:
                return Judgement(Verdict.CLOSE, self.read, f"no LF in the first {MAX_HTTP1_READ} bytes")
            if len(seen) > self.read:  # one more bufio fill: whatever has arrived, up to the limit
                self.read = min(MAX_HTTP1_READ, len(seen))
                continue
            if eof:  # bufio's ReadLine hands back an unterminated last line without an error
                if not self.read:
                    return Judgement(Verdict.CLOSE, 0, "closed before sending a byte")
                return self._judge_line(seen[:self.read])
            return Judgement(Verdict.READ_MORE, self.read)

    def _judge_line(self, line: bytes) -> Judgement:
        if line.endswith(b"\n"):  # ReadLine drops "\n" or "\r\n", nothing else
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if request_line_ok(line, self.strict):
            return Judgement(Verdict.HTTP1, self.read)
        return Judgement(Verdict.CLOSE, self.read, "first line is not an HTTP/1 request line")


def guess_protocol(data: bytes) -> str:
    """A label for the log: what the closed connection probably spoke."""
    if data[:1] == b"\x16" or (data[:1] and data[0] & 0x80 and data[2:3] == b"\x01"):
        return "tls"
    if data.startswith(b"SSH-"):
        return "ssh"
    if data.startswith(b"PRI * HTTP/2"):
        return "h2"
    return "raw"


async def judge(conn: socket.socket, ctx: SensorContext, session: Session,
                timeout: float) -> tuple[str | None, bytes]:
    """Wait (at most `timeout` from the connection's start) until cmux would decide.

    HTTP/1 or HTTP/2: (None, the bytes so far, nothing consumed). Refused: the bytes cmux read are
    consumed and logged, the caller closes the socket and the kernel sends FIN or RST as it does for
    etcd; returns (the end reason, b"")."""
    loop = asyncio.get_running_loop()
    sniffer = CmuxSniffer(strict_http_version(ctx.persona.go_version))
    deadline = loop.time() + timeout - (time.monotonic() - session.started)
    seen = b""
    while True:
        eof = _peer_shut_down(conn)
        try:
            seen = conn.recv(MAX_HTTP1_READ + 1, socket.MSG_PEEK) or seen
        except BlockingIOError:
            pass
        verdict = sniffer.feed(seen, eof)
        if verdict.verdict in (Verdict.HTTP1, Verdict.HTTP2):
            return None, seen
        if verdict.verdict is Verdict.CLOSE:
            return _refuse(conn, ctx, session, seen, verdict.read, verdict.reason), b""
        if eof or not await _more_bytes(conn, len(seen), deadline - loop.time()):
            # our own bound (etcd has none): give up on a client that stays quiet mid-line
            return _refuse(conn, ctx, session, seen, len(seen), "first line not finished in time",
                           timed_out=True), b""


def _refuse(conn: socket.socket, ctx: SensorContext, session: Session, seen: bytes, read: int, reason: str,
            timed_out: bool = False) -> str:
    taken = conn.recv(read) if read else b""  # what cmux read; anything beyond it makes close() a RST
    close = "rst" if len(seen) > len(taken) else "fin"
    session.bytes_in += len(taken)
    logged = seen[:ctx.limits.max_logged_body]
    ctx.events.emit("malformed", session, protocol=guess_protocol(seen), reason=reason,
                    raw_b64=base64.b64encode(logged).decode(), raw_len=len(seen), close=close)
    return "first line timeout" if timed_out else f"not HTTP ({close})"


def _peer_shut_down(conn: socket.socket) -> bool:
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | _POLLRDHUP)
    return any(mask & (_POLLRDHUP | select.POLLHUP) for _, mask in poller.poll(0))


def _set_lowat(conn: socket.socket, size: int) -> bool:
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, size)
    except OSError:
        return False
    return True


async def _more_bytes(conn: socket.socket, have: int, left: float) -> bool:
    """Wait until more than `have` bytes are queued (or the peer shuts down); False on timeout.
    SO_RCVLOWAT keeps the already-peeked bytes from waking us again and again."""
    if left <= 0:
        return False
    loop = asyncio.get_running_loop()
    if not _set_lowat(conn, have + 1):
        await asyncio.sleep(min(left, 0.05))  # no low-water mark here: poll gently instead
        return True
    woken: asyncio.Future[None] = loop.create_future()
    loop.add_reader(conn.fileno(), lambda: woken.done() or woken.set_result(None))
    try:
        await asyncio.wait_for(woken, left)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(conn.fileno())
        _set_lowat(conn, 1)  # back to the default before anyone reads: the next owner must not wait
    return True

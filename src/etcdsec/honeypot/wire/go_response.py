"""Render HTTP/1.x responses byte for byte the way Go's net/http (etcd's server) writes them.

Go writes the handler's headers sorted by name, then Date, Content-Length and a sniffed
Content-Type, in that order; bodies over 2048 bytes without a Content-Length go out chunked.
"""

from __future__ import annotations

import email.utils
import operator
import time
from dataclasses import dataclass, field

STATUS_TEXT = {
    200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 307: "Temporary Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 412: "Precondition Failed",
    406: "Not Acceptable", 410: "Gone", 411: "Length Required", 413: "Request Entity Too Large",
    414: "Request URI Too Long", 415: "Unsupported Media Type", 416: "Requested Range Not Satisfiable",
    417: "Expectation Failed", 426: "Upgrade Required", 428: "Precondition Required", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}

# etcd wraps every client-port handler in a CORS handler that adds these (sorted, as Go writes).
CORS_HEADERS = [
    ("Access-Control-Allow-Headers", "accept, content-type, authorization"),
    ("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"),
    ("Access-Control-Allow-Origin", "*"),
]
TEXT_PLAIN = "text/plain; charset=utf-8"
CHUNK_THRESHOLD = 2048  # Go's bufferBeforeChunkingSize

# Responses Go's server writes itself, before any handler runs; the connection is then closed.
MISSING_HOST = (b"HTTP/1.1 400 Bad Request: missing required Host header\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
                b"400 Bad Request: missing required Host header")


UNSUPPORTED_TE = (b"HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\n"
                  b"Connection: close\r\n\r\nUnsupported transfer encoding")


def go_bad_request(reason: str = "") -> bytes:
    """Go's reply to a request it cannot parse (`400 Bad Request`, or with a reason)."""
    text = "400 Bad Request" + (f": {reason}" if reason else "")
    return (f"HTTP/1.1 {text}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
            f"{text}").encode()


def expectation_failed() -> bytes:
    """Go's answer to an Expect header other than 100-continue (written by the server itself)."""
    return (f"HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate: {http_date()}\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def go_status_error(code: int, text: str, reason: str = "") -> bytes:
    """Go's canned `431 Request Header Fields Too Large` style reply (closes the connection)."""
    line = f"{code} {text}" + (f": {reason}" if reason else "")
    return (f"HTTP/1.1 {line}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
            f"{line}").encode()


@dataclass
class Response:
    """What a handler produced. `headers` are the ones the Go handler set explicitly."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    sniff_type: bool = False  # Go sniffs Content-Type (handler wrote without setting one)
    stream: object | None = None  # an async iterator of chunks (v2 wait); body is then unused
    trailers: list[tuple[str, str]] = field(default_factory=list)  # sent after the last chunk
    websocket: str | None = None  # a gateway path to serve over WebSocket after a 101

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)


_date_cache: tuple[int, str] = (0, "")


def http_date(now: float | None = None) -> str:
    """The Date header value; formatted once per second (it only has second resolution)."""
    global _date_cache
    if now is not None:
        return email.utils.formatdate(now, usegmt=True)
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, email.utils.formatdate(second, usegmt=True))
    return _date_cache[1]


def text_error(status: int, body: str, extra: list[tuple[str, str]] | None = None) -> Response:
    """http.Error(): text/plain, nosniff, body plus newline."""
    headers = [*(extra or []), ("Content-Type", TEXT_PLAIN), ("X-Content-Type-Options", "nosniff")]
    return Response(status, (body + "\n").encode(), headers)


def not_found() -> Response:
    return text_error(404, "404 page not found")


def method_not_allowed(allow: str) -> Response:
    return text_error(405, "Method Not Allowed", [("Allow", allow)])


def json_response(status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, body, [("Content-Type", "application/json"), *(headers or [])])


def _status_line(status: int, http10: bool) -> str:
    line = _STATUS_LINES.get((status, http10))
    if line is None:
        line = _STATUS_LINES[(status, http10)] = \
            f"HTTP/1.{0 if http10 else 1} {status} {STATUS_TEXT.get(status, 'status code')}\r\n"
    return line


_STATUS_LINES: dict[tuple[int, bool], str] = {}
_CORS_LINES = "".join(f"{k}: {v}\r\n" for k, v in CORS_HEADERS)


def _length(resp: Response) -> tuple[bool, bool]:
    """(the handler set Content-Length, the length is unknown when the head goes out). Go buffers
    2048 bytes; past that (or with declared trailers) the length is unknown."""
    has_length = has_trailer = False
    for name, _ in resp.headers:
        low = name.lower()
        has_length = has_length or low == "content-length"
        has_trailer = has_trailer or low == "trailer"
    return has_length, not has_length and (len(resp.body) > CHUNK_THRESHOLD or has_trailer)


def keeps_http10(resp: Response, head: bool) -> bool:
    """Whether Go keeps an HTTP/1.0 `Connection: keep-alive` request's connection (and says
    `Connection: keep-alive`): only when the answer ends without a close - HEAD, a known length,
    or a status without a body (net/http `chunkWriter.writeHeader`, `wants10KeepAlive`)."""
    if head or resp.status in (204, 304):
        return True
    if resp.stream is not None or resp.websocket is not None or resp.header("Connection") is not None:
        return False
    return not _length(resp)[1]


def render(resp: Response, *, head: bool = False, http10: bool = False, close: bool = False,
           cors: bool = True, now: float | None = None, keep: bool = False) -> bytes:
    """The response bytes for a non-streaming response; `keep`: the connection stays open (an
    HTTP/1.0 answer then says `Connection: keep-alive`, as Go's does)."""
    has_length, unknown_length = _length(resp)
    own = sorted(resp.headers, key=_name)
    if cors and (not own or own[0][0] > "Access-Control-Allow-Origin"):  # the usual case: CORS lines first
        handler_lines = _CORS_LINES + "".join([f"{k}: {v}\r\n" for k, v in own])
    else:
        handler = (CORS_HEADERS + resp.headers) if cors else resp.headers
        handler_lines = "".join([f"{k}: {v}\r\n" for k, v in sorted(handler, key=_name)])
    # an unknown length: chunked, or for HEAD and HTTP/1.0 no length header at all
    chunked = unknown_length and not head and not http10
    text = f"{_status_line(resp.status, http10)}{handler_lines}Date: {http_date(now)}\r\n"
    if not has_length and not unknown_length and resp.status not in (204, 304):  # no body allowed: no length
        text += f"Content-Length: {len(resp.body)}\r\n"
    if resp.sniff_type:
        text += f"Content-Type: {TEXT_PLAIN}\r\n"
    if close and not http10:
        text += "Connection: close\r\n"
    elif keep and http10:
        text += "Connection: keep-alive\r\n"
    if chunked:
        text += "Transfer-Encoding: chunked\r\n"
    head_bytes = (text + "\r\n").encode()
    if head or resp.status in (204, 304):
        return head_bytes
    if chunked:
        return head_bytes + chunk(resp.body) + last_chunk(resp.trailers)
    return head_bytes + resp.body


_name = operator.itemgetter(0)  # sort key: the header name (C, no Python call per item)


def h2_headers(resp: Response, *, cors: bool = True, head: bool = False) -> list[tuple[bytes, bytes]]:
    """Response headers as Go's HTTP/2 server sends them: lower-case, handler headers sorted, then
    a sniffed content-type, content-length and date (no Connection / Transfer-Encoding in h2)."""
    handler = (CORS_HEADERS if cors else []) + resp.headers
    out = [(k.lower().encode(), v.encode("latin-1")) for k, v in sorted(handler, key=lambda kv: kv[0])
           if k.lower() not in ("connection", "transfer-encoding")]
    if resp.sniff_type:
        out.append((b"content-type", TEXT_PLAIN.encode()))
    if resp.header("Content-Length") is None and (len(resp.body) <= CHUNK_THRESHOLD or head):
        out.append((b"content-length", str(len(resp.body)).encode()))
    out.append((b"date", http_date().encode()))
    return out


def render_stream_head(resp: Response, *, cors: bool = True, close: bool = False, now: float | None = None) -> bytes:
    handler_headers = (CORS_HEADERS if cors else []) + resp.headers
    lines = [f"HTTP/1.1 {resp.status} {STATUS_TEXT.get(resp.status, 'status code')}"]
    lines += [f"{k}: {v}" for k, v in sorted(handler_headers, key=lambda kv: kv[0])]
    lines.append(f"Date: {http_date(now)}")
    if close:
        lines.append("Connection: close")
    lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def last_chunk(trailers: list[tuple[str, str]] | None = None) -> bytes:
    return b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in trailers or []) + b"\r\n"


def chunk(data: bytes, size: int = CHUNK_THRESHOLD) -> bytes:
    out = bytearray()
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return bytes(out)

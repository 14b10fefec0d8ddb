"""What a gRPC request's header block says, worked out once per distinct block.

A client repeats the same block for every call of a method (the HPACK decoder hands back the same
field objects each time), so the text fields, the content subtype and the honeytoken view of the
metadata are kept for the last blocks seen, keyed by the fields themselves. Pure: the same block
always gives the same head; the honeytoken search on `view` still runs for every call.
"""

from __future__ import annotations

from dataclasses import dataclass

from etcdsec.honeypot.wire.request import token_view

BASE_CONTENT_TYPE = "application/grpc"
MAX_HEADS = 256  # blocks remembered, each at most MAX_HEAD_BYTES of fields: at most ~256 KiB of them
MAX_HEAD_BYTES = 1024


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str  # :method
    path: str
    user_agent: str
    encoding: str  # grpc-encoding
    token: str | None  # `token` / `authorization` metadata (etcd checks it even with auth off)
    content_type: str  # as sent
    subtype: str | None  # grpc-go's content subtype: "" for application/grpc, None when not gRPC
    view: bytes  # what honeytokens are searched in: the method, path and metadata (wire.request.token_view)


_heads: dict[tuple[tuple[bytes, bytes], ...], RequestHead] = {}


def request_head(raw: list[tuple[bytes, bytes]]) -> RequestHead:
    key = tuple(raw)
    head = _heads.get(key)
    if head is None:
        head = _parse(raw)
        if sum(len(name) + len(value) for name, value in raw) <= MAX_HEAD_BYTES:
            if len(_heads) >= MAX_HEADS:
                _heads.clear()
            _heads[key] = head
    return head


def _parse(raw: list[tuple[bytes, bytes]]) -> RequestHead:
    hdrs = dict((_text(k), _text(v)) for k, v in raw)  # the last of a repeated field counts
    token = hdrs.get("token", hdrs.get("authorization"))
    ctype = hdrs.get("content-type", "")
    metadata = [(k, v) for k, v in raw if not k.startswith(b":")]  # bytes as sent
    method, path = hdrs.get(":method", ""), hdrs.get(":path", "")
    return RequestHead(method=method, path=path, user_agent=hdrs.get("user-agent", ""),
                       encoding=hdrs.get("grpc-encoding", ""), token=token, content_type=ctype,
                       subtype=content_subtype(ctype), view=token_view(method, path, metadata, b""))


def _text(value: bytes) -> str:
    """A header field as text; bytes that are not UTF-8 stay readable as \\xNN."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("utf-8", "backslashreplace")


def content_subtype(ctype: str) -> str | None:
    """grpc-go's contentSubtype: "" for application/grpc, "json" for +json, None when not gRPC."""
    if ctype == BASE_CONTENT_TYPE:
        return ""
    if not ctype.startswith(BASE_CONTENT_TYPE) or ctype[len(BASE_CONTENT_TYPE)] not in "+;":
        return None
    return ctype[len(BASE_CONTENT_TYPE) + 1:].lower()

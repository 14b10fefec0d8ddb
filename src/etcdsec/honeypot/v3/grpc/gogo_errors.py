"""The error a gogo-protobuf generated Unmarshal (what etcd runs) reports for bad request bytes.

Python's protobuf says only "cannot parse"; etcd's code walks the wire format field by field and
names the problem ("unexpected EOF", "proto: wrong wireType = 0 for field Key", ...). This walk
follows the same order of checks so a malformed request gets etcd's text back.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

EOF = "unexpected EOF"
OVERFLOW = "proto: integer overflow"
BAD_LENGTH = "proto: negative length found during unmarshaling"

_WIRE_OF = {
    FieldDescriptor.TYPE_BYTES: 2, FieldDescriptor.TYPE_STRING: 2, FieldDescriptor.TYPE_MESSAGE: 2,
    FieldDescriptor.TYPE_FIXED64: 1, FieldDescriptor.TYPE_SFIXED64: 1, FieldDescriptor.TYPE_DOUBLE: 1,
    FieldDescriptor.TYPE_FIXED32: 5, FieldDescriptor.TYPE_SFIXED32: 5, FieldDescriptor.TYPE_FLOAT: 5,
}
# Our proto package is our own; gogo's messages carry etcd's names in their errors.
_GO_MESSAGE_NAMES = {"HeaderOnlyResponse": "ResponseHeader"}


class _Bad(Exception):
    pass


def go_field_name(name: str) -> str:
    """protoc-gen-gogo's CamelCase: range_end -> RangeEnd, peerURLs -> PeerURLs, TTL -> TTL."""
    out, upper = [], True
    for ch in name:
        if ch == "_":
            upper = True
            continue
        out.append(ch.upper() if upper else ch)
        upper = False
    return "".join(out)


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if shift >= 64:
            raise _Bad(OVERFLOW)
        if i >= len(data):
            raise _Bad(EOF)
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _as_int64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def _skip(data: bytes, i: int) -> int:
    """gogo's skipRpc: the end offset of one unknown field starting at `i`."""
    depth = 0
    while True:
        wire, i = _varint(data, i)
        wt = wire & 7
        if wt == 0:
            while True:
                if i >= len(data):
                    raise _Bad(EOF)
                i += 1
                if data[i - 1] < 0x80:
                    break
        elif wt == 1:
            i += 8
        elif wt == 2:
            length, i = _varint(data, i)
            if _as_int64(length) < 0:
                raise _Bad(BAD_LENGTH)
            i += length
        elif wt == 3:
            depth += 1
        elif wt == 4:
            if depth == 0:
                raise _Bad("proto: unexpected end of group")
            depth -= 1
        elif wt == 5:
            i += 4
        else:
            raise _Bad(f"proto: illegal wireType {wt}")
        if depth == 0:
            return i


def _fields(desc: Descriptor) -> tuple[str, dict[int, Any]]:
    """(gogo's message name, fields by number): descriptor look-ups once per type, not per field."""
    known = _FIELDS.get(desc)
    if known is None:
        known = _FIELDS[desc] = (_GO_MESSAGE_NAMES.get(desc.name, desc.name), dict(desc.fields_by_number))
    return known


_FIELDS: dict[Descriptor, tuple[str, dict[int, Any]]] = {}


def _walk(desc: Descriptor, data: bytes) -> None:
    name, fields = _FIELDS.get(desc) or _fields(desc)
    i, n = 0, len(data)
    while i < n:
        start = i
        wire, i = _varint(data, i)
        num, wt = _as_int32(wire >> 3), wire & 7  # Go: fieldNum := int32(wire >> 3)
        if wt == 4:
            raise _Bad(f"proto: {name}: wiretype end group for non-group")
        if num <= 0:
            raise _Bad(f"proto: {name}: illegal tag {num} (wire type {wire})")
        field: Any = fields.get(num)
        if field is None:
            end = _skip(data, start)
            if end > n:
                raise _Bad(EOF)
            i = end
            continue
        want = _WIRE_OF.get(field.type, 0)
        packable = field.is_repeated and want == 0
        if wt != want and not (packable and wt == 2):
            raise _Bad(f"proto: wrong wireType = {wt} for field {go_field_name(field.name)}")
        if wt == 0:
            _, i = _varint(data, i)
        elif wt == 2:
            length, i = _varint(data, i)
            if _as_int64(length) < 0:
                raise _Bad(BAD_LENGTH)
            end = i + length
            if end > n:
                raise _Bad(EOF)
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                _walk(field.message_type, data[i:end])
            elif packable:
                j = i
                while j < end:
                    _, j = _varint(data, j)
            i = end
        else:
            i += 8 if wt == 1 else 4
            if i > n:
                raise _Bad(EOF)


def _as_int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


# Small payloads found acceptable, by message type: clients repeat the same request (a poller's Range),
# and the answer for the same bytes never changes. Bounded: at most _MAX_ACCEPTED of at most 256 bytes.
_accepted: set[tuple[Descriptor, bytes]] = set()
_MAX_ACCEPTED, _MAX_REMEMBERED_BYTES = 4096, 256


def unmarshal_error(desc: Descriptor, data: bytes) -> str | None:
    """etcd's error text for `data` as a `desc` message, or None when etcd would accept it."""
    small = len(data) <= _MAX_REMEMBERED_BYTES
    if small and (desc, data) in _accepted:
        return None
    try:
        _walk(desc, data)
    except _Bad as exc:
        return str(exc)
    if small:
        if len(_accepted) >= _MAX_ACCEPTED:
            _accepted.clear()
        _accepted.add((desc, bytes(data)))
    return None

"""grpc-gateway's JSON for our messages, fast: what json_format.MessageToDict(preserving_proto_field_name=True)
returns, from one walk over the set fields (proto3 defaults omitted, field-number order).

64-bit integers become strings, bytes base64, enums their names; `text_bytes` renders bytes as
UTF-8 text where possible instead (for event logs, where people read keys).
"""

from __future__ import annotations

from binascii import b2a_base64
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_STRING_INTS = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
                FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}
# How a field's value is rendered; worked out once per field, not per value (this runs per request).
_PLAIN, _STRING_INT, _BYTES, _MESSAGE, _ENUM = range(5)
_SPECS: dict[FieldDescriptor, tuple[str, bool, int]] = {}


def _spec(fd: FieldDescriptor) -> tuple[str, bool, int]:
    spec = _SPECS.get(fd)
    if spec is None:
        t = fd.type
        kind = (_MESSAGE if t == FieldDescriptor.TYPE_MESSAGE else _BYTES if t == FieldDescriptor.TYPE_BYTES
                else _STRING_INT if t in _STRING_INTS else _ENUM if t == FieldDescriptor.TYPE_ENUM else _PLAIN)
        spec = _SPECS[fd] = (fd.name, fd.is_repeated, kind)
    return spec


def b64(v: bytes) -> str:
    return b2a_base64(v, newline=False).decode("ascii")


def to_dict(msg: Message, text_bytes: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        name, repeated, kind = _SPECS.get(fd) or _spec(fd)
        if kind == _PLAIN:
            out[name] = list(value) if repeated else value
        elif kind == _STRING_INT:
            out[name] = [str(v) for v in value] if repeated else str(value)
        elif kind == _MESSAGE:
            out[name] = [to_dict(v, text_bytes) for v in value] if repeated else to_dict(value, text_bytes)
        elif kind == _BYTES:
            if repeated:
                out[name] = [b64(v) for v in value]
            elif not text_bytes:
                out[name] = b64(value)
            else:
                try:
                    out[name] = value.decode("utf-8")
                except UnicodeDecodeError:
                    out[name + "_base64"] = b64(value)
        else:
            out[name] = [_enum(fd, v) for v in value] if repeated else _enum(fd, value)
    return out


def _enum(fd: FieldDescriptor, v: int) -> Any:
    ev = fd.enum_type.values_by_number.get(v)
    return ev.name if ev is not None else v

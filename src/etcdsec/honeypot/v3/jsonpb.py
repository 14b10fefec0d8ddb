"""grpc-gateway's JSON for our messages, fast: what json_format.MessageToDict(preserving_proto_field_name=True)
returns, from one walk over the set fields (proto3 defaults omitted, field-number order).

64-bit integers become strings, bytes base64, enums their names; `text_bytes` renders bytes as
UTF-8 text where possible instead (for event logs, where people read keys).
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_STRING_INTS = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
                FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}


def to_dict(msg: Message, text_bytes: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        if fd.is_repeated:
            out[fd.name] = [_value(fd, v, text_bytes) for v in value]
        elif fd.type == FieldDescriptor.TYPE_BYTES and text_bytes:
            try:
                out[fd.name] = value.decode("utf-8")
            except UnicodeDecodeError:
                out[fd.name + "_base64"] = base64.b64encode(value).decode()
        else:
            out[fd.name] = _value(fd, value, text_bytes)
    return out


def _value(fd: FieldDescriptor, v: Any, text_bytes: bool) -> Any:
    t = fd.type
    if t == FieldDescriptor.TYPE_MESSAGE:
        return to_dict(v, text_bytes)
    if t == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(v).decode()
    if t in _STRING_INTS:
        return str(v)
    if t == FieldDescriptor.TYPE_ENUM:
        ev = fd.enum_type.values_by_number.get(v)
        return ev.name if ev is not None else v
    return v

"""Reading a v3 gateway request body as etcd's grpc-gateway (jsonpb over Go's encoding/json) does.

Go's decoder decides first (syntax errors, nesting past 10,000 levels), then jsonpb's field rules
(base64 for bytes, quoted numbers, unknown fields ignored); each failure is Go's message, because a
Python message would give the sensor away. Nothing here recurses deeper than a fixed bound,
whatever the body: bodies nested past `MAX_PARSED_DEPTH` are emptied below it first.
"""

from __future__ import annotations

import json
import re
from binascii import a2b_base64, b2a_base64
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from etcdsec.honeypot.wire import go_json_errors


def go_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "bool"}.get(type(value), "number")


class BadInput(Exception):
    pass


def fields_of(desc: Any) -> dict[str, FieldDescriptor]:
    """A message's fields by proto name and by lowerCamel JSON name (jsonpb accepts both, the proto
    name first); one dict per message type instead of two descriptor look-ups per JSON key."""
    fields = _FIELDS.get(desc)
    if fields is None:
        fields = _FIELDS[desc] = {**desc.fields_by_camelcase_name, **desc.fields_by_name}
    return fields


_FIELDS: dict[Any, dict[str, FieldDescriptor]] = {}
# Padded standard base64 without line breaks: what clients send, and what Go decodes without a word.
CLEAN_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def check_bytes(desc: Any, obj: dict[str, Any]) -> None:
    """Go's base64 and type rules for the bytes fields (recursively), before protobuf parses."""
    fields = fields_of(desc)
    for name, value in obj.items():
        field = fields.get(name)
        if field is None or value is None:
            continue
        values = value if isinstance(value, list) and field.is_repeated else [value]
        for v in values:
            if field.type == FieldDescriptor.TYPE_BYTES:
                if isinstance(v, list) and not field.is_repeated:  # Go reads []byte from [102,111] too
                    obj[name] = b2a_base64(bytes(_uint8(e) for e in v), newline=False).decode()
                    continue
                if not isinstance(v, str):
                    raise BadInput(f"json: cannot unmarshal {go_type(v)} into Go value of type []uint8")
                if CLEAN_B64.fullmatch(v):
                    continue
                off = go_json_errors.base64_error(v.encode())
                if off is not None:
                    raise BadInput(f"illegal base64 data at input byte {off}")
            elif field.type == FieldDescriptor.TYPE_MESSAGE and isinstance(v, dict):
                check_bytes(field.message_type, v)


def _uint8(value: Any) -> int:
    """One element of a JSON array read into Go's []byte (null is 0, as Go leaves it)."""
    if value is None:
        return 0
    if type(value) is int and 0 <= value <= 255:
        return value
    kind = f"number {value}" if type(value) in (int, float) else go_type(value)
    raise BadInput(f"json: cannot unmarshal {kind} into Go value of type uint8")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _go_strings(value: Any) -> Any:
    """Go's decoder turns a lone surrogate escape (\\ud800) into U+FFFD; Python keeps it, and
    protobuf and str.encode() then fail on it. json.loads has already joined the valid pairs."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_go_strings(v) for v in value]
    if isinstance(value, dict):
        return {_go_strings(k): _go_strings(v) for k, v in value.items()}
    return value


def _whole_object(body: bytes) -> Any:
    """Fast path: the whole body is one JSON object (the C parsers agree with Go on those); None
    when it is not, and Go's scanner decides."""
    obj = _flat_object(body)
    if obj is not None:
        return obj
    try:
        # Go reads JSON as UTF-8 and each invalid byte as U+FFFD; json.loads(bytes) would keep a
        # surrogate's bytes as a lone surrogate (and guess UTF-16/32 from the first bytes)
        return json.loads(body.decode("utf-8", "replace"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None


FLAT = {str, int, bool, type(None)}


def json_object(body: bytes) -> dict[str, Any] | None:
    """orjson's reading of a body that is one JSON object; None for anything else."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return obj if type(obj) is dict else None


def _flat_object(body: bytes) -> dict[str, Any] | None:
    """orjson's reading of a one-level object of strings, ints, bools and nulls: what json.loads
    reads then, 5x faster. Anything else (floats: orjson makes big ints floats) is left to json."""
    obj = json_object(body)
    if obj is None:
        return None
    for v in obj.values():
        if type(v) not in FLAT:
            return None
    return obj


def _reject_constant(name: str) -> None:
    raise ValueError(name)  # NaN/Infinity are not JSON to Go


# JSON levels Python's walkers (json, json_format, the checks here) ever see; containers deeper are
# emptied first. A txn nested 128 deep, 3 levels each, still arrives whole enough for etcd's
# "too many operations" (max-txn-ops 128); nothing else in etcd's messages nests past a dozen.
MAX_PARSED_DEPTH = 400


def parse_request(body: bytes, msg_type: type[Message], empty_ok: bool = True) -> tuple[Message, int]:
    """Decode the first JSON value of `body` into `msg_type`; (message, bytes consumed). An empty
    body (Go's io.EOF) is an empty message when `empty_ok`, else BadInput("EOF")."""
    if not empty_ok and not body.strip(b" \t\r\n"):
        raise BadInput("EOF")
    if body.count(b"{") + body.count(b"[") > MAX_PARSED_DEPTH:  # may nest deeper: Go's scanner first
        err, end = go_json_errors.decode_error(body)
        if err == "EOF":
            return msg_type(), len(body)
        if err is not None:
            raise BadInput(err)
        msg, _ = _parse(go_json_errors.prune(body[:end], MAX_PARSED_DEPTH), msg_type)
        return msg, end
    return _parse(body, msg_type)


def _parse(body: bytes, msg_type: type[Message]) -> tuple[Message, int]:
    msg = msg_type()
    end = len(body)
    obj = _whole_object(body) if body.lstrip()[:1] == b"{" else None
    if not isinstance(obj, dict):
        err, end = go_json_errors.decode_error(body)
        if err == "EOF":
            return msg, len(body)
        if err is not None:
            raise BadInput(err)
        try:
            obj = json.loads(body[:end], parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise BadInput(go_json_errors.UNEXPECTED_EOF) from None
    if obj is None:
        return msg, end
    if not isinstance(obj, dict):
        raise BadInput(f"json: cannot unmarshal {go_type(obj)} into Go value of type "
                        "map[string]json.RawMessage")
    if b"\\u" in body[:end]:  # only an escape can make a lone surrogate (raw ones are not UTF-8)
        try:
            obj = _go_strings(obj)
        except RecursionError:
            raise BadInput(go_json_errors.UNEXPECTED_EOF) from None
    check_bytes(msg.DESCRIPTOR, obj)
    if _fill_simple(msg, obj):
        return msg, end
    msg.Clear()
    _check_quoted_numbers(msg.DESCRIPTOR, obj)
    try:
        json_format.ParseDict(obj, msg, ignore_unknown_fields=True, max_recursion_depth=MAX_PARSED_DEPTH)
    except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise BadInput(_parse_error_text(exc)) from None
    return msg, end


_INT_TYPES = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_INT32,
              FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SINT32}


def _fill_simple(msg: Message, obj: dict[str, Any]) -> bool:
    """The common case without json_format: scalar fields with plain values. False: let it decide."""
    fields = fields_of(msg.DESCRIPTOR)
    for name, value in obj.items():
        fd = fields.get(name)
        if fd is None:
            continue  # unknown fields are ignored, as etcd's gateway does
        if fd.is_repeated or value is None:
            return False
        t = fd.type
        if t == FieldDescriptor.TYPE_BYTES and isinstance(value, str):
            setattr(msg, fd.name, a2b_base64(value))  # already checked by Go's rules
        elif t in _INT_TYPES and isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
            setattr(msg, fd.name, int(value))
        elif _plain(t, value):
            setattr(msg, fd.name, value)
        else:
            return False
    return True


_GO_INT_NAMES = {FieldDescriptor.TYPE_INT64: "int64", FieldDescriptor.TYPE_UINT64: "uint64",
                 FieldDescriptor.TYPE_INT32: "int32", FieldDescriptor.TYPE_UINT32: "uint32",
                 FieldDescriptor.TYPE_SINT64: "int64", FieldDescriptor.TYPE_SINT32: "int32"}


def _check_quoted_numbers(desc: Any, obj: dict[str, Any]) -> None:
    """jsonpb strips the quotes of a string given for a number and hands the rest to Go's
    json.Unmarshal: {"TTL":"abc"} fails with "invalid character 'a' looking for beginning of value"."""
    fields = fields_of(desc)
    for name, value in obj.items():
        fd = fields.get(name)
        if fd is None or fd.is_repeated or fd.type not in _INT_TYPES or not isinstance(value, str):
            continue
        inner = value.encode()
        err, end = go_json_errors.decode_error(inner)
        if err == "EOF":
            raise BadInput("unexpected end of JSON input")
        if err is not None:
            raise BadInput(err)
        if inner[end:].strip():
            bad = inner[end:].lstrip()[:1].decode("latin-1")
            raise BadInput(f"invalid character {bad!r} after top-level value")
        text = inner.strip().decode()
        if not text.lstrip("-").isdigit():
            kind = "number " + text if text[:1] in "-0123456789" else go_type(json.loads(text))
            raise BadInput(f"json: cannot unmarshal {kind} into Go value of type {_GO_INT_NAMES[fd.type]}")


def _plain(t: int, value: Any) -> bool:
    if t in _INT_TYPES:
        return type(value) is int and 0 <= value < 1 << 31
    if t == FieldDescriptor.TYPE_BOOL:
        return type(value) is bool
    return t == FieldDescriptor.TYPE_STRING and isinstance(value, str)


def _parse_error_text(exc: Exception) -> str:
    text = str(exc)
    if "Couldn't parse integer" in text or "not an integer" in text.lower():
        return "json: cannot unmarshal string into Go value of type int64"
    return "json: cannot unmarshal value into Go struct field"

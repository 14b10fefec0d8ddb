"""etcd's `/config/local/log` (PUT `{"Level":"DEBUG"}` sets capnslog's global level), 2.x to 3.4.

etcd 3.5 removed it, so a persona serves it only when its file says `"config_local_log": true`.
Answers as `logHandleFunc` (etcdserver/api/etcdhttp/base.go@v3.4.23, the same function in
v2http/client.go@v2.3.8): PUT only; the body is decoded with Go's json.Decoder into
`struct{ Level string }`, so the first JSON value counts, keys match case-insensitively and the last
one wins; the level is upper-cased and parsed by capnslog.ParseLevel. Measured on etcd 3.4.23.
The honeypot changes no log level: it only answers.
"""

from __future__ import annotations

import json
from typing import Any

from etcdsec.honeypot.wire.go_json import go_json
from etcdsec.honeypot.wire.go_response import Response, method_not_allowed

PATH = "/config/local/log"
# capnslog.ParseLevel: names, one-letter names and the digits 0-5 (ERROR..TRACE); CRITICAL has no digit
LEVELS = frozenset({"CRITICAL", "C", "ERROR", "E", "0", "WARNING", "W", "1", "NOTICE", "N", "2",
                    "INFO", "I", "3", "DEBUG", "D", "4", "TRACE", "T", "5"})


class _NotJson(ValueError):
    pass


class _Object(list):  # an object's (key, value) pairs in wire order: duplicates are assigned in turn
    pass


def _reject_constant(name: str) -> Any:
    raise _NotJson(name)  # NaN / Infinity: Python's json takes them, Go's does not


def _level(body: bytes) -> str:
    """The `Level` Go's decoder would fill in, or _NotJson where it returns an error."""
    text = body.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    try:
        value, _ = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_Object).raw_decode(text)
    except (ValueError, RecursionError) as exc:
        raise _NotJson(str(exc)) from None
    if value is None:
        return ""  # `null` decodes into the zero struct
    if not isinstance(value, _Object):
        raise _NotJson("not an object")
    level = ""
    for key, item in value:  # the decoder assigns matching keys in order
        if key.lower() != "level":
            continue
        if item is None:
            continue
        if not isinstance(item, str):  # a number, bool, array or object: UnmarshalTypeError
            raise _NotJson("wrong type")
        level = item
    return level


def _message(status: int, message: str) -> Response:
    """httptypes.HTTPError: `{"message":...}` as application/json, no trailing newline."""
    return Response(status, go_json({"message": message}), [("Content-Type", "application/json")])


def config_log_response(method: str, body: bytes) -> Response:
    if method != "PUT":
        return method_not_allowed("PUT")
    try:
        level = _level(body)
    except _NotJson:
        return _message(400, "Invalid json body")
    if level.upper() not in LEVELS:
        return _message(400, "Invalid log level " + level)
    return Response(204, b"")

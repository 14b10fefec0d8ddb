"""go_json writes what Go's encoding/json (before Go 1.22, as in every etcd it imitates) writes."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from etcdsec.honeypot.wire.go_json import go_json

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=20))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def reference(obj: object) -> bytes:
    """Go's rules spelled out on json.dumps' text: HTML-safe, U+2028/9 escaped, \\b and \\f as \\u00XX."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1]
            out.append({"b": "\\u0008", "f": "\\u000c"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                    "\u2029": "\\u2029"}.get(ch, ch))
        i += 1
    return "".join(out).encode()


@settings(max_examples=500, deadline=None)
@given(obj=VALUES)
def test_go_json_matches_the_reference(obj: object) -> None:
    assert go_json(obj) == reference(obj)
    assert go_json(obj, newline=True) == reference(obj) + b"\n"


def test_short_escapes_and_backslashes() -> None:
    assert go_json({"v": "a\bb\fc"}) == b'{"v":"a\\u0008b\\u000cc"}'
    assert go_json("\\b") == b'"\\\\b"'  # a backslash then "b" is not an escape
    assert go_json("\\\b") == b'"\\\\\\u0008"'
    assert go_json("<a&b>\u2028") == b'"\\u003ca\\u0026b\\u003e\\u2028"'

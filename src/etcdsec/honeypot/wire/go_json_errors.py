"""Go's error texts for bad gateway input: encoding/json syntax errors and base64 CorruptInputError.

etcd's gateway answers malformed JSON with the Go decoder's message ("invalid character 'b'
looking for beginning of object key string"); a Python message would give the sensor away.
"""

from __future__ import annotations

import unicodedata

UNEXPECTED_EOF = "unexpected EOF"
_WS = b" \t\r\n"
MAX_DEPTH = 10_000  # encoding/json's maxNestingDepth
_OPEN = {ord("{"): ord("}"), ord("["): ord("]")}


def quote_char(c: int) -> str:
    """encoding/json quoteChar: the offending byte as Go prints it."""
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    return "'" + _go_quote_rune(chr(c)) + "'"


def _go_quote_rune(ch: str) -> str:
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
             "\\": "\\\\"}
    if ch in named:
        return named[ch]
    o = ord(ch)
    if o < 0x20 or o == 0x7F:
        return f"\\x{o:02x}"
    if o >= 0x80 and unicodedata.category(ch)[0] in "CZ" and ch != " ":
        return f"\\u{o:04x}"
    return ch


def _err(c: int, context: str) -> str:
    return f"invalid character {quote_char(c)} {context}"


class _Scan:
    """A byte-level port of the states of Go's JSON scanner that produce distinct errors."""

    def __init__(self, data: bytes) -> None:
        self.d = data
        self.i = 0

    def ws(self) -> None:
        while self.i < len(self.d) and self.d[self.i] in _WS:
            self.i += 1

    def peek(self) -> int | None:
        return self.d[self.i] if self.i < len(self.d) else None

    def value(self) -> str | None:
        """Scan one value. A loop with an explicit stack, as Go's scanner is: no recursion, so a
        hostile body nested 100,000 deep costs one list, and the 10,001st level is refused as Go
        refuses it."""
        stack: list[int] = []  # the open containers, innermost last: ord("{") or ord("[")
        while True:
            self.ws()
            c = self.peek()
            if c is None:
                return UNEXPECTED_EOF
            if c in _OPEN:
                if len(stack) >= MAX_DEPTH:
                    return _err(c, "exceeded max depth")
                self.i += 1
                self.ws()
                if self.peek() == _OPEN[c]:
                    self.i += 1  # an empty container: a whole value
                else:
                    stack.append(c)
                    if c == ord("{") and (e := self.key()) is not None:
                        return e
                    continue
            elif c == ord('"'):
                if (e := self.string()) is not None:
                    return e
            elif c == ord("-") or ord("0") <= c <= ord("9"):
                if (e := self.number()) is not None:
                    return e
            else:
                lit = next((lit for lit in (b"true", b"false", b"null") if c == lit[0]), None)
                if lit is None:
                    return _err(c, "looking for beginning of value")
                if (e := self.literal(lit)) is not None:
                    return e
            # a value is complete: close what it completes, up to a comma that wants the next one
            while stack:
                self.ws()
                c = self.peek()
                if c is None:
                    return UNEXPECTED_EOF
                self.i += 1
                top = stack[-1]
                if c == _OPEN[top]:
                    stack.pop()
                    continue
                if c != ord(","):
                    return _err(c, "after object key:value pair" if top == ord("{") else "after array element")
                if top == ord("{") and (e := self.key()) is not None:
                    return e
                break
            if not stack:
                return None

    def key(self) -> str | None:
        """An object key and its colon."""
        self.ws()
        c = self.peek()
        if c is None:
            return UNEXPECTED_EOF
        if c != ord('"'):
            return _err(c, "looking for beginning of object key string")
        if (e := self.string()) is not None:
            return e
        self.ws()
        c = self.peek()
        if c is None:
            return UNEXPECTED_EOF
        if c != ord(":"):
            return _err(c, "after object key")
        self.i += 1
        return None

    def string(self) -> str | None:
        d = self.d
        self.i += 1
        while self.i < len(d):
            c = d[self.i]
            self.i += 1
            if c == ord('"'):
                return None
            if c == ord("\\"):
                if self.i >= len(d):
                    return UNEXPECTED_EOF
                e = d[self.i]
                self.i += 1
                if e == ord("u"):
                    for _ in range(4):
                        if self.i >= len(d):
                            return UNEXPECTED_EOF
                        h = d[self.i]
                        if not chr(h).isascii() or chr(h) not in "0123456789abcdefABCDEF":
                            return _err(h, "in \\u hexadecimal character escape")
                        self.i += 1
                elif e not in b'"\\/bfnrt':
                    return _err(e, "in string escape code")
            elif c < 0x20:
                return _err(c, "in string literal")
        return UNEXPECTED_EOF

    def number(self) -> str | None:
        d = self.d
        if d[self.i] == ord("-"):
            self.i += 1
            c = self.peek()
            if c is None:
                return UNEXPECTED_EOF
            if not ord("0") <= c <= ord("9"):
                return _err(c, "in numeric literal")
        if self.peek() == ord("0"):
            self.i += 1
        else:
            while (c := self.peek()) is not None and ord("0") <= c <= ord("9"):
                self.i += 1
        if self.peek() == ord("."):
            self.i += 1
            c = self.peek()
            if c is None:
                return UNEXPECTED_EOF
            if not ord("0") <= c <= ord("9"):
                return _err(c, "after decimal point in numeric literal")
            while (c := self.peek()) is not None and ord("0") <= c <= ord("9"):
                self.i += 1
        if self.peek() in (ord("e"), ord("E")):
            self.i += 1
            if self.peek() in (ord("+"), ord("-")):
                self.i += 1
            c = self.peek()
            if c is None:
                return UNEXPECTED_EOF
            if not ord("0") <= c <= ord("9"):
                return _err(c, "in exponent of numeric literal")
            while (c := self.peek()) is not None and ord("0") <= c <= ord("9"):
                self.i += 1
        return None

    def literal(self, lit: bytes) -> str | None:
        name = lit.decode()
        for k in range(len(lit)):
            c = self.peek()
            if c is None:
                return UNEXPECTED_EOF
            if c != lit[k]:
                return _err(c, f"in literal {name} (expecting {quote_char(lit[k])})")
            self.i += 1
        return None


def decode_error(data: bytes) -> tuple[str | None, int]:
    """(Go's error for the first JSON value in `data` or None, end offset of that value).

    Like json.Decoder.Decode, bytes after the first complete value are not looked at; an empty
    body is reported as "EOF" (the gateway then treats the request as empty).
    """
    s = _Scan(data)
    s.ws()
    if s.peek() is None:
        return "EOF", len(data)
    err = s.value()
    return err, s.i


def base64_error(s: bytes) -> int | None:
    """Offset Go's base64.StdEncoding reports for `s` (CorruptInputError), None when it decodes."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    valid = set(alphabet)
    n = len(s)
    si = 0
    while True:
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return None
                return si - j
            c = s[si]
            si += 1
            if c in valid:
                j += 1
                continue
            if c in (0x0A, 0x0D):
                continue
            if c != ord("="):
                return si - 1
            if j in (0, 1):
                return si - 1
            if j == 2:
                while si < n and s[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    return n
                if s[si] != ord("="):
                    return si - 1
                si += 1
            while si < n and s[si] in (0x0A, 0x0D):
                si += 1
            if si < n:
                return si
            return None


def prune(data: bytes, depth: int) -> bytes:
    """`data` (one valid JSON value) with every container deeper than `depth` levels emptied:
    `{"a":[[1]]}` at depth 2 is `{"a":[[]]}`. What lies that deep decides nothing in an etcd
    request (no message nests that far within the limits etcd checks), and Python's recursive
    JSON and protobuf walkers must never see it. One pass, no recursion."""
    out = bytearray()
    level = 0
    skip_from = -1  # the level whose contents are being dropped, or -1
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 0x22:  # a string: copied (or dropped) whole, escapes and all
            j = i + 1
            while j < n and data[j] != 0x22:
                j += 2 if data[j] == 0x5C else 1
            if skip_from < 0:
                out += data[i:j + 1]
            i = j + 1
            continue
        if c in _OPEN:
            level += 1
            if skip_from < 0:
                out.append(c)
                if level > depth:
                    skip_from = level
        elif c in (0x5D, 0x7D):
            if skip_from == level:
                skip_from = -1
            level -= 1
            if skip_from < 0:
                out.append(c)
        elif skip_from < 0:
            out.append(c)
        i += 1
    return bytes(out)

"""Planted credentials and the one matcher that finds them (raw and base64 forms) in what a client sent."""

from __future__ import annotations

import base64
import re

from etcdsec.honeypot.core.eventsink import EventSink
from etcdsec.honeypot.core.session import Session


class Honeytokens:
    """Planted credentials; `check` emits `honeytoken.used` when a request carries one.

    Besides the raw token it also matches the base64 forms (the v3 gateway and gRPC carry bytes
    base64-encoded in JSON). Events name the token by its label, never by its value.
    """

    def __init__(self, events: EventSink, tokens: dict[str, str] | None = None) -> None:
        self.events = events
        self.tokens: dict[str, str] = {}  # value -> label
        self._pattern: re.Pattern[bytes] | None = None
        self._forms: dict[bytes, str] = {}
        for value, label in (tokens or {}).items():
            self.add(value, label)

    def add(self, value: str, label: str) -> None:
        problem = token_problem(value)
        if problem:
            raise ValueError(f"honeytoken {problem}")
        self.tokens[value] = label
        for form in _token_forms(value.encode()):
            self._forms[form] = label
        self._pattern = None  # compiled on first use: one compile for all tokens

    def _compiled(self) -> re.Pattern[bytes] | None:
        if self._pattern is None and self._forms:
            self._pattern = re.compile(_trie_pattern(list(self._forms)))
        return self._pattern

    def find(self, data: bytes) -> list[str]:
        """Labels of the tokens present in `data` (each once, in order of appearance)."""
        pattern = self._compiled()
        if pattern is None or not data:
            return []
        seen: list[str] = []
        for m in pattern.finditer(data):
            label = self._forms[m.group(0)]
            if label not in seen:
                seen.append(label)
        return seen

    def check(self, session: Session | None, data: bytes, where: str = "request") -> None:
        for label in self.find(data):
            self.events.emit("honeytoken.used", session, token=label, where=where)


def token_problem(value: str) -> str | None:
    """Why `value` cannot be a honeytoken, or None. Short tokens give false hits; spaces at either end
    and control characters cannot arrive intact (HTTP strips a header value's spaces and ends lines at
    CR/LF), so such a token could go unseen on one request path and be seen on another."""
    if len(value) < 8:
        return "is shorter than 8 characters"
    if value != value.strip():
        return "starts or ends with white space"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "holds a control character"
    return None


def _trie_pattern(words: list[bytes]) -> bytes:
    """One regex for many literals, factored as a trie: JWTs and keys share long prefixes, and a flat
    alternation retries every word at every offset (3x slower on a typical request)."""
    ends_here = b"" in words
    by_first: dict[bytes, list[bytes]] = {}
    for word in words:
        if word:
            by_first.setdefault(word[:1], []).append(word[1:])
    branches = []
    for first, tails in sorted(by_first.items()):
        common = first
        while len(tails) > 1 and all(tails) and len({t[:1] for t in tails}) == 1:  # one path: a literal
            common += tails[0][:1]
            tails = [t[1:] for t in tails]
        if len(tails) == 1:
            branches.append(re.escape(common + tails[0]))
        else:
            branches.append(re.escape(common) + _trie_pattern(tails))
    if not branches:
        return b""
    body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
    return b"(?:" + body + b")?" if ends_here else body  # greedy: the longest word wins


def _token_forms(raw: bytes) -> list[bytes]:
    """The raw token plus the stable middle of its base64 encoding at the three byte alignments."""
    forms = [raw]
    for shift in range(3):
        chunk = raw[shift:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        if len(chunk) >= 6:
            forms.append(base64.b64encode(chunk))
            forms.append(base64.urlsafe_b64encode(chunk))
    return list(dict.fromkeys(forms))

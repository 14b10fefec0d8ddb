"""What etcd's v2 keys handler and v2 store count, for `/metrics` when the persona serves v2.

`etcd_http_received_total`, `etcd_http_failed_total` and `etcd_http_successful_duration_seconds`
exist only once a v2 client was served (label vectors); `etcd_debugging_store_reads_total` and
`writes_total` gain one series per store action used. Sans-IO: `V2Traffic.observe` takes the
fields of an `http.request` event; `family_rows` and `store_rows` give rows for `etcd_metrics`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

OBSERVED_S = 0.0003  # one v2 request's handling time as etcd records it on loopback (a few 100 us)
MAX_SERIES = 64  # label values come from a fixed set, but never let a client grow a family
MEMO_ENTRIES = 1024  # classified (method, target, body) kept per sensor: clients repeat their requests
MEMO_KEY_CHARS = 256  # longer requests are classified every time, so the memo stays a few 100 kB
_UNSEEN = ("", "")


def _form(text: str) -> dict[str, list[str]]:
    try:
        return parse_qs(text[:4096], max_num_fields=64)
    except ValueError:  # more fields than that: a client's noise, not an etcd flag
        return {}


def _params(target: str, body: Any) -> dict[str, list[str]]:
    params = _form(target.split("?", 1)[1] if "?" in target else "")
    if isinstance(body, str) and "=" in body:  # etcd reads the form body too (curl -d)
        for key, values in _form(body).items():
            params.setdefault(key, values)
    return params


def store_action(method: str, params: dict[str, list[str]]) -> tuple[str, str] | None:
    """("reads" | "writes" | "watch", action) as etcd's v2 store counts the request, or None."""
    flag = {k: (v[0] if v else "") for k, v in params.items()}
    if method in ("GET", "HEAD"):
        if flag.get("wait") == "true":
            return ("watch", "")
        return ("reads", "getRecursive" if flag.get("recursive") == "true" else "get")
    if method == "PUT":
        if "prevValue" in flag or "prevIndex" in flag:
            return ("writes", "compareAndSwap")
        if flag.get("prevExist") == "false":
            return ("writes", "create")
        if flag.get("prevExist") == "true":
            return ("writes", "update")
        return ("writes", "set")
    if method == "POST":
        return ("writes", "create")
    if method == "DELETE":
        return ("writes", "compareAndDelete" if "prevValue" in flag or "prevIndex" in flag else "delete")
    return None


@dataclass
class V2Traffic:
    received: Counter[str] = field(default_factory=Counter)  # by method
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)  # (code, method)
    succeeded: Counter[str] = field(default_factory=Counter)  # by method, watches left out
    store: Counter[tuple[str, str]] = field(default_factory=Counter)  # ("reads"/"writes", action)
    _kinds: dict[tuple[str, str, str], tuple[str, str] | None] = field(default_factory=dict, repr=False)

    def observe(self, method: str, target: str, status: Any, body: Any) -> None:
        if method not in ("GET", "HEAD", "PUT", "POST", "DELETE") or not isinstance(status, int):
            return  # etcd answers 405 before it counts
        self.received[method] += 1
        kind = self._kind(method, target, body)
        if status >= 300:
            if len(self.failed) < MAX_SERIES:
                self.failed[(str(status), method)] += 1
        elif kind is not None and kind[0] != "watch":
            self.succeeded[method] += 1
        if kind is not None and (kind[0] == "reads" or status < 300):
            self.store[kind] += 1


    def _kind(self, method: str, target: str, body: Any) -> tuple[str, str] | None:
        # parsing the query and form again per request cost more than the rest of the counting
        text = body if isinstance(body, str) else ""
        if len(target) + len(text) > MEMO_KEY_CHARS:
            return store_action(method, _params(target, body))
        key = (method, target, text)
        kind = self._kinds.get(key, _UNSEEN)
        if kind is _UNSEEN:
            kind = store_action(method, _params(target, body))
            if len(self._kinds) >= MEMO_ENTRIES:
                self._kinds.clear()
            self._kinds[key] = kind
        return kind


def _rows(rows: dict[str, int]) -> list[list[Any]]:
    return [["", labels, n] for labels, n in sorted(rows.items())]


def family_rows(name: str, les: list[str], v2: V2Traffic) -> list[list[Any]]:
    """Rows ([suffix, labels, value]) of one of the on-use families, or for the histogram its series
    ([labels without le, cumulative counts, sum, count]); [] for a name this module does not know."""
    if name == "etcd_http_received_total":
        return _rows({f'{{method="{m}"}}': n for m, n in v2.received.items()})
    if name == "etcd_http_failed_total":
        return _rows({f'{{code="{c}",method="{m}"}}': n for (c, m), n in v2.failed.items()})
    if name in ("etcd_http_successful_duration_seconds", "etcd_http_successful_duration_second"):  # 2.x: _second
        return [[f'method="{m}"', [n if le == "+Inf" or float(le) >= OBSERVED_S else 0 for le in les],
                 n * OBSERVED_S, n] for m, n in sorted(v2.succeeded.items())]
    return []


def store_rows(kind: str, rows: list[list[Any]], v2: V2Traffic) -> list[list[Any]]:
    """The captured rows of etcd_debugging_store_{reads,writes}_total plus the actions clients used."""
    counts: dict[str, float] = {}
    for _, labels, value in rows:
        counts[labels] = value
    for (k, action), n in v2.store.items():
        if k == kind:
            labels = f'{{action="{action}"}}'
            counts[labels] = counts.get(labels, 0) + n
    return [["", labels, n] for labels, n in sorted(counts.items())]

"""The event id registry: every id the honeypot's docs list is known, unknown ones are refused in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from etcdsec.errors import UserError
from etcdsec.events.ids import REGISTRY, full_id, parse_event_ids, utc_timestamp

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_documented_honeypot_id_is_registered() -> None:
    documented = set(re.findall(r"^\| `(etcdsec\.[a-z0-9_.]+)` \|", (DOCS / "honeypot-events.md").read_text(), re.M))
    assert documented and documented <= set(REGISTRY)


def test_emitted_ids_in_the_source_are_registered() -> None:
    src = Path(__file__).resolve().parents[2] / "src" / "etcdsec" / "honeypot"
    emitted = set()
    for path in src.rglob("*.py"):
        emitted |= set(re.findall(r'emit(?:_fields)?\(\s*"([a-z0-9_.]+)"', path.read_text()))
    assert emitted and {full_id(e) for e in emitted} <= set(REGISTRY)


def test_parse_accepts_short_and_full_ids() -> None:
    assert parse_event_ids(" honeytoken.used,etcdsec.http.request ") == ["etcdsec.honeytoken.used",
                                                                         "etcdsec.http.request"]


@pytest.mark.parametrize("text, emitter", [("honeytoken.usd", None), ("", None), (",", None),
                                           ("monitor.exposure.changed", "honeypot"), ("\x1b[31mx", None)])
def test_parse_refuses_in_one_line(text: str, emitter: str | None) -> None:
    with pytest.raises(UserError) as err:
        parse_event_ids(text, emitter=emitter)
    assert "\n" not in str(err.value) and "\x1b" not in str(err.value)


def test_timestamp_format() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", utc_timestamp())


def test_timestamp_text_is_exactly_the_formatted_instant(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cached second and millisecond texts give the string a full format of the same instant gives
    (microseconds truncated), across second, minute, day and year boundaries and backward clock steps."""
    from datetime import UTC, datetime

    def formatted(now: float) -> str:
        second = int(now)
        return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
            f"{int((now - second) * 1_000_000):06d}Z"

    base = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
    instants = [base + i * 0.000137 for i in range(-20_000, 20_000)] + [base + 0.9999997, base - 86_400.5, base + 1]
    for now in instants:
        monkeypatch.setattr("etcdsec.events.ids.time.time", lambda now=now: now)
        assert utc_timestamp() == formatted(now), now

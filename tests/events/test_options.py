"""Shared command-line options: durations and HOST:PORT parse exactly or fail in one line."""

from __future__ import annotations

import pytest

from etcdsec.commands.options import loopback_hostport, parse_duration, parse_hostport
from etcdsec.errors import UserError


@pytest.mark.parametrize("text, seconds", [("90", 90.0), ("1.5s", 1.5), ("500ms", 0.5), ("10m", 600.0),
                                           ("1h30m", 5400.0), ("2d", 172800.0), (" 1S ", 1.0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--every") == seconds


@pytest.mark.parametrize("text", ["", "s", "1x", "-1s", "1s2", "1e9", "9999d", "1 s", "\x1b[2J"])
def test_bad_durations_are_one_line(text: str) -> None:
    with pytest.raises(UserError) as err:
        parse_duration(text, "--every")
    assert str(err.value).startswith("--every: ") and "\n" not in str(err.value)


def test_minimum() -> None:
    with pytest.raises(UserError):
        parse_duration("50ms", "--every", minimum=0.1)


def test_hostports() -> None:
    assert parse_hostport("[::1]:9", "x") == ("::1", 9)
    assert parse_hostport("localhost:80", "x") == ("127.0.0.1", 80)
    assert loopback_hostport("127.0.0.9:9108", "--metrics-listen") == ("127.0.0.9", 9108)
    for bad in ("nope", "1.2.3.4:99999", "host.example:80"):
        with pytest.raises(UserError):
            parse_hostport(bad, "x")
    with pytest.raises(UserError, match="loopback"):
        loopback_hostport("0.0.0.0:9108", "--metrics-listen")

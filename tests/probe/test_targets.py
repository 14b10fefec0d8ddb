from __future__ import annotations

import pytest

from etcdsec.errors import UserError
from etcdsec.targets import parse_target


@pytest.mark.parametrize(("text", "host", "port", "scheme", "given"), [
    ("10.1.2.3", "10.1.2.3", 2379, None, False),
    ("10.1.2.3:2380", "10.1.2.3", 2380, None, True),
    ("https://etcd.example.com:2379", "etcd.example.com", 2379, "https", True),
    ("http://[::1]", "::1", 2379, "http", False),
    ("[::1]:2379", "::1", 2379, None, True),
    ("::1", "::1", 2379, None, False),
    ("  Host.Example.  ", "host.example", 2379, None, False),
])
def test_good_targets(text, host, port, scheme, given) -> None:
    t = parse_target(text)
    assert (t.host, t.port, t.scheme, t.port_given) == (host, port, scheme, given)


@pytest.mark.parametrize(("text", "message"), [
    ("10.1.2.3:70000", "out of range"), ("10.1.2.3:0", "out of range"), ("host:abc", "not a number"),
    ("ftp://h", "scheme"), ("https://h:2379/v2/keys", "without a path"), ("[::1", "missing"),
    ("[10.0.0.1]:1", "not an IPv6"), ("1.2.3.4.5", "not an IP"), ("", "empty"), ("a b", "not an IP"),
])
def test_bad_targets(text, message) -> None:
    with pytest.raises(UserError, match=message):
        parse_target(text)

"""Parsers of what etcd discloses, across every era of its API."""

from __future__ import annotations

import pytest

from etcdsec.probe import fingerprint as fp


@pytest.mark.parametrize(("body", "server", "cluster", "storage", "era"), [
    (b"etcd v0.4.6", "0.4.6", None, None, "0.4"),
    (b"etcd 0.4.9\n", "0.4.9", None, None, "0.4"),
    (b'{"releaseVersion":"2.0.13","internalVersion":"2"}', "2.0.13", None, None, "2.0"),
    (b'{"etcdserver":"2.3.8","etcdcluster":"2.3.0"}', "2.3.8", "2.3.0", None, "2.1+"),
    (b'{"etcdserver":"3.2.22","etcdcluster":"3.2.0"}', "3.2.22", "3.2.0", None, "2.1+"),
    (b'{"etcdserver":"3.4.23","etcdcluster":"not_decided"}', "3.4.23", None, None, "2.1+"),
    (b'{"etcdserver":"3.6.0","etcdcluster":"3.6.0","storage":"3.6.0"}', "3.6.0", "3.6.0", "3.6.0", "3.6+"),
])
def test_versions_of_every_era(body, server, cluster, storage, era) -> None:
    v = fp.parse_version(body)
    assert v is not None
    assert (v.server, v.cluster, v.storage, v.era) == (server, cluster, storage, era)


@pytest.mark.parametrize("body", [
    b'{"status":"ok"}', b'{"etcdserver":"latest"}', b'{"etcdserver":"3.4.1","extra":1}', b"<html>etcd</html>",
    b"etcd is great", b"", b"\xff\xfe", b'["etcdserver"]',
])
def test_not_a_version(body) -> None:
    assert fp.parse_version(body) is None


@pytest.mark.parametrize(("version", "prefixes"), [
    ("3.2.22", ["/v3alpha"]), ("3.3.27", ["/v3beta", "/v3alpha"]), ("3.4.23", ["/v3", "/v3beta"]),
    ("3.5.1", ["/v3", "/v3beta"]), ("2.3.8", []), (None, ["/v3", "/v3beta", "/v3alpha"]),
])
def test_gateway_prefix_by_version(version, prefixes) -> None:
    assert fp.v3_prefixes_for(version) == prefixes


def test_members_from_v2_peer_and_v3_shapes() -> None:
    v2 = {"members": [{"id": "8e9e05c52164694d", "name": "a", "peerURLs": ["http://p:2380"],
                       "clientURLs": ["http://c:2379"]}]}
    peer = [{"id": 10276657743932975437, "peerURLs": ["http://p:2380"], "name": "a", "clientURLs": []}]
    v3 = {"header": {}, "members": [{"ID": "10276657743932975437", "name": "a", "peerURLs": ["http://p:2380"]}]}
    assert fp.parse_members(v2)[0].id == "8e9e05c52164694d"
    assert fp.parse_members(peer)[0].id == "8e9e05c52164694d"
    assert fp.parse_members(v3)[0].id == "8e9e05c52164694d"
    assert fp.parse_members([{"name": "x"}]) is None
    assert fp.parse_members({"status": "ok"}) is None


def test_go_durations_and_times() -> None:
    assert fp.go_duration_seconds("1h2m3.5s") == 3723.5
    assert fp.go_duration_seconds("250ms") == 0.25
    assert fp.go_duration_seconds("soon") is None
    t = fp.parse_time("2026-11-27T03:41:02.123456789Z")
    assert t is not None and t.microsecond == 123456


def test_cmdline_withholds_credentials() -> None:
    flags = fp.cmdline_flags({"cmdline": ["etcd", "--name=a", "--auth-token=jwt,priv-key=/k", "--password=x",
                                          "positional"]})
    assert flags == ["--name=a", "--auth-token=<withheld>", "--password=<withheld>"]


def test_metrics() -> None:
    body = (b'# HELP etcd_server_version x\netcd_server_version{server_version="3.5.1"} 1\n'
            b"etcd_mvcc_db_total_size_in_bytes 20480\nprocess_start_time_seconds 1.7e+09\n")
    m = fp.parse_metrics(body)
    assert m.is_etcd and m.version == "3.5.1" and m.db_size == 20480 and m.start_time is not None
    assert not fp.parse_metrics(b"http_requests_total 5\n").is_etcd


def test_prefixes() -> None:
    assert fp.top_prefix(b"/registry/pods/ns/x") == b"/registry/"
    assert fp.top_prefix(b"/registry/pods/ns/x", 2) == b"/registry/pods/"
    assert fp.top_prefix(b"foo") == b"foo"
    assert fp.top_prefix(b"foo/bar") == b"foo/"
    assert fp.prefix_end(b"/registry/") == b"/registry0"
    assert fp.prefix_end(b"a\xff") == b"b"
    assert fp.prefix_end(b"\xff") == b"\x00"


def test_tls_record_parser_never_raises_and_finds_nothing_in_junk() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from etcdsec.net.tls import leaf_certificate_from_records

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=2048))
    def check(data: bytes) -> None:
        der = leaf_certificate_from_records(data)
        assert der is None or isinstance(der, bytes)

    check()
    # A hand-made Certificate message inside a handshake record is found.
    cert = b"\x30\x03\x02\x01\x01"
    msg = b"\x0b" + (len(cert) + 6).to_bytes(3, "big") + (len(cert) + 3).to_bytes(3, "big") + \
        len(cert).to_bytes(3, "big") + cert
    record = b"\x16\x03\x03" + len(msg).to_bytes(2, "big") + msg
    assert leaf_certificate_from_records(record) == cert

"""The JSON gateway answers a sequence of requests exactly as real etcd 3.4.23 / 3.5.1 do.

Both get the same seed keys, so revisions line up; ids, terms, sizes and URLs are normalised.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

from .conftest import real_sensor

SEED = [("foo", "bar"), ("foo2", "baz")]



def _nested_txn(depth: int) -> str:
    return ('{"success":[' + '{"request_txn":{"success":[' * depth + '{"request_range":{"key":"Zm9v"}}'
            + "]}}" * depth + "]}")


# Hostile nesting (issue 17): Go's scanner refuses past 10,000 levels; below that, etcd answers by
# the types it meets, and a txn nested 128 deep runs out of max-txn-ops (127 still runs).
DEEP: list[tuple[str, str]] = [
    ("/v3/kv/range", "[" * 500 + "]" * 500),
    ("/v3/kv/range", '{"key":' + "[" * 500 + "]" * 500 + "}"),
    ("/v3/kv/range", '{"key":' + '{"a":' * 2000 + "1" + "}" * 2001),
    ("/v3/kv/range", '{"a":' * 5000 + "1" + "}" * 5000),
    ("/v3/kv/range", '{"key":"Zm9v","zz":' + "[" * 9999 + "]" * 9999 + "}"),
    ("/v3/kv/range", "[" * 10000 + "]" * 10000),
    ("/v3/kv/range", "[" * 10001 + "]" * 10001),
    ("/v3/kv/range", '{"key":"Zm9v","zz":' + "[" * 100000),
    ("/v3/kv/range", "[" * 3000 + "}"),
    ("/v3/kv/txn", _nested_txn(127)),
    ("/v3/kv/txn", _nested_txn(128)),
    ("/v3/kv/txn", _nested_txn(1000)),
    ("/v3/kv/txn", _nested_txn(3333)),
]

# (method, path, body): a stateful sequence; order matters (writes, then reads of them).
SEQUENCE: list[tuple[str, str, str]] = [
    ("POST", "/v3/kv/range", '{"key":"Zm9v"}'),
    ("POST", "/v3/kv/range", '{"key":"Zm9v","range_end":"Zm9w"}'),
    ("POST", "/v3/kv/range", '{"key":"bm9wZQ=="}'),
    ("POST", "/v3/kv/range", '{"key":"AA==","range_end":"AA==","count_only":true}'),
    ("POST", "/v3/kv/range", '{"key":"AA==","range_end":"AA==","limit":1}'),
    ("POST", "/v3/kv/range", '{"key":"AA==","range_end":"AA==","keys_only":true}'),
    ("POST", "/v3/kv/range", '{"key":"AA==","range_end":"AA==","sort_order":"DESCEND"}'),
    ("POST", "/v3/kv/range", '{"key":"AA==","range_end":"AA==","sort_target":"VALUE"}'),
    ("POST", "/v3/kv/range", '{"key":"Zm9v","revision":"1000"}'),
    ("POST", "/v3/kv/range", "{}"),
    ("POST", "/v3/kv/range", ""),
    ("POST", "/v3/kv/range", "{bad"),
    ("POST", "/v3/kv/range", '{"key":'),
    ("POST", "/v3/kv/range", '{"key":"Zm9v",}'),
    ("POST", "/v3/kv/range", '{"key" "Zm9v"}'),
    ("POST", "/v3/kv/range", '["x"]'),
    ("POST", "/v3/kv/range", '{"key":"Zm9v"} trailing'),
    ("POST", "/v3/kv/range", '{"key":"Zm9v","unknownfield":1}'),
    ("POST", "/v3/kv/range", '{"key":"%%%"}'),
    ("POST", "/v3/kv/range", '{"key":"Zm9"}'),
    ("POST", "/v3/kv/range", '{"key":"Zm9v=="}'),
    ("POST", "/v3/kv/range", '{"key":12}'),
    # Go reads a []byte from an array of small numbers too (null is 0)
    ("POST", "/v3/kv/range", '{"key":[102,111,111]}'),
    ("POST", "/v3/kv/range", '{"key":[null,102]}'),
    ("POST", "/v3/kv/range", '{"key":[256]}'),
    ("POST", "/v3/kv/range", '{"key":[102,"x",[]]}'),
    ("POST", "/v3/kv/range", '{"key":[{}]}'),
    ("POST", "/v3/kv/range", '{"rangeEnd":"Zm9w","key":"Zm9v"}'),
    # lone surrogate escapes: Go's decoder makes them U+FFFD (a bad base64 byte, an unknown field)
    ("POST", "/v3/kv/range", '{"key":"\\ud800"}'),
    ("POST", "/v3/kv/range", '{"key":"Zm9v\\udc00=="}'),
    ("POST", "/v3/kv/range", '{"key":"Zm9v","\\ud800":1}'),
    ("POST", "/v3/kv/range", '{"key":"Zm9v","\\ud800x":null}'),
    # raw invalid UTF-8 (a surrogate's bytes, a stray continuation byte): Go reads each bad byte as U+FFFD
    ("POST", "/v3/kv/range", '{"key":"\ud800"}'),
    ("POST", "/v3/kv/range", '{"key":"Zm9v","x\udc80":1}'),
    ("POST", "/v3/kv/put", '{"key":"YQ==","value":"Yg=="}'),
    ("POST", "/v3/kv/put", '{"key":"YQ==","value":"Yw==","prev_kv":true}'),
    ("POST", "/v3/kv/put", '{"value":"Yw=="}'),
    ("POST", "/v3/kv/put", '{"key":"YQ==","ignore_value":true,"value":"Yw=="}'),
    ("POST", "/v3/kv/put", '{"key":"bm9uZQ==","ignore_value":true}'),
    ("POST", "/v3/kv/put", '{"key":"YQ==","value":"eA==","lease":"777"}'),
    ("POST", "/v3/kv/range", '{"key":"YQ=="}'),
    ("POST", "/v3/kv/deleterange", '{"key":"YQ==","prev_kv":true}'),
    ("POST", "/v3/kv/deleterange", '{"key":"YQ=="}'),
    ("POST", "/v3/kv/deleterange", "{}"),
    ("POST", "/v3/kv/txn", '{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFy"}],'
                          '"success":[{"request_put":{"key":"Zm9v","value":"cXV4"}}],'
                          '"failure":[{"request_range":{"key":"Zm9v"}}]}'),
    ("POST", "/v3/kv/txn", '{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFy"}],'
                          '"success":[{"request_put":{"key":"Zm9v","value":"cXV4"}}],'
                          '"failure":[{"request_range":{"key":"Zm9v"}}]}'),
    ("POST", "/v3/kv/txn", '{"compare":[{"key":"bm8=","target":"CREATE","create_revision":"0"}],'
                          '"success":[{"request_put":{"key":"bm8=","value":"MQ=="}},'
                          '{"request_delete_range":{"key":"Zm9vMg=="}}]}'),
    ("POST", "/v3/kv/txn", '{"success":[{"request_put":{"key":"ZA==","value":"MQ=="}},'
                          '{"request_put":{"key":"ZA==","value":"Mg=="}}]}'),
    ("POST", "/v3/kv/txn", "{}"),
    ("POST", "/v3/kv/txn", '{"compare":[{"key":"Zm9v","\\ud83d":1}],"success":[{"request_range":{"key":"Zm9v"}}]}'),
    ("POST", "/v3/kv/range", '{"key":"AA==","range_end":"AA==","min_mod_revision":"5"}'),
    ("POST", "/v3/kv/range", '{"key":"Zm9v","revision":"3"}'),
    ("POST", "/v3/kv/compaction", '{"revision":"3"}'),
    ("POST", "/v3/kv/compaction", '{"revision":"2"}'),
    ("POST", "/v3/kv/compaction", '{"revision":"1000"}'),
    ("POST", "/v3/kv/range", '{"key":"Zm9v","revision":"2"}'),
    ("POST", "/v3/kv/range", '{"key":"Zm9v","revision":"3"}'),
    ("POST", "/v3/lease/grant", '{"TTL":"60","ID":"12345"}'),
    ("POST", "/v3/lease/grant", '{"TTL":"60","ID":"12345"}'),
    ("POST", "/v3/lease/grant", '{"TTL":"9000000001"}'),
    ("POST", "/v3/lease/timetolive", '{"ID":"999"}'),
    ("POST", "/v3/lease/revoke", '{"ID":"999"}'),
    ("POST", "/v3/kv/lease/revoke", '{"ID":"12345"}'),
    ("POST", "/v3/lease/leases", "{}"),
    ("POST", "/v3/lease/keepalive", '{"ID":"999"}'),
    ("POST", "/v3/cluster/member/list", "{}"),
    ("POST", "/v3/maintenance/status", "{}"),
    ("POST", "/v3/maintenance/alarm", "{}"),
    ("POST", "/v3/auth/status", "{}"),
    ("POST", "/v3/auth/authenticate", '{"name":"root","password":"x"}'),
    ("POST", "/v3/auth/user/list", "{}"),
    ("POST", "/v3/auth/role/list", "{}"),
    ("POST", "/v3/auth/user/add", "{}"),
    ("POST", "/v3/auth/user/get", '{"name":"nobody"}'),
    ("POST", "/v3/auth/role/get", '{"role":"nobody"}'),
    ("POST", "/v3/auth/role/add", "{}"),
    ("POST", "/v3/auth/enable", "{}"),
    ("POST", "/v3/nope", "{}"),
    ("POST", "/v3/kv", "{}"),
    ("GET", "/v3/kv/range", ""),
    ("PUT", "/v3/kv/range", "{}"),
    ("POST", "/v3beta/kv/range", '{"key":"Zm9v"}'),
    *[("POST", path, body) for path, body in DEEP],
    ("POST", "/v3/watch", '{"create_request":{"key":"Zm9v","start_revision":"3"}}'),
]

VOLATILE = {"cluster_id", "member_id", "ID", "leader", "raftIndex", "raftAppliedIndex", "dbSize", "dbSizeInUse",
            "raft_term", "raftTerm", "peerURLs", "clientURLs", "name", "version"}


def normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<v>" if k in VOLATILE else normalise(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def body_shape(body: bytes) -> Any:
    lines = [ln for ln in body.split(b"\n") if ln.strip()]
    try:
        return [normalise(json.loads(ln)) for ln in lines] if lines else []
    except ValueError:
        return body


def send(base: str, method: str, path: str, body: str) -> tuple[int, str, Any]:
    data = body.encode("utf-8", "surrogatepass") if method != "GET" else None  # lone surrogates: raw bad bytes
    req = urllib.request.Request(base + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), body_shape(_read(resp))
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), body_shape(_read(err))


def _read(resp: Any) -> bytes:
    # A watch response stays open on real etcd: read what arrives within the timeout.
    out = b""
    try:
        while True:
            line = resp.readline()
            if not line:
                break
            out += line
            if b'"events"' in line or (b'"created"' in line and b"start_revision" not in line):
                break
    except TimeoutError:
        pass
    return out


@pytest.fixture(scope="module", params=["3.4", "3.5"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    persona = {"3.4": "3.4.23", "3.5": "3.5.1"}[request.param]
    with EtcdServer(EtcdConfig(version=request.param)) as real:
        for k, v in SEED:
            real.put(k, v)
        with real_sensor(persona, SEED, tmp_path_factory.mktemp("gw")) as hp:
            yield real.client_url, hp.url


def test_gateway_matches_real_etcd(pair: tuple[str, str]) -> None:
    real, hp = pair
    mismatches = []
    for method, path, body in SEQUENCE:
        want = send(real, method, path, body)
        got = send(hp, method, path, body)
        if want != got:
            mismatches.append(f"{method} {path} {body}\n  etcd:     {want}\n  honeypot: {got}")
    assert not mismatches, "\n".join(mismatches)

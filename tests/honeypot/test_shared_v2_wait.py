"""One keyspace with `--workers 2` for what was left on each worker: a held v2 `wait=true` and a
persona without v3 (2.3.8, v2 only).

Sources are 127.x addresses bound by the client socket, chosen with `worker_for` so that the watcher
and the writer land on different workers (the events' `worker` field proves it).
"""

from __future__ import annotations

import json
import socket

import pytest

from .conftest import read_until
from .test_shared_keyspace import SOURCES, by_worker, events_of
from .test_workers import request, start, stop, wait_for


def _wait_request(key: str, extra: str = "") -> bytes:
    return f"GET /v2/keys{key}?wait=true{extra} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def _watchers(ip: str, source: str) -> int:
    status, raw = request(ip, source, "GET", "/v2/stats/store")
    assert status == 200
    return int(json.loads(raw)["watchers"])


@pytest.mark.parametrize("watcher_worker", [0, 1])
def test_a_v2_wait_on_one_worker_sees_a_write_made_through_the_other(tmp_path, watcher_worker) -> None:
    proc, ip, events = start(tmp_path)
    try:
        sources = by_worker(SOURCES)
        watcher, writer = sources[watcher_worker][0], sources[1 - watcher_worker][0]
        with socket.create_connection((ip, 2379), timeout=5, source_address=(watcher, 0)) as sock:
            sock.sendall(_wait_request("/waited/k"))
            head = read_until(sock, b"\r\n\r\n", 5)  # etcd sends the head at once, the event when it comes
            assert head.startswith(b"HTTP/1.1 200 OK") and b"X-Etcd-Index" in head
            wait_for(lambda: _watchers(ip, writer) == 1)  # the owner holds the watcher, whoever asked
            status, raw = request(ip, writer, "PUT", "/v2/keys/waited/k", "value=from-the-other-worker")
            assert status == 201, raw
            index = json.loads(raw)["node"]["modifiedIndex"]
            got = head + read_until(sock, b"}}", 5)
        body = json.loads(got.split(b"\r\n\r\n", 1)[1].split(b"\r\n")[1])  # one chunk: the event
        assert body["action"] == "set" and body["node"]["value"] == "from-the-other-worker"
        assert body["node"]["modifiedIndex"] == index
        wait_for(lambda: _watchers(ip, writer) == 0)  # one-shot: fired and gone
    finally:
        assert stop(proc) == 0
    landed = {e["src_ip"]: e["worker"] for e in events_of(events) if e["eventid"] == "etcdsec.http.request"}
    assert landed[watcher] == watcher_worker and landed[writer] == 1 - watcher_worker


def test_a_v2_wait_left_by_its_client_lets_go_of_the_owners_watcher(tmp_path) -> None:
    proc, ip, _events = start(tmp_path)
    try:
        sources = by_worker(SOURCES)
        on0, on1 = sources[0][0], sources[1][0]
        with socket.create_connection((ip, 2379), timeout=5, source_address=(on1, 0)) as sock:
            sock.sendall(_wait_request("/left", "&recursive=true"))
            assert read_until(sock, b"\r\n\r\n", 5).startswith(b"HTTP/1.1 200 OK")
            wait_for(lambda: _watchers(ip, on0) == 1)
        wait_for(lambda: _watchers(ip, on0) == 0)  # the forwarding worker told the owner
        # a waitIndex already in the store's history is answered at once, through the forwarder too
        status, raw = request(ip, on0, "PUT", "/v2/keys/left/k", "value=v")
        index = json.loads(raw)["node"]["modifiedIndex"]
        with socket.create_connection((ip, 2379), timeout=5, source_address=(on1, 0)) as sock:
            sock.sendall(_wait_request("/left/k", f"&waitIndex={index}"))
            got = read_until(sock, b"}}", 5)
        assert b'"value":"v"' in got and f'"modifiedIndex":{index}'.encode() in got
        # a bad form is answered at once by the owner, with etcd's error
        status, raw = request(ip, on1, "GET", "/v2/keys/left?wait=maybe")
        assert status == 400 and json.loads(raw)["errorCode"] == 209
    finally:
        assert stop(proc) == 0


def test_a_persona_without_v3_shares_its_v2_store_over_workers(tmp_path) -> None:
    proc, ip, _events = start(tmp_path, "--persona", "2.3.8")
    try:
        sources = by_worker(SOURCES)
        indexes = []
        for i, source in enumerate(SOURCES):
            status, raw = request(ip, source, "PUT", f"/v2/keys/old/k{i}", f"value=v{i}")
            assert status == 201, raw
            indexes.append(json.loads(raw)["node"]["modifiedIndex"])
        assert indexes == list(range(indexes[0], indexes[0] + len(SOURCES)))  # one index sequence
        for worker in (0, 1):
            status, raw = request(ip, sources[worker][0], "GET", "/v2/keys/old")
            assert status == 200
            assert {n["value"] for n in json.loads(raw)["node"]["nodes"]} == {f"v{i}" for i in range(len(SOURCES))}
    finally:
        assert stop(proc) == 0

"""Two sensors with different personas in one process (one Python process, as the fidelity runner
and the benchmarks run them): each answers with its own persona, identity and gateway memory after
interleaved requests. What a sensor learns while serving belongs to it, not to the process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from etcdsec.honeypot.sensor import SensorConfig
from tests.support.harness import BackgroundSensor

from .conftest import b64

PERSONAS = ("3.3.27", "3.4.23", "3.5.1")
# grpc-gateway's error body for an empty key, field order as each version's gateway writes it
EMPTY_KEY = {
    "3.3.27": b'{"error":"etcdserver: key is not provided","code":3}',
    "3.4.23": b'{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}',
    "3.5.1": b'{"error":"etcdserver: key is not provided","code":3,"message":"etcdserver: key is not provided"}',
}


@pytest.fixture(scope="module")
def sensors() -> Iterator[dict[str, BackgroundSensor]]:
    running: dict[str, BackgroundSensor] = {}
    try:
        for persona in PERSONAS:
            running[persona] = BackgroundSensor(SensorConfig(persona=persona, state_file=None)).start()
        yield running
    finally:
        for hp in running.values():
            hp.stop()


def _post(hp: BackgroundSensor, path: str, body: dict[str, object]) -> tuple[int, bytes]:
    req = urllib.request.Request(hp.url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_each_sensor_answers_as_its_own_persona_after_interleaved_requests(sensors) -> None:
    cluster_ids = {p: str(hp.sensor.identity.cluster_id) for p, hp in sensors.items()}
    assert len(set(cluster_ids.values())) == len(PERSONAS)
    for _ in range(3):  # each path is first seen by one sensor, then asked of the others
        for persona, hp in sensors.items():
            status, body = _post(hp, "/v3beta/kv/put", {"key": b64("k"), "value": b64(persona)})
            assert status == 200 and json.loads(body)["header"]["cluster_id"] == cluster_ids[persona]
            status, body = _post(hp, "/v3beta/kv/range", {"key": b64("k")})
            answer = json.loads(body)
            assert status == 200 and answer["header"]["cluster_id"] == cluster_ids[persona]
            assert answer["kvs"][0]["value"] == b64(persona)
            status, body = _post(hp, "/v3beta/kv/range", {"key": ""})
            assert (status, body) == (400, EMPTY_KEY[persona])
            status, body = _post(hp, "/v3/kv/range", {"key": b64("k")})
            assert status == (404 if persona == "3.3.27" else 200)  # 3.3 has no /v3 gateway
    memo = {p: hp.sensor.v3_state.gateway_memo for p, hp in sensors.items()}
    assert set(memo["3.3.27"].routes) == {"/v3beta/kv/put", "/v3beta/kv/range"}
    assert set(memo["3.5.1"].routes) == {"/v3beta/kv/put", "/v3beta/kv/range", "/v3/kv/range"}
    assert memo["3.4.23"].routes is not memo["3.5.1"].routes and memo["3.4.23"].ranges is not memo["3.5.1"].ranges
    for hp in sensors.values():  # and each recorded only what it was sent
        assert {e["dst_ip"] for e in hp.memory.of("http.request")} == {hp.ip}

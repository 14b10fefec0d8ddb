"""Personas without a binary here (3.3.27, 3.2.22, 2.3.8): recorded transcripts written from etcd's
sources, and /metrics family sets checked against etcd's own dump of the nearest release."""

from __future__ import annotations

import json
import tempfile
import urllib.request
from pathlib import Path

import grpc
import pytest

from etcdsec.honeypot.core.bait import Bait
from etcdsec.honeypot.core.persona import go_release
from etcdsec.honeypot.sensor import SensorConfig
from tests.support import transcripts
from tests.support.harness import BackgroundSensor
from tests.support.promtext import Family, parse

DUMPS = transcripts.CORPUS


@pytest.mark.parametrize("version", transcripts.VERSIONS)
def test_recorded_transcripts_match(version: str) -> None:
    rows = transcripts.run(version)
    assert len(rows) >= 25
    assert [(o.id, o.diffs) for o in rows if not o.match] == []


def test_transcripts_tell_the_versions_apart() -> None:
    """3.2.22's transcripts fail on a 3.3.27 honeypot exactly where the releases differ."""
    rows = transcripts.run("3.2.22", persona="3.3.27")
    assert {o.id for o in rows if not o.match} == {
        "version-get", "peer-version",  # 3.3.27 / 3.3.0
        "health-get",  # {"health":"true"} since 3.3
        "gw-v3beta-kv-range",  # /v3beta since 3.3
        "gw-v3alpha-kv-lease-leases", "gw-v3alpha-maintenance-transfer-leadership",  # LeaseLeases, MoveLeader
        "gw-websocket-watch",  # grpc-websocket-proxy since 3.3
        "v2-machines",  # put back in 3.3.0
    }


def dump(name: str) -> list[tuple[str, str, str]]:
    """(name, type, HELP) of a recorded dump, in its order."""
    rows = []
    for line in (DUMPS / name).read_text().splitlines():
        if line and not line.startswith("#"):
            fam, kind, help_text = (part.strip() for part in line.split(" | ", 2))
            rows.append((fam, kind, help_text))
    return rows


def scrape(url: str) -> list[Family]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        return parse(resp.read().decode())


def gateway_range(url: str, prefix: str) -> None:
    req = urllib.request.Request(f"{url}{prefix}/kv/range", data=b'{"key":"YQ=="}', method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


@pytest.fixture
def sensor(request):
    with tempfile.TemporaryDirectory() as tmp:
        config = SensorConfig(persona=request.param, member_name="default", bait=Bait(),
                              state_file=Path(tmp) / "state.json")
        with BackgroundSensor(config, keep_events=False) as hp:
            yield hp


@pytest.mark.parametrize("sensor", ["3.3.27"], indirect=True)
def test_3_3_27_metrics_are_etcd_3_3_dump(sensor) -> None:
    """Names, TYPE and HELP text in order as etcd's dump of v3.3.24 (no metric changed up to 3.3.27)."""
    got = [(f.name, f.type, f.help) for f in scrape(sensor.url)]
    assert got == dump("metrics-v3.3.24.txt")
    families = {f.name: f for f in scrape(sensor.url)}
    # 3.3 registers every gRPC method up front (no MemberPromote before 3.4) and has no promhttp_*
    methods = {s[1] for s in families["grpc_server_started_total"].samples}
    assert len(methods) == 40 and not any("MemberPromote" in m for m in methods)
    assert any('grpc_method="LeaseLeases"' in m for m in methods)
    assert families["etcd_server_version"].samples[0][1] == '{server_version="3.3.27"}'
    assert families["etcd_cluster_version"].samples[0][1] == '{cluster_version="3.3"}'


@pytest.mark.parametrize("sensor", ["3.2.22"], indirect=True)
def test_3_2_22_metrics_are_etcd_3_2_dump(sensor) -> None:
    expected = [row for row in dump("metrics-v3.2.23.txt") if row[0] != "etcd_server_version"]  # added in 3.2.23
    process = {"process_cpu_seconds_total", "process_max_fds", "process_open_fds", "process_resident_memory_bytes",
               "process_start_time_seconds", "process_virtual_memory_bytes"}
    grpc = {row[0] for row in expected if row[0].startswith("grpc_")}
    first = scrape(sensor.url)
    # first scrape: no gRPC call yet, so no grpc_* family (3.2 does not pre-register the methods);
    # the handler's own summaries are there with NaN quantiles, http_requests_total is not
    assert [(f.name, f.type, f.help) for f in first if f.name not in process] == \
        [row for row in expected if row[0] not in grpc]
    assert {f.name for f in first} >= process
    summary = next(f for f in first if f.name == "http_request_duration_microseconds")
    assert [s[2] for s in summary.samples[:3]] == ["NaN", "NaN", "NaN"]
    gateway_range(sensor.url, "/v3alpha")
    second = {f.name: f for f in scrape(sensor.url)}
    assert [(n, f.type, f.help) for n, f in second.items() if n not in process | {"http_requests_total"}] == expected
    assert second["grpc_server_started_total"].samples == [
        ("grpc_server_started_total",
         '{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}', "1")]
    assert [s[1] for s in second["grpc_server_handled_total"].samples] == [
        '{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}']
    assert second["http_requests_total"].samples == [
        ("http_requests_total", '{code="200",handler="prometheus",method="get"}', "1")]
    assert second["http_request_duration_microseconds"].samples[-1][2] == "1"  # _count


@pytest.mark.parametrize("sensor", ["2.3.8"], indirect=True)
def test_2_3_8_metrics_are_the_v2_lines(sensor) -> None:
    """No gRPC, no mvcc: the v2 line's own families; etcd_http_* once a v2 request was served."""
    expected = dump("metrics-v2.3.8.txt")
    on_use = {"etcd_http_received_total", "etcd_http_successful_duration_second", "http_requests_total"}
    first = [(f.name, f.type, f.help) for f in scrape(sensor.url)]
    assert first == [row for row in expected if row[0] not in on_use]
    req = urllib.request.Request(sensor.url + "/v2/keys/probe", data=b"value=1", method="PUT")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201
    second = scrape(sensor.url)
    assert [(f.name, f.type, f.help) for f in second] == expected
    families = {f.name: f for f in second}
    assert families["etcd_http_received_total"].samples == [("etcd_http_received_total", '{method="PUT"}', "1")]
    assert not any(name.startswith(("grpc_", "etcd_mvcc", "etcd_debugging", "etcd_server_version"))
                   for name in families)


@pytest.mark.parametrize("sensor", ["2.3.8"], indirect=True)
def test_2_3_8_debug_vars_memstats_are_go_1_7s(sensor) -> None:
    """MemStats.NumForcedGC arrived in Go 1.8; etcd 2.3.8 was built with Go 1.7."""
    with urllib.request.urlopen(sensor.url + "/debug/vars", timeout=10) as resp:
        memstats = json.loads(resp.read())["memstats"]
    assert "NumGC" in memstats and "NumForcedGC" not in memstats


def test_go_release_parses_persona_versions() -> None:
    assert go_release("go1.7.6") == (1, 7) and go_release("go1.12.17") == (1, 12) and go_release("x") == (1, 99)


@pytest.mark.parametrize(("persona", "message"), [
    ("3.2.22", "unknown method LeaseLeases"),  # grpc-go before 1.20 (grpc-go PR 2723) names no service
    ("3.3.27", None),  # LeaseLeases exists since 3.3
])
def test_grpc_methods_and_unknown_method_text_per_release(persona: str, message: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = SensorConfig(persona=persona, bait=Bait(), state_file=Path(tmp) / "state.json")
        with BackgroundSensor(config, keep_events=False) as hp, grpc.insecure_channel(hp.addr) as channel:
            call = channel.unary_unary("/etcdserverpb.Lease/LeaseLeases")
            if message is None:
                assert call(b"", timeout=10) is not None
                return
            with pytest.raises(grpc.RpcError) as err:
                call(b"", timeout=10)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert err.value.details() == message

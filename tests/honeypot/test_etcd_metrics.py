"""`/metrics` and `/debug/vars` against real etcd 3.5.1 and 3.4.23 on loopback, side by side.

Both get the same client traffic (etcdctl puts and a get) before they are compared: the family
names, TYPE and HELP name by name in order, the label names, the gRPC method set; then counters,
revision and db size must move with writes on both, and /debug/vars must have etcd's keys with the
command line the persona claims.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from etcdsec.honeypot.context import Persona, SensorContext, load_persona
from etcdsec.honeypot.endpoints.debug_vars import cmdline
from etcdsec.honeypot.endpoints.etcd_metrics import go_float
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer, etcd_binaries
from tests.support.harness import BackgroundSensor
from tests.support.promtext import Family, label_dict, parse

PERSONA = {"3.5": "3.5.1", "3.4": "3.4.23", "3.3": "3.3.25"}


def etcdctl(version: str, url: str, *args: str) -> str:
    _, ctl = etcd_binaries(version)
    done = subprocess.run([str(ctl), f"--endpoints={url}", *args], env={"ETCDCTL_API": "3"}, capture_output=True,
                          timeout=30, check=True)
    return done.stdout.decode()


def client_traffic(version: str, url: str, tag: str) -> None:
    """What the capture saw: three puts and a prefix get."""
    for i in range(3):
        etcdctl(version, url, "put", f"{tag}{i}", "v" * 100)
    etcdctl(version, url, "get", tag, "--prefix")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


def scrape(url: str) -> dict[str, Family]:
    return {f.name: f for f in parse(fetch(url + "/metrics").decode())}


@pytest.fixture(scope="module", params=["3.5", "3.4", "3.3"])
def pair(request, etcd_factory, tmp_path_factory) -> Iterator[tuple[str, EtcdServer, BackgroundSensor]]:
    version = request.param
    real = etcd_factory(f"metrics-{version}", EtcdConfig(version=version),
                        setup=lambda s: client_traffic(version, s.client_url, "warm"))
    state = tmp_path_factory.mktemp(f"hp-metrics-{version}") / "state.json"
    with BackgroundSensor(SensorConfig(persona=PERSONA[version], state_file=state)) as hp:
        client_traffic(version, hp.url, "warm")
        yield version, real, hp


def test_family_names_type_help_in_order_as_etcd(pair) -> None:
    version, real, hp = pair
    theirs, ours = parse(fetch(real.client_url + "/metrics").decode()), parse(fetch(hp.url + "/metrics").decode())
    assert [f.name for f in ours] == [f.name for f in theirs]
    assert len(ours) > (100 if version == "3.3" else 120)  # 3.3.25: 108 families
    for a, b in zip(ours, theirs, strict=True):
        assert (a.name, a.type, a.help) == (b.name, b.type, b.help)
        assert a.label_names() == b.label_names(), a.name
        if a.type == "histogram":  # bucket bounds, in order
            assert [label_dict(lb)["le"] for n, lb, _ in a.samples if n.endswith("_bucket")][:30] == \
                [label_dict(lb)["le"] for n, lb, _ in b.samples if n.endswith("_bucket")][:30], a.name


def test_grpc_series_and_identity_labels_as_etcd(pair) -> None:
    _, real, hp = pair
    theirs, ours = scrape(real.client_url), scrape(hp.url)
    for name in ("grpc_server_started_total", "grpc_server_handled_total"):  # every method and code, in order
        assert [lb for _, lb, _ in ours[name].samples] == [lb for _, lb, _ in theirs[name].samples]
    ident = hp.sensor.identity
    assert ours["etcd_server_id"].samples == [("etcd_server_id", f'{{server_id="{ident.member_id:x}"}}', "1")]
    assert ours["etcd_server_version"].samples[0][1] == theirs["etcd_server_version"].samples[0][1]
    assert ours["go_info"].samples == theirs["go_info"].samples  # the persona's Go is the binary's
    assert ours["process_start_time_seconds"].value() == pytest.approx(ident.start_time.timestamp(), abs=1.0)


def test_sample_values_print_as_go_prints_them(pair) -> None:
    _, real, _ = pair
    values = [v for f in parse(fetch(real.client_url + "/metrics").decode()) for _, _, v in f.samples]
    assert len(values) > 500
    floats = [v for v in values if any(c in v for c in ".e")]
    assert floats  # the test sees Go's float forms (1.5e-05, 2.147483648e+09, 0.0066)
    for text in values:
        assert go_float(float(text)) == text


def _writes(version: str, url: str, tag: str) -> None:
    for i in range(12):  # ~48 KiB of values: more pages than the db had
        etcdctl(version, url, "put", f"{tag}{i}", "x" * 4096)


@pytest.mark.parametrize("side", ["etcd", "honeypot"])
def test_counters_revision_and_db_size_follow_writes(pair, side) -> None:
    version, real, hp = pair
    url = real.client_url if side == "etcd" else hp.url
    before = scrape(url)
    _writes(version, url, f"grow-{side}")
    after = scrape(url)
    put = '{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}'
    assert after["grpc_server_handled_total"].value(put) == before["grpc_server_handled_total"].value(put) + 12
    if version != "3.3":  # etcd_mvcc_put_total came with 3.4
        assert after["etcd_mvcc_put_total"].value() >= before["etcd_mvcc_put_total"].value() + 12
    assert after["etcd_debugging_mvcc_current_revision"].value() >= \
        before["etcd_debugging_mvcc_current_revision"].value() + 12
    assert after["etcd_mvcc_db_total_size_in_use_in_bytes"].value() > \
        before["etcd_mvcc_db_total_size_in_use_in_bytes"].value()
    # etcd sets this gauge in its raft loop, which may come just after the last reply: +11 at least
    assert after["etcd_server_proposals_committed_total"].value() >= \
        before["etcd_server_proposals_committed_total"].value() + 11
    assert after["etcd_network_client_grpc_received_bytes_total"].value() > \
        before["etcd_network_client_grpc_received_bytes_total"].value()
    assert after["promhttp_metric_handler_requests_total"].value('{code="200"}') == \
        before["promhttp_metric_handler_requests_total"].value('{code="200"}') + 1
    assert after["go_memstats_mallocs_total"].value() > before["go_memstats_mallocs_total"].value()
    # etcd may cover several entries with one fsync, and may fsync after the reply: it grows
    assert after["etcd_disk_wal_fsync_duration_seconds"].value(suffix="_count") > \
        before["etcd_disk_wal_fsync_duration_seconds"].value(suffix="_count")


def test_db_size_is_the_one_status_reports(pair) -> None:
    version, _, hp = pair
    status = json.loads(etcdctl(version, hp.url, "endpoint", "status", "-w", "json"))[0]["Status"]
    assert scrape(hp.url)["etcd_mvcc_db_total_size_in_bytes"].value() == status["dbSize"]


def test_debug_vars_keys_and_memstats_as_etcd(pair) -> None:
    _, real, hp = pair
    theirs, ours = json.loads(fetch(real.client_url + "/debug/vars")), json.loads(fetch(hp.url + "/debug/vars"))
    assert list(ours) == list(theirs)
    assert list(ours["memstats"]) == list(theirs["memstats"])
    assert [s["Size"] for s in ours["memstats"]["BySize"]] == [s["Size"] for s in theirs["memstats"]["BySize"]]
    assert len(ours["memstats"]["PauseNs"]) == len(theirs["memstats"]["PauseNs"]) == 256
    assert list(ours["raft.status"]) == list(theirs["raft.status"])
    mem = ours["memstats"]  # Go's own bookkeeping holds
    parts = ("HeapSys", "StackSys", "MSpanSys", "MCacheSys", "BuckHashSys", "GCSys", "OtherSys")
    assert mem["Sys"] == sum(mem[k] for k in parts)
    assert mem["HeapIdle"] + mem["HeapInuse"] == mem["HeapSys"] and mem["Frees"] < mem["Mallocs"]
    metrics = scrape(hp.url)  # and /metrics shows the same process
    assert metrics["go_memstats_sys_bytes"].value() == pytest.approx(mem["Sys"], rel=0.01)
    assert metrics["process_max_fds"].value() == ours["file_descriptor_limit"]
    # the control plane's lease renewals may commit between the two requests
    assert 0 <= metrics["etcd_server_proposals_committed_total"].value() - ours["raft.status"]["commit"] <= 5


def _flags(argv: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in argv[1:])


def test_debug_vars_cmdline_names_the_sensor(pair) -> None:
    _, real, hp = pair
    theirs = _flags(json.loads(fetch(real.client_url + "/debug/vars"))["cmdline"])
    ours = _flags(json.loads(fetch(hp.url + "/debug/vars"))["cmdline"])
    same = {"name", "data-dir", "listen-client-urls", "advertise-client-urls", "listen-peer-urls",
            "initial-advertise-peer-urls", "initial-cluster"}
    assert same <= set(theirs) and same <= set(ours)
    assert ours["listen-client-urls"] == ours["advertise-client-urls"] == hp.url
    assert ours["name"] == hp.sensor.identity.member_name
    assert ours["initial-cluster"] == f"{ours['name']}={ours['initial-advertise-peer-urls']}"
    assert ours["listen-peer-urls"].endswith(":2380") and ours["data-dir"] == "/var/lib/etcd"
    assert "enable-v2" not in ours  # v2 off, as 3.4/3.5 default


def _ctx(persona: Persona, tls: bool = False) -> SensorContext:
    from etcdsec.honeypot.sensor import Sensor

    scheme = "https" if tls else "http"
    sensor = Sensor(SensorConfig(persona=persona.name, listen=("0.0.0.0", 2379), member_name="cp-7",
                                 advertise_client_url=f"{scheme}://10.1.2.3:2379"))
    return SensorContext(persona, sensor.identity, sensor.events, sensor.honeytokens,
                         listen_urls=sensor.ctx.listen_urls)


@pytest.mark.parametrize(("persona", "v2", "flag"), [
    ("3.5.1", True, "--enable-v2=true"), ("3.4.23", True, "--enable-v2=true"), ("3.4.23", False, None),
    ("3.3.27", True, None), ("3.3.27", False, "--enable-v2=false"), ("2.3.8", True, None)])
def test_cmdline_has_enable_v2_as_the_persona_runs(persona, v2, flag) -> None:
    import dataclasses

    argv = cmdline(_ctx(dataclasses.replace(load_persona(persona), v2_enabled=v2)))
    assert [a for a in argv if a.startswith("--enable-v2")] == ([flag] if flag else [])
    flags = _flags(argv)
    assert flags["listen-client-urls"] == "http://0.0.0.0:2379"  # as bound, not as advertised
    assert flags["advertise-client-urls"] == "http://10.1.2.3:2379" and flags["name"] == "cp-7"
    assert argv[1:] == sorted(argv[1:])  # kubeadm writes its flags sorted


def test_cmdline_names_certificates_when_the_port_speaks_tls() -> None:
    flags = _flags(cmdline(_ctx(load_persona("3.5.1"), tls=True)))
    assert flags["cert-file"].endswith("server.crt") and flags["key-file"].endswith("server.key")
    assert "cert-file" not in _flags(cmdline(_ctx(load_persona("3.5.1"))))


def test_v2_on_sensor_shows_enable_v2_like_etcd(etcd_factory) -> None:
    real = etcd_factory("metrics-3.5-v2", EtcdConfig(version="3.5", enable_v2=True))
    theirs = json.loads(fetch(real.client_url + "/debug/vars"))["cmdline"]
    with BackgroundSensor(SensorConfig(persona="3.5.1", state_file=None, enable_v2=True)) as hp:
        ours = json.loads(fetch(hp.url + "/debug/vars"))["cmdline"]
        assert fetch(hp.url + "/v2/keys/").startswith(b'{"action":"get"')
    assert "--enable-v2=true" in theirs and "--enable-v2=true" in ours


def _get(url: str, headers: dict[str, str]) -> tuple[dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(resp.headers), resp.read()


@pytest.mark.parametrize("accept", ["gzip", "deflate, gzip;q=1.0", "gzip;q=0", "br", "x-gzip"])
def test_metrics_gzip_as_promhttp_decides(pair, accept) -> None:
    import gzip

    _, real, hp = pair
    theirs, _ = _get(real.client_url + "/metrics", {"Accept-Encoding": accept})
    ours, body = _get(hp.url + "/metrics", {"Accept-Encoding": accept})
    assert ours.get("Content-Encoding") == theirs.get("Content-Encoding")
    if ours.get("Content-Encoding") == "gzip":
        assert body[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # Go's gzip header
        assert len(parse(gzip.decompress(body).decode())) > 100


@pytest.mark.parametrize("side", ["etcd", "honeypot"])
def test_watch_gauges_count_open_watches(pair, side) -> None:
    import time

    version, real, hp = pair
    url = real.client_url if side == "etcd" else hp.url
    before = scrape(url)
    _, ctl = etcd_binaries(version)
    watch = subprocess.Popen([str(ctl), f"--endpoints={url}", "watch", "watched-key"], env={"ETCDCTL_API": "3"},
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the stream is registered (etcdctl dials first)
            during = scrape(url)
            watchers = "etcd_debugging_mvcc_watcher_total"
            started = during["grpc_server_started_total"].value(
                '{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}')
            if during[watchers].value() > before[watchers].value() and started >= 1:  # both counted
                break
            time.sleep(0.1)
        assert during["etcd_debugging_mvcc_watch_stream_total"].value() == \
            before["etcd_debugging_mvcc_watch_stream_total"].value() + 1
        assert during["etcd_debugging_mvcc_watcher_total"].value() == \
            before["etcd_debugging_mvcc_watcher_total"].value() + 1
        assert during["grpc_server_started_total"].value(
            '{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}') >= 1
    finally:
        watch.kill()
        watch.wait(10)


V2_TRAFFIC = (("GET", "/v2/keys/missing", None), ("PUT", "/v2/keys/a", b"value=1"), ("GET", "/v2/keys/a", None),
              ("GET", "/v2/keys/?recursive=true", None), ("PUT", "/v2/keys/a?prevValue=1", b"value=2"),
              ("PUT", "/v2/keys/b?prevExist=false", b"value=1"), ("POST", "/v2/keys/q", b"value=1"),
              ("DELETE", "/v2/keys/a", None), ("DELETE", "/v2/keys/a", None))


def v2_traffic(url: str) -> None:
    import urllib.error

    for method, path, body in V2_TRAFFIC:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        try:
            fetch_req = urllib.request.Request(url + path, data=body, method=method, headers=headers)
            urllib.request.urlopen(fetch_req, timeout=10).read()
        except urllib.error.HTTPError as exc:
            exc.read()


@pytest.fixture(scope="module", params=["3.5", "3.4"])
def v2pair(request, etcd_factory) -> Iterator[tuple[EtcdServer, BackgroundSensor]]:
    version = request.param
    real = etcd_factory(f"metrics-v2-traffic-{version}", EtcdConfig(version=version, enable_v2=True),
                        setup=lambda s: (client_traffic(version, s.client_url, "warm"), v2_traffic(s.client_url)))
    with BackgroundSensor(SensorConfig(persona=PERSONA[version], state_file=None, enable_v2=True)) as hp:
        before = parse(fetch(hp.url + "/metrics").decode())
        assert "etcd_http_received_total" not in {f.name for f in before}  # absent until a v2 client came
        client_traffic(version, hp.url, "warm")
        v2_traffic(hp.url)
        yield real, hp


def test_v2_families_appear_as_etcd_after_v2_traffic(v2pair) -> None:
    real, hp = v2pair
    theirs, ours = parse(fetch(real.client_url + "/metrics").decode()), parse(fetch(hp.url + "/metrics").decode())
    assert [(f.name, f.type, f.help) for f in ours] == [(f.name, f.type, f.help) for f in theirs]
    by_name = {f.name: f for f in theirs}
    for fam in ours:
        assert fam.label_names() == by_name[fam.name].label_names(), fam.name
    for name in ("etcd_http_received_total", "etcd_http_failed_total", "etcd_http_successful_duration_seconds",
                 "etcd_debugging_store_reads_total", "etcd_debugging_store_writes_total"):
        mine = {lb for _, lb, _ in next(f for f in ours if f.name == name).samples}
        assert mine == {lb for _, lb, _ in by_name[name].samples}, name
    received = {f.name: f for f in ours}["etcd_http_received_total"]
    assert received.value('{method="DELETE"}') == 2 and received.value('{method="GET"}') == 3


def test_v2_counting_shrugs_off_hostile_requests() -> None:
    from etcdsec.honeypot.endpoints.v2_metrics import V2Traffic

    v2 = V2Traffic()
    noise = "&".join(f"x{i}=1" for i in range(5000))
    v2.observe("PUT", "/v2/keys/a?" + noise + "&prevExist=false", 201, noise)
    v2.observe("BREW", "/v2/keys/a", 405, None)  # refused before etcd counts
    v2.observe("GET", "/v2/keys/a", "not a status", None)
    for code in range(1000):  # statuses from a fixed set in practice; the family stays bounded anyway
        v2.observe("GET", "/v2/keys/x", 300 + code, None)
    assert v2.received["PUT"] == 1 and v2.store[("writes", "set")] == 1  # the flag lost in the noise
    assert len(v2.failed) <= 64 and "BREW" not in v2.received


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD", "OPTIONS"])
def test_debug_vars_methods_answer_as_etcd(pair, method) -> None:
    import http.client

    def ask(host: str, port: int) -> tuple[int, str | None, bytes]:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request(method, "/debug/vars")
            resp = conn.getresponse()
            return resp.status, resp.getheader("Allow"), resp.read()
        finally:
            conn.close()

    _, real, hp = pair
    assert ask(hp.ip, 2379) == ask(real.ip, real.config.client_port)

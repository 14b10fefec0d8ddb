"""Eras no real binary here can serve (2.3, 3.2, 3.3): probed through the honeypot's personas.

The personas are measured against real etcd by the honeypot's fidelity suite; this checks that the
prober picks the right API surface for each era (v2 only, /v3alpha, /v3beta)."""

from __future__ import annotations

import pytest

from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.probe.api import probe_sync
from etcdsec.testbed.etcd import EtcdConfig
from tests.support.harness import BackgroundSensor


@pytest.mark.parametrize(("persona", "v2", "prefix"), [
    ("2.3.8", True, None), ("3.2.22", True, "/v3alpha"), ("3.3.27", True, "/v3beta"), ("3.4.23", False, "/v3"),
])
def test_api_surface_by_era(persona: str, v2: bool, prefix: str | None) -> None:
    with BackgroundSensor(SensorConfig(persona=persona)) as hp:
        r = probe_sync(hp.addr)
    assert r.is_etcd is True and r.version == persona
    assert r.apis.v2 is v2 and r.apis.v3_prefix == prefix
    assert r.exposed and r.data.kubernetes is True
    assert ("ETCD-EOL-VERSION" in {f.id for f in r.findings}) == (persona < "3.4")


def test_pprof_is_a_leak(etcd_factory) -> None:
    s = etcd_factory("pprof-3.5", EtcdConfig(version="3.5", enable_pprof=True))
    r = probe_sync(s.client_addr)
    assert r.leaks.pprof is True and "ETCD-PPROF" in {f.id for f in r.findings}


def test_honeypot_peer_port_is_judged_like_real_etcd(etcd_factory) -> None:
    real = probe_sync(f"{etcd_factory('open-v3-3.5', EtcdConfig(version='3.5')).ip}:2380")
    with BackgroundSensor(SensorConfig(persona="3.5.1"), peer=True) as hp:
        fake = probe_sync(f"{hp.ip}:2380")
    for r in (real, fake):
        assert r.role == "peer" and r.apis.grpc is True and r.access.read_v3 is True and r.exposed
    data_driven = {"ETCD-K8S-SECRETS"}  # the honeypot serves Kubernetes bait, this real etcd is empty
    assert {f.id for f in real.findings} - data_driven == {f.id for f in fake.findings} - data_driven

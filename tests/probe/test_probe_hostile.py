"""Things on 2379 that are not etcd, or that fight back: the prober must stay exact and bounded."""

from __future__ import annotations

import asyncio
import socket

from etcdsec.probe.api import probe_many, probe_sync
from etcdsec.probe.options import ProbeOptions
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

OPTS = ProbeOptions(deadline=6, connect_timeout=2, request_timeout=3)


def start(fakes, kind: str) -> str:
    ip = free_loopback_ip((2379,))
    fakes.start(kind, ip)
    return f"{ip}:2379"


def test_http_service_answering_200_json_everywhere_is_not_etcd(fakes) -> None:
    r = probe_sync(start(fakes, "json"), OPTS)
    assert r.reachable and r.is_etcd is False and r.error is None
    assert r.version is None and r.findings == [] and r.severity == "none" and not r.exposed
    assert r.duration_ms < 2000  # judged from its answers, not by waiting out a timeout


def test_tarpit_ends_within_deadline_with_a_reason(fakes) -> None:
    r = probe_sync(start(fakes, "tarpit"), OPTS)
    assert r.reachable and r.is_etcd is False
    assert r.error and "no complete response" in r.error
    assert r.duration_ms < OPTS.deadline * 1000 + 2000  # bounded by the deadline (slack for a loaded CI host)


def test_silent_server(fakes) -> None:
    r = probe_sync(start(fakes, "silent"), OPTS)
    assert r.is_etcd is False and r.error and r.duration_ms < OPTS.deadline * 1000 + 500


def test_endless_body_is_cut(fakes) -> None:
    r = probe_sync(start(fakes, "endless"), OPTS)
    assert r.is_etcd is False and r.error and "cut" in r.error


def test_garbage(fakes) -> None:
    r = probe_sync(start(fakes, "garbage"), OPTS)
    assert r.is_etcd is False and r.error and "not HTTP" in r.error


def test_closed_port() -> None:
    ip = free_loopback_ip((2379,))
    r = probe_sync(f"{ip}:2379", OPTS)
    assert r.reachable is False and r.error == "connection refused" and r.is_etcd is None


def test_deadline_holds_even_when_each_read_is_quick() -> None:
    # A server that answers one byte a second never trips a per-read timeout, only the deadline.
    async def main() -> None:
        async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(4096)
            for _ in range(30):
                writer.write(b"H")
                await writer.drain()
                await asyncio.sleep(0.5)
            writer.close()

        ip = free_loopback_ip((2379,))
        server = await asyncio.start_server(drip, ip, 2379)
        async with server:
            from etcdsec.probe.api import probe

            r = await probe(f"{ip}:2379", ProbeOptions(deadline=2, request_timeout=30))
            assert r.error == "deadline of 2s exceeded" and r.duration_ms < 2600

    asyncio.run(main())


def test_hostile_targets_do_not_slow_the_others(fakes, etcd_factory) -> None:
    real = etcd_factory("open-v3-3.5", EtcdConfig(version="3.5"))
    hostile = [start(fakes, k) for k in ("tarpit", "tarpit", "silent", "endless")]
    results = asyncio.run(probe_many([*hostile, real.client_addr], OPTS, concurrency=8))
    good = results[-1]
    assert good.is_etcd is True and good.error is None
    assert good.duration_ms < 2000  # it did not wait behind the tarpits
    assert all(r.is_etcd is False for r in results[:-1])


def test_ipv6_loopback() -> None:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        s.listen()
        port = s.getsockname()[1]
        s.close()
    r = probe_sync(f"[::1]:{port}", OPTS)
    assert r.ip == "::1" and r.reachable is False


def test_real_etcd_on_ipv6_loopback() -> None:
    from etcdsec.testbed.addresses import port_free

    ports = [p for p in range(23790, 23890) if port_free("::1", p)][:2]
    with EtcdServer(EtcdConfig(version="3.5", ip="::1", client_port=ports[0], peer_port=ports[1])):
        r = probe_sync(f"[::1]:{ports[0]}", OPTS)
        assert r.ip == "::1" and r.is_etcd is True and r.apis.v3_prefix == "/v3" and r.exposed
        assert r.members and r.members[0].client_urls == [f"http://[::1]:{ports[0]}"]


def test_forced_https_on_a_plain_server_is_reachable_not_tls(fakes) -> None:
    r = probe_sync("https://" + start(fakes, "json"), OPTS)
    assert r.reachable and r.is_etcd is False and r.error and "TLS handshake" in r.error


def test_deeply_nested_json_is_just_not_etcd(fakes) -> None:
    r = probe_sync(start(fakes, "nested"), OPTS)
    assert r.reachable and r.is_etcd is False and r.findings == []
    assert r.error is None or "probe failed" not in r.error

"""Whatever a server answers, the prober returns a result: it never raises and never calls junk etcd."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcdsec.probe.api import probe
from etcdsec.probe.options import ProbeOptions
from etcdsec.testbed.addresses import free_loopback_ip

OPTS = ProbeOptions(deadline=3, connect_timeout=1, request_timeout=1)
VERSION = b'{"etcdserver":"3.5.1","etcdcluster":"3.5.0"}'

bodies = st.one_of(
    st.binary(max_size=512),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                 max_leaves=20).map(lambda v: __import__("json").dumps(v).encode()),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, status=st.sampled_from([200, 400, 401, 404, 500]), honest_version=st.booleans())
def test_any_answer_gives_a_result(body: bytes, status: int, honest_version: bool) -> None:
    async def main() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    if length:
                        await reader.readexactly(length)
                    answer = VERSION if honest_version and head.startswith(b"GET /version ") else body
                    writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                                 % (status, len(answer)) + answer)
                    await writer.drain()
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                writer.close()

        ip = free_loopback_ip((2379,))
        server = await asyncio.start_server(serve, ip, 2379)
        async with server:
            r = await probe(f"{ip}:2379", OPTS)
        assert r.reachable and (r.error is None or "probe failed" not in r.error)
        if not honest_version:
            assert r.is_etcd is False and r.findings == []  # junk is never etcd
        # Exposure needs etcd's own structures (a v3 header with a numeric cluster id...), never junk.
        assert not r.exposed

    asyncio.run(main())

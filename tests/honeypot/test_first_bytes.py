"""First bytes that are not a request (SSH banners, Redis, TLS ClientHellos, half lines, silence):
real etcd 3.5.1 and 3.4.23 and the honeypot with the matching persona, side by side over raw
sockets. Same bytes answered, same end (FIN, RST, or still open), same time bucket (closed within
1 s, or held past 3 s); every observation of one run is made at once so the held ones wait together.
The sans-IO cmux decision is tested on its own below (reads, half-closes, Go version rules)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from etcdsec.honeypot.context import Limits
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.honeypot.serve.cmuxsniff import CmuxSniffer, Verdict, http_major, strict_http_version
from etcdsec.honeypot.v3.grpc.handshake import first_frame_ok
from etcdsec.testbed.etcd import EtcdConfig
from tests.support.first_bytes import H2_PREFACE, HELLOS, SETTINGS_EMPTY, SHAPES, Shape
from tests.support.harness import BackgroundSensor
from tests.support.rawwire import Outcome, observe

PAIRS = (("3.5", "3.5.1"), ("3.4", "3.4.23"), ("3.3", "3.3.25"))
# After cmux has matched HTTP/1, what follows is the HTTP server's: Go answers a request head cut short
# by the client's FIN with a 400; the honeypot's HTTP/1 path closes without one (see docs, "First bytes").
HTTP_PATH_SHAPES = {"GET line no LF, half-closed"}
COMPARED = [s for s in SHAPES if s.name not in HTTP_PATH_SHAPES]


@pytest.fixture(scope="module")
def sensors(tmp_path_factory) -> Iterator[dict[str, BackgroundSensor]]:
    started: dict[str, BackgroundSensor] = {}
    try:
        for _, persona in PAIRS:
            state = tmp_path_factory.mktemp(f"fb{persona}") / "state.json"
            started[persona] = BackgroundSensor(SensorConfig(persona=persona, state_file=state)).start()
        yield started
    finally:
        for hp in started.values():
            hp.stop()


@pytest.fixture(scope="module")
def observed(etcd_factory, sensors) -> dict[tuple[str, str, str], Outcome]:
    """(shape, etcd version, "etcd" | "honeypot") -> what happened."""
    targets = {}
    for version, persona in PAIRS:
        real = etcd_factory(f"open-v3-{version}", EtcdConfig(version=version))
        targets[(version, "etcd")] = (real.ip, real.config.client_port)
        targets[(version, "honeypot")] = (sensors[persona].ip, sensors[persona].port)
    with ThreadPoolExecutor(16) as pool:
        jobs = {(shape.name, version, kind): pool.submit(observe, ip, port, shape)
                for shape in COMPARED for (version, kind), (ip, port) in targets.items()}
        return {key: job.result() for key, job in jobs.items()}


@pytest.mark.parametrize("version", [v for v, _ in PAIRS])
@pytest.mark.parametrize("shape", COMPARED, ids=lambda s: s.name)
def test_honeypot_meets_first_bytes_as_etcd_does(observed, shape: Shape, version: str) -> None:
    real = observed[(shape.name, version, "etcd")]
    fake = observed[(shape.name, version, "honeypot")]
    assert (fake.answer, fake.end, fake.bucket) == (real.answer, real.end, real.bucket)


def test_the_measured_rules_hold_on_real_etcd(observed) -> None:
    """The table in docs/honeypot-fidelity.md, re-measured: if etcd changes, this says where."""
    def end(name: str) -> set[tuple[str, str]]:
        return {(observed[(name, v, "etcd")].end, observed[(name, v, "etcd")].bucket) for v, _ in PAIRS}
    for name in ("ssh banner", "redis RESP PING", "hello\\n", "TLS tls13_sni", "TLS sslv2_compat",
                 "h2 preface, wrong tail"):
        assert end(name) == {("fin", "immediate")}, name
    for name in ("non-HTTP line + more (40 B)", "long line > 4096, no LF", "TLS tls12, LF at byte 20"):
        assert end(name) == {("rst", "immediate")}, name
    for name in ("GET line, no blank line", "a few bytes, silence", "0 bytes, silence", "TLS tls10_minimal",
                 "TLS truncated (record header)", "h2 preface, partial"):
        assert end(name) == {("held", "held")}, name


def test_each_refused_connection_is_logged_with_its_bytes_and_close(observed, sensors) -> None:
    events = [e for hp in sensors.values() for e in hp.memory.of("malformed") if "close" in e]
    ssh = [e for e in events if e["protocol"] == "ssh"]
    assert len(ssh) == len(PAIRS) and all(e["raw_len"] == 21 and e["close"] == "fin" for e in ssh)
    tls = [e for e in events if e["protocol"] == "tls"]
    assert {e["close"] for e in tls} == {"fin", "rst"}
    assert all(e["reason"] == "first line is not an HTTP/1 request line" for e in ssh + tls)
    assert all(hp.memory.of("sensor.error") == [] for hp in sensors.values())


def test_a_quiet_half_line_is_held_only_until_the_header_timeout() -> None:
    """etcd holds these for ever; the honeypot until its header timeout, then FIN and a log line."""
    limits = Limits(header_timeout_s=0.5, rate_per_source=0)
    with BackgroundSensor(SensorConfig(persona="3.5.1", state_file=None, limits=limits)) as hp:
        for first in (b"abc", HELLOS["tls10_minimal"]):
            out = observe(hp.ip, hp.port, Shape("quiet", (first,)))
            assert (out.answer, out.end, out.bucket) == (b"", "fin", "immediate")
        # a line dripped in pieces is judged when its LF arrives, and then served
        dripped = observe(hp.ip, hp.port, Shape("drip", (b"GET /vers", b"ion HTTP/1.1\r\nHost: x\r\n",
                                                        b"Connection: close\r\n\r\n"), gap_s=0.2))
        assert dripped.answer.startswith(b"HTTP/1.1 200 OK") and dripped.end == "fin"
        timed_out = [e for e in hp.memory.of("malformed") if e["reason"] == "first line not finished in time"]
        assert [(e["protocol"], e["raw_len"], e["close"]) for e in timed_out] == [("raw", 3, "fin"), ("tls", 50, "fin")]


def test_behind_a_trusted_balancer_the_bytes_after_the_proxy_header_are_judged() -> None:
    config = SensorConfig(persona="3.4.23", state_file=None, proxy_protocol=True, trusted_proxies=["127.0.0.0/8"])
    with BackgroundSensor(config) as hp:
        out = observe(hp.ip, hp.port, Shape("proxied ssh", (b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 2379\r\n"
                                                             b"SSH-2.0-OpenSSH_8.9\r\n",)))
        assert (out.answer, out.end, out.bucket) == (b"", "fin", "immediate")
        [event] = [e for e in hp.memory.of("malformed") if e["protocol"] == "ssh"]
        assert event["src_ip"] == "198.51.100.7" and event["raw_len"] == 21


# --- the sans-IO decision -----------------------------------------------------------------------

def feed_pieces(pieces: list[bytes], eof: bool = False, strict: bool = False) -> tuple[Verdict, int]:
    sniffer, seen = CmuxSniffer(strict), b""
    judgement = None
    for i, piece in enumerate(pieces):
        seen += piece
        judgement = sniffer.feed(seen, eof and i == len(pieces) - 1)
        if judgement.verdict is not Verdict.READ_MORE:
            break
    assert judgement is not None
    return judgement.verdict, judgement.read


def test_the_preface_is_read_until_whole_or_different() -> None:
    assert feed_pieces([H2_PREFACE[:5], H2_PREFACE[5:]]) == (Verdict.HTTP2, 24)
    assert feed_pieces([H2_PREFACE[:5]]) == (Verdict.READ_MORE, 5)
    assert feed_pieces([H2_PREFACE[:5]], eof=True) == (Verdict.CLOSE, 5)  # "PRI *" then EOF: no line
    assert feed_pieces([b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"]) == (Verdict.CLOSE, 24)


def test_the_first_line_is_judged_from_what_was_read() -> None:
    # an LF inside the 24 bytes the preface check took: decided on them, the rest left unread (RST)
    assert feed_pieces([b"hello\n" + b"x" * 100]) == (Verdict.CLOSE, 24)
    # no LF in them: one more read takes what has arrived, up to 4096 bytes
    assert feed_pieces([b"x" * 30 + b"\n" + b"y" * 100]) == (Verdict.CLOSE, 131)
    assert feed_pieces([b"A" * 5000]) == (Verdict.CLOSE, 4096)
    assert feed_pieces([b"A" * 4095 + b"\n"]) == (Verdict.CLOSE, 4096)
    assert feed_pieces([b"GET / HT", b"TP/1.1\r\n"]) == (Verdict.HTTP1, 16)
    assert feed_pieces([b"GET / HTTP/1.1"]) == (Verdict.READ_MORE, 14)
    assert feed_pieces([b"GET / HTTP/1.1"], eof=True) == (Verdict.HTTP1, 14)  # ReadLine keeps a last line
    assert feed_pieces([b""], eof=True) == (Verdict.CLOSE, 0)


@pytest.mark.parametrize(("line", "lenient", "strict"), [
    (b"GET / HTTP/1.1", True, True),
    (b"GET / HTTP/1.9", True, True),
    (b"GET  HTTP/1.1", True, True),  # empty target: cmux lets it through (Go answers 400)
    (b" / HTTP/1.1", True, True),
    (b"GET / HTTP/2.0", False, False),
    (b"GET / HTTP/01.1", True, False),
    (b"GET / HTTP/+1.1", True, False),
    (b"GET / HTTP/1.01", True, False),
    (b"GET / HTTP/1.1 ", False, False),
    (b"GET / http/1.1", False, False),
    (b"GET / HTTP/1.1\r\r", False, False),  # ReadLine drops one CR before the LF, no more
    (b"GET /", False, False),
    (b"G E T HTTP/1.1", False, False),
])
def test_go_version_rules_of_the_request_line(line: bytes, lenient: bool, strict: bool) -> None:
    for is_strict, expected in ((False, lenient), (True, strict)):
        verdict, _ = feed_pieces([line + b"\n"], strict=is_strict)
        assert (verdict is Verdict.HTTP1) == expected, (line, is_strict)


def test_which_go_is_strict() -> None:
    assert not strict_http_version("go1.16.3") and strict_http_version("go1.19.8")
    assert strict_http_version("go1.18") and not strict_http_version("unknown")
    assert http_major(b"HTTP/1000001.0", strict=False) is None and http_major(b"HTTP/1_0.0", strict=False) is None


@pytest.mark.parametrize(("after_preface", "expected"), [
    (b"", None),
    (SETTINGS_EMPTY, True),
    (b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64", True),  # MAX_CONCURRENT_STREAMS 100
    (b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03", None),  # the payload still coming
    (b"\x00\x00\x00\x04\x01\x00\x00\x00\x00", True),  # an ACK first: a SETTINGS frame all the same
    (b"\x00\x00\x06\x04\x01\x00\x00\x00\x00" + b"\x00" * 6, False),  # an ACK with a payload
    (b"\x00\x00\x00\x04\x00\x00\x00\x00\x01", False),  # SETTINGS on stream 1
    (b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\x80\x00\x00\x00", False),  # INITIAL_WINDOW_SIZE 2^31
    (b"\x00\x40\x01\x04\x00\x00\x00\x00\x00", False),  # 16385 bytes: refused before the payload
    (b"\x00\x00\x08\x06\x00\x00\x00\x00\x00", None),  # a PING: judged once whole...
    (b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678", False),  # ...and refused
])
def test_grpc_go_wants_a_whole_settings_frame_first(after_preface: bytes, expected: bool | None) -> None:
    assert first_frame_ok(H2_PREFACE + after_preface) is expected

"""Differential fidelity for the gRPC side: one corpus of gRPC calls to real etcd and to the honeypot.

The corpus is `corpus/v3.yaml` beside this module. Cases with a `grpc` key are run here (over a
minimal blocking h2 client, so framing, header names and trailers are seen as sent); the HTTP
cases in the same file (gateway paths) are run by the HTTP runner, `tests/support/fidelity.py`.
For each case we compare `:status`, response header and trailer names, grpc-status, grpc-message
and the response message decoded as etcd's type with ids, revisions and sizes normalised.
Loopback only.

    .venv/bin/python -m tests.support.fidelity_grpc [--versions 3.4,3.5] [--show-diffs] [--json FILE]
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import yaml
from google.protobuf import json_format

from etcdsec.honeypot.context import Identity
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.honeypot.v3 import service
from etcdsec.honeypot.v3.grpc.health import HEALTH_CHECK, HEALTH_WATCH
from etcdsec.honeypot.v3.grpc.server import frame_message
from etcdsec.testbed.addresses import is_loopback
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.support.harness import BackgroundSensor

PERSONA_FOR = {"3.3": "3.3.25", "3.4": "3.4.23", "3.5": "3.5.1"}  # 3.3.25: Debian 11 (scripts/etcd33.sh)
# The gateway prefix a release serves when it is not /v3 (3.3: /v3beta, /v3alpha): the corpus's
# /v3/... cases are sent there, so they measure the 3.3 gateway instead of two 404s.
GATEWAY_PREFIX = {"3.3": "/v3beta"}


def on_gateway_of(version: str, request: bytes) -> bytes:
    """A request line's `/v3/...` target moved to the release's own gateway prefix."""
    prefix = GATEWAY_PREFIX.get(version)
    line, sep, rest = request.partition(b"\r\n")
    method, _, target = line.partition(b" ")
    if prefix is None or not target.startswith(b"/v3/"):
        return request
    return method + b" " + prefix.encode() + target[3:] + sep + rest


MEMBER = "etcd-test"
CORPUS = Path(__file__).with_name("corpus")  # request corpora, one file per fresh pair of servers
# Revisions are compared as they are: the honeypot is pinned to start where a fresh etcd starts.
VOLATILE = {"cluster_id", "member_id", "raft_term", "ID", "leader", "raftIndex", "raftTerm", "raftAppliedIndex",
            "dbSize", "dbSizeInUse", "peerURLs", "clientURLs", "TTL", "grantedTTL", "hash", "blob",
            "remaining_bytes"}
IGNORED_HEADERS = {"date"}


@dataclass
class GrpcCase:
    id: str
    grpc: str  # method path
    request: dict[str, Any] = field(default_factory=dict)  # gateway-style JSON of the request
    raw: str | None = None  # hex payload sent instead of the encoded request
    content_type: str = "application/grpc"
    frame: bool = True  # wrap the payload in the gRPC length prefix
    versions: list[str] = field(default_factory=list)
    messages: int = 0  # streaming calls: stop after this many response messages (0: until the end)
    headers: dict[str, str] = field(default_factory=dict)  # extra request headers
    held_on: list[str] = field(default_factory=list)  # versions that never answer it: both sides get HELD_WAIT

    def payload(self) -> bytes:
        if self.raw is not None:
            data = bytes.fromhex(self.raw)
        else:
            m = service.METHODS.get(self.grpc)
            data = json_format.ParseDict(self.request, m.request()).SerializeToString() if m else b""
        return frame_message(data) if self.frame else data


@dataclass
class GrpcReply:
    headers: list[tuple[str, str]]
    trailers: list[tuple[str, str]]
    messages: list[bytes]
    reset: bool = False

    def header(self, name: str) -> str | None:
        for k, v in self.trailers + self.headers:
            if k == name:
                return v
        return None


def load_cases(path: Path | None = None) -> list[GrpcCase]:
    path = path or CORPUS / "v3.yaml"
    items = yaml.safe_load(path.read_text()) or []
    return [GrpcCase(**{k: v for k, v in item.items() if k != "group"}) for item in items if "grpc" in item]


HELD_WAIT = 3.0  # how long a call that a version never answers is watched for an answer, on both sides
# etcd commits member changes through raft (a WAL fsync): on a loaded host that outlasts 5 s
REAL_ETCD_TIMEOUT = 15.0


def call(ip: str, port: int, case: GrpcCase, timeout: float = 5.0) -> GrpcReply:
    """One gRPC call on a fresh h2c connection."""
    if not is_loopback(ip):
        raise ValueError("fidelity runs against loopback only")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", f"{ip}:{port}"),
                            (":path", case.grpc), ("content-type", case.content_type), ("te", "trailers"),
                            ("user-agent", "grpc-go/1.41.0"), *case.headers.items()])
    conn.send_data(sid, case.payload(), end_stream=not case.messages)
    reply = GrpcReply([], [], [])
    data = b""
    with socket.create_connection((ip, port), timeout=timeout) as sock:
        sock.sendall(conn.data_to_send())
        deadline = time.monotonic() + timeout
        done = False
        while not done and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    reply.headers = [(str(k), str(v)) for k, v in ev.headers]
                elif isinstance(ev, h2.events.TrailersReceived) and ev.stream_id == sid:
                    reply.trailers = [(str(k), str(v)) for k, v in ev.headers]
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    data += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                    done = done or (case.messages > 0 and _count_messages(data) >= case.messages)
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    reply.reset = done = True
                elif isinstance(ev, h2.events.StreamEnded | h2.events.ConnectionTerminated):
                    done = True
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    while len(data) >= 5:
        n = int.from_bytes(data[1:5], "big")
        message = data[5:5 + n]
        reply.messages.append(gzip.decompress(message) if data[0] == 1 else message)
        data = data[5 + n:]
    return reply


def call_real(ip: str, case: GrpcCase) -> GrpcReply:
    """Real etcd's answer; asked once more when it gave none (no headers, no reset): on a loaded host
    etcd 3.5 has let a member change go unanswered, which is the test bed's trouble, not a difference."""
    reply = call(ip, 2379, case, REAL_ETCD_TIMEOUT)
    if not reply.headers and not reply.reset:
        reply = call(ip, 2379, case, REAL_ETCD_TIMEOUT)
    return reply


def connection_preface(ip: str, port: int = 2379, timeout: float = 2.0) -> list[str]:
    """The frames a server sends first on a new h2c connection (its SETTINGS, then its ACK of ours)."""
    if not is_loopback(ip):
        raise ValueError("fidelity runs against loopback only")
    from hyperframe.frame import Frame

    with socket.create_connection((ip, port), timeout=timeout) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
        data = b""
        deadline = time.monotonic() + timeout
        while data.count(b"\x04") < 2 and time.monotonic() < deadline and len(data) < 4096:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
            if len(data) >= 18 and _frames_complete(data) >= 2:
                break
    frames = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        data = data[9 + length:]
        frames.append(repr(frame))
    return frames


def _frames_complete(data: bytes) -> int:
    count = 0
    while len(data) >= 9 and len(data) >= 9 + int.from_bytes(data[:3], "big"):
        data = data[9 + int.from_bytes(data[:3], "big"):]
        count += 1
    return count


def _count_messages(data: bytes) -> int:
    count = 0
    while len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[1:5], "big"):
        data = data[5 + int.from_bytes(data[1:5], "big"):]
        count += 1
    return count


def _normalise(obj: Any) -> Any:
    if isinstance(obj, dict):
        out = {k: "<v>" if k in VOLATILE else _normalise(v) for k, v in obj.items()}
        if isinstance(out.get("members"), list):  # listed by random member ID: compare as a set
            out["members"] = sorted(out["members"], key=lambda m: json.dumps(m, sort_keys=True))
        return out
    if isinstance(obj, list):
        return [_normalise(v) for v in obj]
    return obj


def decoded(case: GrpcCase, reply: GrpcReply) -> list[Any]:
    if case.grpc in (HEALTH_CHECK, HEALTH_WATCH):
        return [m.hex() for m in reply.messages]
    m = service.METHODS.get(case.grpc)
    if m is None:
        return [m_.hex() for m_ in reply.messages]
    out = []
    for raw in reply.messages:
        msg = m.response()
        try:
            msg.ParseFromString(raw)
        except Exception:  # undecodable bytes are compared as they are
            out.append(raw.hex())
            continue
        out.append(_normalise(json_format.MessageToDict(msg, preserving_proto_field_name=True)))
    return out


@dataclass
class GrpcOutcome:
    id: str
    version: str
    status: bool
    header_names: bool
    grpc_status: bool
    body: bool
    diffs: list[str] = field(default_factory=list)

    @property
    def match(self) -> bool:
        return self.status and self.header_names and self.grpc_status and self.body


def compare(case: GrpcCase, version: str, real: GrpcReply, hp: GrpcReply) -> GrpcOutcome:
    diffs: list[str] = []
    status = real.header(":status") == hp.header(":status") and real.reset == hp.reset
    if not status:
        diffs.append(f":status real {real.header(':status')} reset={real.reset} "
                     f"honeypot {hp.header(':status')} reset={hp.reset}")
    names = ([k for k, _ in real.headers if k not in IGNORED_HEADERS], [k for k, _ in real.trailers]) == \
        ([k for k, _ in hp.headers if k not in IGNORED_HEADERS], [k for k, _ in hp.trailers])
    if not names:
        diffs.append(f"header names real {real.headers}+{real.trailers} honeypot {hp.headers}+{hp.trailers}")
    grpc_status = (real.header("grpc-status"), real.header("grpc-message")) == \
        (hp.header("grpc-status"), hp.header("grpc-message"))
    if not grpc_status:
        diffs.append(f"grpc status real {real.header('grpc-status')} {real.header('grpc-message')!r} "
                     f"honeypot {hp.header('grpc-status')} {hp.header('grpc-message')!r}")
    rb, hb = decoded(case, real), decoded(case, hp)
    body = rb == hb
    if not body:
        diffs.append(f"message real {rb} honeypot {hb}")
    return GrpcOutcome(case.id, version, status, names, grpc_status, body, diffs)


def run(versions: list[str], cases: list[GrpcCase] | None = None) -> list[GrpcOutcome]:
    cases = cases if cases is not None else load_cases()
    outcomes: list[GrpcOutcome] = []
    for version in versions:
        selected = [c for c in cases if not c.versions or version in c.versions]
        with tempfile.TemporaryDirectory(prefix="etcdsec-v3-fidelity-") as tmp:
            seed, state = Path(tmp) / "seed.yaml", Path(tmp) / "state.json"
            seed.write_text("keys: {}\n")  # empty, like the fresh etcd it is compared with
            ident = Identity.create(MEMBER, [], [])
            ident.revision_base = 1  # a fresh etcd starts at revision 1
            state.write_text(json.dumps(ident.to_dict()))
            config = SensorConfig(persona=PERSONA_FOR[version], member_name=MEMBER, seed_file=seed, state_file=state)
            with EtcdServer(EtcdConfig(version=version, name=MEMBER)) as real, \
                    BackgroundSensor(config, keep_events=False) as hp:
                want, got = connection_preface(real.ip), connection_preface(hp.ip)
                outcomes.append(GrpcOutcome("h2-connection-preface", PERSONA_FOR[version], want == got, True, True,
                                            True, [] if want == got else [f"real {want} honeypot {got}"]))
                for case in selected:
                    if version in case.held_on:  # no answer is the answer: no retry, a short wait
                        real_reply, hp_reply = call(real.ip, 2379, case, HELD_WAIT), call(hp.ip, 2379, case, HELD_WAIT)
                    else:
                        real_reply, hp_reply = call_real(real.ip, case), call(hp.ip, 2379, case)
                    outcomes.append(compare(case, PERSONA_FOR[version], real_reply, hp_reply))
    return outcomes


def summary(outcomes: list[GrpcOutcome]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for version in sorted({o.version for o in outcomes}):
        rows = [o for o in outcomes if o.version == version]
        out[version] = {a: round(100.0 * sum(bool(getattr(o, a)) for o in rows) / len(rows), 1)
                        for a in ("match", "status", "header_names", "grpc_status", "body")}
        out[version]["cases"] = len(rows)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fidelity_grpc")
    parser.add_argument("--versions", default="3.4,3.5")
    parser.add_argument("--json", help="write the full report here")
    parser.add_argument("--show-diffs", action="store_true")
    args = parser.parse_args(argv)
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    bad = [v for v in versions if v not in PERSONA_FOR]
    if bad:
        print(f"fidelity: error: unsupported version(s) {bad} (have {sorted(PERSONA_FOR)})", file=sys.stderr)
        return 2
    outcomes = run(versions)
    for version, row in summary(outcomes).items():
        print(f"persona {version}: gRPC fidelity {row['match']:.1f}% of {int(row['cases'])} cases "
              f"(:status {row['status']:.1f}%, header names {row['header_names']:.1f}%, "
              f"grpc-status/message {row['grpc_status']:.1f}%, message {row['body']:.1f}%)")
    if args.show_diffs:
        for o in outcomes:
            if not o.match:
                print(f"- [{o.version}] {o.id}: " + " | ".join(o.diffs))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary(outcomes),
                                               "differences": [asdict(o) for o in outcomes if not o.match]},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

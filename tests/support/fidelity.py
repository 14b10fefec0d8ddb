"""Differential fidelity: one corpus of requests to real etcd and to the honeypot, compared.

For each etcd version the runner starts a real etcd (test bed) and a honeypot with the matching
persona, both empty and with the same member name, sends every corpus case to both in the same
order, and compares status lines, header names (and the values that are not per-deployment),
and bodies with ids, indexes, addresses and timestamps normalised. Loopback only.

    .venv/bin/python -m tests.support.fidelity [--versions 3.4,3.5] [--json report.json] [--show-diffs]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from etcdsec.honeypot.context import Identity
from etcdsec.honeypot.core.bait import Bait
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from etcdsec.testbed.pki import TestCA
from tests.support import fidelity_grpc
from tests.support.fidelity_grpc import CORPUS, MEMBER, PERSONA_FOR, on_gateway_of
from tests.support.harness import BackgroundSensor

COMPARED_HEADER_VALUES = {"content-type", "allow", "access-control-allow-headers", "access-control-allow-methods",
                          "access-control-allow-origin", "x-content-type-options", "connection",
                          "transfer-encoding", "location", "grpc-metadata-content-type", "www-authenticate"}
VOLATILE_KEYS = {"cluster_id", "member_id", "revision", "raft_term", "index", "modifiedIndex", "createdIndex",
                 "id", "ID", "startTime", "uptime", "expiration", "leader", "Now", "create_revision",
                 "mod_revision", "raft_index", "raftIndex", "raftTerm", "raftAppliedIndex", "dbSize",
                 "dbSizeInUse", "authRevision", "compact_revision", "TTL", "grantedTTL", "ttl", "version_num",
                 # v2 store counters: they count the server's whole history, not the corpus
                 "getsSuccess", "getsFail", "setsSuccess", "setsFail", "deleteSuccess", "deleteFail",
                 "updateSuccess", "updateFail", "createSuccess", "createFail", "compareAndSwapSuccess",
                 "compareAndSwapFail", "compareAndDeleteSuccess", "compareAndDeleteFail", "expireCount"}
_PATTERNS = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)?(h|m|s|ms|µs|ns)(\d+(\.\d+)?(m|s))*\b"), "<dur>"),
    (re.compile(r"(?<![0-9a-f])[0-9a-f]{12,16}(?![0-9a-f])"), "<hex>"),
    (re.compile(r"\b\d{6,}\b"), "<n>"),
]


# --- corpus ---------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    raw: str | None = None
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    form: str | None = None
    json: Any = None
    body: str | None = None
    v2: bool = False  # run against the v2-enabled pair
    compare_body: bool = True
    versions: list[str] = field(default_factory=list)  # empty: all
    group: str = ""
    peer: bool = False  # send to the peer port (2380) instead of the client port

    def wire(self, host: str) -> bytes:
        if self.raw is not None:
            return self.raw.replace("{host}", host).encode("latin-1")
        body = b""
        headers = {"Host": host, **self.headers}
        if self.form is not None:
            body = self.form.encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif self.json is not None:
            body = json.dumps(self.json).encode()
        elif self.body is not None:
            body = self.body.encode("latin-1")
        if body or self.method in ("POST", "PUT"):
            headers["Content-Length"] = str(len(body))
        headers.setdefault("Connection", "close")
        head = f"{self.method} {self.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return (head + "\r\n").encode("latin-1") + body


REAL_ETCD_TIMEOUT = fidelity_grpc.REAL_ETCD_TIMEOUT


FIELD_CORPUS = CORPUS / "field.yaml"  # the tools' own requests: tests/support/fidelity_field.py runs it


def corpus_files() -> list[Path]:
    # http.yaml, then v3.yaml (the v3 side's gateway cases)
    return [p for p in sorted(CORPUS.glob("*.yaml")) if p != FIELD_CORPUS]


def load_corpus(paths: list[Path] | None = None) -> list[Case]:
    """HTTP cases of every corpus file; a file's cases run in order on their own fresh pair of servers."""
    cases: list[Case] = []
    for path in paths or corpus_files():
        group = path.stem
        for item in yaml.safe_load(path.read_text()) or []:
            if "grpc" in item:
                continue  # gRPC cases: fidelity_grpc runs them
            cases.append(Case(group=item.pop("group", group), **item))
    keys = [(c.group, c.id) for c in cases]
    dupes = {k for k in keys if keys.count(k) > 1}
    if dupes:
        raise ValueError(f"duplicate corpus ids: {sorted(dupes)}")
    return cases


# --- wire -------------------------------------------------------------------------------------------
@dataclass
class Reply:
    status_line: str
    headers: list[tuple[str, str]]
    body: bytes
    closed_without_reply: bool = False


def _tls_client() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # both servers use throwaway test-bed certificates
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def exchange(ip: str, port: int, data: bytes, head: bool, timeout: float = 5.0, tls: bool = False) -> Reply:
    with socket.create_connection((ip, port), timeout=timeout) as raw:
        sock = _tls_client().wrap_socket(raw) if tls else raw
        sock.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            buf += chunk
        if b"\r\n\r\n" not in buf:
            return Reply("", [], buf, closed_without_reply=True)
        head_bytes, rest = buf.split(b"\r\n\r\n", 1)
        status_line, headers = parse_head(head_bytes)
        names = {k.lower(): v for k, v in headers}
        status = int(status_line.split(" ")[1]) if len(status_line.split(" ")) > 1 else 0
        if head or status in (204, 304) or status < 200:
            return Reply(status_line, headers, b"")
        sock.settimeout(1.0)
        while time.monotonic() < deadline:
            if "content-length" in names and len(rest) >= int(names["content-length"]):
                break
            if names.get("transfer-encoding") == "chunked" and rest.endswith(b"0\r\n\r\n"):
                break
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            rest += chunk
        if names.get("transfer-encoding") == "chunked":
            rest = dechunk(rest)
        return Reply(status_line, headers, rest)


def parse_head(head_bytes: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The status line and the headers in order, from an answer's head (without its blank line)."""
    lines = head_bytes.decode("latin-1").split("\r\n")
    return lines[0], [(k, v.lstrip()) for k, _, v in (ln.partition(":") for ln in lines[1:])]


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


# --- normalising and comparing ------------------------------------------------------------------
def normalise_text(text: str, ip: str) -> str:
    text = text.replace(ip, "{ip}")
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def normalise_json(obj: Any, ip: str) -> Any:
    if isinstance(obj, dict):
        out = {k: "<v>" if k in VOLATILE_KEYS else normalise_json(v, ip) for k, v in obj.items()}
        # v2 lists children in Go map order (random) and members by id (random per deployment)
        for name in ("nodes", "members"):
            if isinstance(out.get(name), list):
                out[name] = sorted(out[name], key=lambda n: json.dumps(n, sort_keys=True))
        return out
    if isinstance(obj, list):
        return [normalise_json(v, ip) for v in obj]
    if isinstance(obj, str):
        return normalise_text(obj, ip)
    return obj


def normalised_body(body: bytes, ip: str) -> Any:
    try:
        return ("json", normalise_json(json.loads(body), ip), body.endswith(b"\n"))
    except (ValueError, UnicodeDecodeError):
        pass
    try:  # a stream of JSON lines (gateway watch / keepalive)
        lines = body.splitlines()
        if len(lines) > 1:
            return ("json-lines", [normalise_json(json.loads(line), ip) for line in lines])
    except (ValueError, UnicodeDecodeError):
        pass
    return ("text", normalise_text(body.decode("latin-1"), ip))


@dataclass
class Outcome:
    id: str
    group: str
    version: str
    status: bool
    header_names: bool
    header_values: bool
    body: bool
    diffs: list[str] = field(default_factory=list)

    @property
    def match(self) -> bool:
        return self.status and self.header_names and self.header_values and self.body


def compare(case: Case, version: str, real: Reply, real_ip: str, hp: Reply, hp_ip: str) -> Outcome:
    diffs: list[str] = []
    status = real.status_line == hp.status_line and real.closed_without_reply == hp.closed_without_reply
    if not status:
        diffs.append(f"status: real {real.status_line or '<closed>'!r} honeypot {hp.status_line or '<closed>'!r}")
    rn, hn = [k for k, _ in real.headers], [k for k, _ in hp.headers]
    names = rn == hn
    if not names:
        diffs.append(f"header names: real {rn} honeypot {hn}")
    rv = {k.lower(): normalise_text(v, real_ip) for k, v in real.headers if k.lower() in COMPARED_HEADER_VALUES}
    hv = {k.lower(): normalise_text(v, hp_ip) for k, v in hp.headers if k.lower() in COMPARED_HEADER_VALUES}
    values = rv == hv
    if not values:
        diffs.append(f"header values: real {rv} honeypot {hv}")
    body = True
    if case.compare_body:
        rb, hb = normalised_body(real.body, real_ip), normalised_body(hp.body, hp_ip)
        body = rb == hb
        if not body:
            diffs.append(f"body: real {real.body[:300]!r} honeypot {hp.body[:300]!r}")
    return Outcome(case.id, case.group, version, status, names, values, body, diffs)


# --- running -----------------------------------------------------------------------------------------
@dataclass
class Report:
    outcomes: list[Outcome]

    def percent(self, version: str | None = None, aspect: str = "match") -> float:
        rows = [o for o in self.outcomes if version is None or o.version == version]
        if not rows:
            return 0.0
        return 100.0 * sum(bool(getattr(o, aspect)) for o in rows) / len(rows)

    def to_dict(self) -> dict[str, Any]:
        versions = sorted({o.version for o in self.outcomes})
        return {
            "summary": {v: {a: round(self.percent(v, a), 1) for a in
                            ("match", "status", "header_names", "header_values", "body")} |
                        {"cases": sum(o.version == v for o in self.outcomes)} for v in versions},
            "differences": [asdict(o) for o in self.outcomes if not o.match],
        }


@contextlib.contextmanager
def server_pair(version: str, v2: bool, tls: bool = False) -> Iterator[tuple[EtcdServer, BackgroundSensor]]:
    """A fresh real etcd and a fresh honeypot with the matching persona: both empty, the same member
    name, v2 on or off on both; with `tls` both listen with a test-bed server certificate."""
    with tempfile.TemporaryDirectory(prefix="etcdsec-fidelity-") as tmp:
        state = Path(tmp) / "state.json"
        ident = Identity.create(MEMBER, [], [])
        ident.revision_base = 1  # a fresh etcd starts at revision 1
        state.write_text(json.dumps(ident.to_dict()))
        config = SensorConfig(persona=PERSONA_FOR[version], member_name=MEMBER, bait=Bait(),
                              enable_v2=v2, state_file=state)
        hp_ip = free_loopback_ip((2379, 2380))
        if tls:
            cert = TestCA(Path(tmp) / "pki").issue("server", ips=[hp_ip], dns=["localhost"])
            config.tls_cert, config.tls_key = cert.cert, cert.key
        with EtcdServer(EtcdConfig(version=version, enable_v2=v2, name=MEMBER, tls=tls)) as real, \
                BackgroundSensor(config, ip=hp_ip, peer=True, keep_events=False) as hp:
            yield real, hp


def run(versions: list[str], cases: list[Case] | None = None, tls: bool = False) -> Report:
    """Run the corpus; with `tls` both servers listen with TLS and cases go over HTTP/1.1 in TLS."""
    cases = cases if cases is not None else load_corpus()
    outcomes: list[Outcome] = []
    groups = list(dict.fromkeys((c.group, c.v2) for c in cases))
    for version in versions:
        for group, v2 in groups:
            selected = [c for c in cases if (c.group, c.v2) == (group, v2)
                        and (not c.versions or version in c.versions)]
            if not selected:
                continue
            with server_pair(version, v2, tls) as (real, hp):
                for case in selected:
                    head = case.method == "HEAD" or (case.raw or "").startswith("HEAD ")
                    port = 2380 if case.peer else 2379
                    peer_tls = tls and not case.peer  # the test bed's peer port is plain text
                    r = exchange(real.ip, port, on_gateway_of(version, case.wire(f"{real.ip}:{port}")), head,
                                 tls=peer_tls, timeout=REAL_ETCD_TIMEOUT)
                    h = exchange(hp.ip, port, on_gateway_of(version, case.wire(f"{hp.ip}:{port}")), head,
                                 tls=peer_tls)
                    outcome = compare(case, PERSONA_FOR[version], r, real.ip, h, hp.ip)
                    if tls:
                        outcome.group += "+tls"
                    outcomes.append(outcome)
    return Report(outcomes)


def grpc_outcomes(versions: list[str]) -> list[Outcome]:
    """The v3 side's gRPC cases, as rows of the same report."""
    return [from_grpc(o) for o in fidelity_grpc.run(versions)]


def from_grpc(o: fidelity_grpc.GrpcOutcome, group: str = "grpc") -> Outcome:
    """A gRPC outcome as a row of the HTTP report (grpc-status and message where header values are)."""
    return Outcome(o.id, group, o.version, bool(o.status), bool(o.header_names), bool(o.grpc_status), bool(o.body),
                   list(o.diffs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fidelity")
    parser.add_argument("--versions", default="3.4,3.5")
    parser.add_argument("--json", help="write the full report here")
    parser.add_argument("--show-diffs", action="store_true")
    parser.add_argument("--no-grpc", action="store_true", help="HTTP/1.1 cases only")
    parser.add_argument("--tls", action="store_true", help="also run the HTTP corpus over TLS (ALPN http/1.1)")
    args = parser.parse_args(argv)
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    bad = [v for v in versions if v not in PERSONA_FOR]
    if bad:
        print(f"fidelity: error: unsupported version(s) {bad} (have {sorted(PERSONA_FOR)})", file=sys.stderr)
        return 2
    report = run(versions)
    if args.tls:
        report.outcomes += run(versions, [c for c in load_corpus() if c.group == "http"], tls=True).outcomes
    http_rows = list(report.outcomes)
    if not args.no_grpc:
        report.outcomes += grpc_outcomes(versions)
    data = report.to_dict()
    for version, row in data["summary"].items():
        http = Report([o for o in http_rows if o.version == version])
        grpc = Report([o for o in report.outcomes if o.version == version and o.group == "grpc"])
        print(f"persona {version}: fidelity {row['match']:.1f}% of {row['cases']} cases "
              f"(HTTP/1.1 {http.percent():.1f}% of {len(http.outcomes)}, gRPC {grpc.percent():.1f}% of "
              f"{len(grpc.outcomes)}; status {row['status']:.1f}%, header names {row['header_names']:.1f}%, "
              f"header values/grpc-status {row['header_values']:.1f}%, body {row['body']:.1f}%)")
    if args.show_diffs:
        for diff in data["differences"]:
            print(f"- [{diff['version']}] {diff['group']}/{diff['id']}: " + " | ".join(diff["diffs"]))
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

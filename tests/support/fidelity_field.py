"""Field replay: what the field's own etcd checks and attack tools send, replayed request for request
against real etcd and the honeypot side by side (`corpus/field.yaml`; every case names its tool and
source).

One fresh pair of servers per persona (v2 on, so that every surface a tool looks for is there), every
case in file order on that pair, as a tool's session would run. Three kinds of case:

- HTTP: the tool's bytes (`raw`, `{host}` filled in), optionally in `segments` sent 50 ms apart (a
  client that writes head and body separately), optionally pipelined (`responses`: answers read
  back from the one connection); compared as `fidelity.compare` compares.
- gRPC (`grpc:`): as `fidelity_grpc` runs them, with the client's own metadata in `headers`.
- etcdctl (`etcdctl:` argv): the real etcdctl 3.4.23 and 3.5.1 run against both servers; exit code,
  stdout and stderr compared after the runner's normalisation (`-w json` output parsed and masked as
  JSON bodies are).

    .venv/bin/python -m tests.support.fidelity_field [--versions 3.4,3.5] [--show-diffs]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

from etcdsec.testbed.addresses import is_loopback
from etcdsec.testbed.etcd import etcd_binaries
from tests.support import fidelity, fidelity_grpc
from tests.support.fidelity import FIELD_CORPUS, Case, Outcome, Reply
from tests.support.fidelity_grpc import PERSONA_FOR, GrpcCase

CTL_VERSIONS = ("3.4", "3.5")
MAX_STREAM = 4 << 20  # bytes read back from one connection at most
# etcdctl 3.5's client log names a Go pointer (`etcd-endpoints://0xc000...`): per process by nature
_GO_POINTER = re.compile(r"0x[0-9a-f]{6,16}")
# etcdctl 3.4's client log names its resolver target `endpoint://client-<uuid>/...`: per process
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# the database size etcdctl's snapshot log reports: per deployment, masked as `dbSize` is in JSON
_SNAPSHOT_SIZE = re.compile(r'"size":"[^"]*"')
# per moment: curl -i prints the Date header; etcdctl's zap log stamps lines with Unix seconds
_HTTP_DATE = re.compile(r"(?im)^date: .*$")
_UNIX_TS = re.compile(r'"ts":\d+(\.\d+)?')
# `-w table` pads columns to the longest cell: the servers' addresses differ in length on loopback
_TABLE_PAD = re.compile(r"( |-)\1+")


@dataclass
class CtlCase:
    id: str
    etcdctl: list[str]  # argv after the endpoint flag; for curl: after its fixed flags, {url} = http://address:2379
    program: str = "etcdctl"  # or "curl" (the real curl 7.88, e.g. HTTP/2 with prior knowledge)
    peer: bool = False  # point it at the peer port (2380)
    api: str = "3"
    json: bool = False  # stdout is JSON (one object a line)
    ctl: list[str] = field(default_factory=lambda: list(CTL_VERSIONS))
    versions: list[str] = field(default_factory=list)
    mask_columns: list[int] = field(default_factory=list)  # comma-separated columns of text output to mask
    sort_lines: bool = False  # output in Go map order (v2 `ls`): compared as a set, as v2 `nodes` are
    stdin: str | None = None  # fed to etcdctl (`put key` reads its value there: argv holds no NUL)
    timeout: float = 30.0  # a held command (watch) is killed after this; its output so far compared
    optin: bool = False  # run only when asked (--opt-in): snapshot save streams the whole database


@dataclass
class FieldCase:
    tool: str
    source: str
    case: Case | GrpcCase | CtlCase
    segments: list[str] = field(default_factory=list)
    responses: int = 1
    known: str = ""  # a difference measured and not closed yet: why (docs/honeypot-fidelity.md)
    known_on: dict[str, str] = field(default_factory=dict)  # the same, for some versions only

    @property
    def versions(self) -> list[str]:
        return self.case.versions


def known_differences(cases: list[FieldCase] | None = None, version: str | None = None) -> dict[str, str]:
    """Case id -> why it still differs (on `version`; outcome ids of etcdctl cases carry a suffix)."""
    out = {}
    for c in cases if cases is not None else load_field():
        why = c.known or (c.known_on.get(version, "") if version is not None else "")
        if why:
            out[c.case.id] = why
    return out


def load_field(path: Any = None) -> list[FieldCase]:
    items = yaml.safe_load((path or FIELD_CORPUS).read_text()) or []
    out: list[FieldCase] = []
    for item in items:
        tool, source, known = item.pop("tool"), item.pop("source"), item.pop("known", "")
        known_on = item.pop("known_on", {})
        if not tool or not source:
            raise ValueError(f"field case {item.get('id')}: tool and source are required")
        if "grpc" in item:
            out.append(FieldCase(tool, source, GrpcCase(**item), known=known, known_on=known_on))
        elif "etcdctl" in item:
            out.append(FieldCase(tool, source, CtlCase(**item), known=known, known_on=known_on))
        else:
            segments = item.pop("segments", [])
            responses = item.pop("responses", 1)
            if segments:
                item["raw"] = "".join(segments)
            out.append(FieldCase(tool, source, Case(group="field", v2=True, **item), segments, responses, known,
                                 known_on))
    ids = [f.case.id for f in out]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate field ids: {dupes}")
    return out


# --- HTTP: segments and pipelined answers ----------------------------------------------------------
def _parse_reply(buf: bytes, head: bool) -> tuple[Reply, bytes] | None:
    """One whole answer from the front of `buf` and the bytes after it; None while incomplete."""
    if b"\r\n\r\n" not in buf:
        return None
    head_bytes, rest = buf.split(b"\r\n\r\n", 1)
    status_line, headers = fidelity.parse_head(head_bytes)
    names = {k.lower(): v for k, v in headers}
    parts = status_line.split(" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if head or status in (204, 304) or status < 200:
        return Reply(status_line, headers, b""), rest
    if names.get("transfer-encoding") == "chunked":
        end = rest.find(b"0\r\n\r\n")
        if end < 0:
            return None
        return Reply(status_line, headers, fidelity.dechunk(rest[:end + 5])), rest[end + 5:]
    if "content-length" in names:
        n = int(names["content-length"])
        if len(rest) < n:
            return None
        return Reply(status_line, headers, rest[:n]), rest[n:]
    return None  # body until close: complete only at EOF


def exchange_stream(ip: str, port: int, segments: list[bytes], responses: int, head: bool,
                    timeout: float = 5.0) -> list[Reply]:
    """Send the segments 50 ms apart on one connection; read back up to `responses` answers."""
    if not is_loopback(ip):
        raise ValueError("field replay runs against loopback only")
    replies: list[Reply] = []
    buf = b""
    eof = False
    with socket.create_connection((ip, port), timeout=timeout) as sock:
        for i, seg in enumerate(segments):
            if i:
                time.sleep(0.05)
            try:
                sock.sendall(seg)
            except OSError:
                break
        deadline = time.monotonic() + timeout
        sock.settimeout(1.0)
        while len(replies) < responses and time.monotonic() < deadline and len(buf) < MAX_STREAM:
            parsed = _parse_reply(buf, head)
            if parsed:
                replies.append(parsed[0])
                buf = parsed[1]
                continue
            if eof:
                break
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                chunk = b""
            eof = not chunk
            buf += chunk
    if eof and buf and len(replies) < responses and b"\r\n\r\n" in buf:  # body until close
        head_bytes, rest = buf.split(b"\r\n\r\n", 1)
        replies.append(Reply(*fidelity.parse_head(head_bytes), rest))
    if not replies:
        replies.append(Reply("", [], buf, closed_without_reply=True))
    return replies


def _http(fc: FieldCase, version: str, real_ip: str, hp_ip: str) -> Outcome:
    case = fc.case
    assert isinstance(case, Case)
    head = (case.raw or case.method).startswith("HEAD")

    port = 2380 if case.peer else 2379

    def wire(ip: str) -> list[bytes]:
        host = f"{ip}:{port}"
        if fc.segments:
            return [s.replace("{host}", host).encode("latin-1") for s in fc.segments]
        return [case.wire(host)]

    real = exchange_stream(real_ip, port, wire(real_ip), fc.responses, head, fidelity.REAL_ETCD_TIMEOUT)
    hp = exchange_stream(hp_ip, port, wire(hp_ip), fc.responses, head)
    outcome = Outcome(case.id, "field", PERSONA_FOR[version], True, True, True, True)
    if len(real) != len(hp):
        outcome.status = False
        outcome.diffs.append(f"answers: real {len(real)} honeypot {len(hp)}")
    for i, (r, h) in enumerate(zip(real, hp, strict=False)):
        one = fidelity.compare(case, PERSONA_FOR[version], r, real_ip, h, hp_ip)
        for aspect in ("status", "header_names", "header_values", "body"):
            setattr(outcome, aspect, getattr(outcome, aspect) and getattr(one, aspect))
        outcome.diffs += [f"#{i + 1} {d}" if fc.responses > 1 else d for d in one.diffs]
    return outcome


# --- etcdctl ----------------------------------------------------------------------------------------
@dataclass
class CtlResult:
    rc: int
    stdout: str
    stderr: str


def run_etcdctl(ctl_version: str, ip: str, case: CtlCase) -> CtlResult:
    if not is_loopback(ip):
        raise ValueError("field replay runs against loopback only")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL")}
    env["ETCDCTL_API"] = case.api
    with tempfile.TemporaryDirectory(prefix="etcdsec-field-") as tmp:
        url = f"http://{ip}:{2380 if case.peer else 2379}"
        args = [a.replace("{tmp}", tmp).replace("{url}", url) for a in case.etcdctl]
        if case.program == "curl":
            cmd = ["curl", "-sS", "-i", "-m", "5", *args]
        else:
            cmd = [str(etcd_binaries(ctl_version)[1]), f"--endpoints={url}", *args]
        result = _run(cmd, env, case)
    return CtlResult(result.rc, result.stdout.replace(tmp, "{tmp}"), result.stderr.replace(tmp, "{tmp}"))


def _run(cmd: list[str], env: dict[str, str], case: CtlCase) -> CtlResult:
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, timeout=case.timeout,
                             input=None if case.stdin is None else case.stdin.encode("latin-1"))
    except subprocess.TimeoutExpired as exc:
        return CtlResult(-1, (exc.stdout or b"").decode("utf-8", "replace"), "timed out")
    return CtlResult(out.returncode, out.stdout.decode("utf-8", "replace"), out.stderr.decode("utf-8", "replace"))


def _ctl_text(text: str, ip: str, case: CtlCase) -> Any:
    if case.json:
        try:
            return [fidelity.normalise_json(json.loads(line), ip) for line in text.splitlines() if line.strip()]
        except ValueError:
            pass
    lines = []
    for line in text.splitlines():
        if case.mask_columns and ", " in line:
            cols = line.split(", ")
            line = ", ".join("<v>" if i in case.mask_columns else c for i, c in enumerate(cols))
        line = _SNAPSHOT_SIZE.sub('"size":"<size>"', _UUID.sub("<uuid>", _GO_POINTER.sub("<ptr>", line)))
        line = _UNIX_TS.sub('"ts":<ts>', _HTTP_DATE.sub("date: <date>", line))
        line = fidelity.normalise_text(line, ip)
        lines.append(_TABLE_PAD.sub(r"\1", line) if line.startswith(("|", "+")) else line)
    return sorted(lines) if case.sort_lines else lines


def _etcdctl(fc: FieldCase, version: str, real_ip: str, hp_ip: str) -> list[Outcome]:
    case = fc.case
    assert isinstance(case, CtlCase)
    outcomes = []
    for ctl in case.ctl if case.program == "etcdctl" else ["-"]:
        r, h = run_etcdctl(ctl, real_ip, case), run_etcdctl(ctl, hp_ip, case)
        rc = r.rc == h.rc
        out = _ctl_text(r.stdout, real_ip, case) == _ctl_text(h.stdout, hp_ip, case)
        err = _ctl_text(r.stderr, real_ip, case) == _ctl_text(h.stderr, hp_ip, case)
        diffs = []
        if not rc:
            diffs.append(f"exit code: real {r.rc} honeypot {h.rc}")
        if not out:
            diffs.append(f"stdout: real {r.stdout[:400]!r} honeypot {h.stdout[:400]!r}")
        if not err:
            diffs.append(f"stderr: real {r.stderr[:400]!r} honeypot {h.stderr[:400]!r}")
        name = f"{case.id}@etcdctl-{ctl}" if case.program == "etcdctl" else case.id
        outcomes.append(Outcome(name, "field", PERSONA_FOR[version], rc, True, err, out,
                                diffs))
    return outcomes


# --- running ------------------------------------------------------------------------------------------
def run(versions: list[str], cases: list[FieldCase] | None = None, opt_in: bool = False) -> list[Outcome]:
    cases = cases if cases is not None else load_field()
    outcomes: list[Outcome] = []
    for version in versions:
        with fidelity.server_pair(version, v2=True) as (real, hp):
            for fc in cases:
                if (fc.versions and version not in fc.versions) or \
                        (isinstance(fc.case, CtlCase) and fc.case.optin and not opt_in):
                    continue
                if isinstance(fc.case, GrpcCase):
                    o = fidelity_grpc.compare(fc.case, PERSONA_FOR[version], fidelity_grpc.call_real(real.ip, fc.case),
                                              fidelity_grpc.call(hp.ip, 2379, fc.case))
                    outcomes.append(fidelity.from_grpc(o, "field"))
                elif isinstance(fc.case, CtlCase):
                    outcomes += _etcdctl(fc, version, real.ip, hp.ip)
                else:
                    outcomes.append(_http(fc, version, real.ip, hp.ip))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fidelity_field")
    parser.add_argument("--versions", default="3.4,3.5")
    parser.add_argument("--show-diffs", action="store_true")
    parser.add_argument("--json", help="write the full report here")
    parser.add_argument("--opt-in", action="store_true", help="also the opt-in cases (snapshot save)")
    args = parser.parse_args(argv)
    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    report = fidelity.Report(run(versions, opt_in=args.opt_in))
    cases = load_field()
    tools = sorted({c.tool for c in cases})
    print(f"field corpus: {len(cases)} cases from {len(tools)} tools")
    for version, row in report.to_dict()["summary"].items():
        print(f"persona {version}: field fidelity {row['match']:.1f}% of {row['cases']} comparisons "
              f"(status/exit {row['status']:.1f}%, header names {row['header_names']:.1f}%, "
              f"header values/grpc-status/stderr {row['header_values']:.1f}%, body/stdout {row['body']:.1f}%)")
    known = known_differences(cases)
    print(f"known differences (not closed): {len(known)} cases")
    if args.show_diffs:
        for o in report.outcomes:
            if not o.match:
                tag = " (known)" if o.id.split("@")[0] in known else ""
                print(f"- [{o.version}] {o.id}{tag}: " + " | ".join(o.diffs))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report.to_dict(), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

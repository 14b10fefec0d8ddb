"""Recorded transcripts for the personas without a binary here (3.3.27, 3.2.22, 2.3.8).

`tests/support/corpus/old/<version>.yaml` holds request/response pairs written from etcd's sources
and changelogs for that release (each case names its source). The runner sends every request to a
honeypot with that persona and compares the answer with the transcript the way the differential
runner compares with a real etcd (`fidelity.compare`: status line, header names in order, the values
that are not per deployment, bodies with ids and indexes masked). Loopback only.

    .venv/bin/python -m tests.support.transcripts [--versions 3.3.27,3.2.22,2.3.8] [--show-diffs]

Case fields: those of `fidelity.Case` (method, path, headers, form/json/body or raw, peer), plus
`source` (where the expected answer comes from), `response` (status line, headers, a blank line, the
body; `{ip}` stands for the server's address) and `status_only` (compare the status line only, where
the sources fix the status but not every header) and `exact_body` (compare the body byte for byte,
where the spacing is the tell: JSON bodies are otherwise compared as parsed values).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from etcdsec.honeypot.context import Identity
from etcdsec.honeypot.core.bait import Bait
from etcdsec.honeypot.sensor import SensorConfig
from tests.support.fidelity import Case, Outcome, Reply, compare, exchange
from tests.support.harness import BackgroundSensor

CORPUS = Path(__file__).parent / "corpus" / "old"
VERSIONS = ("3.3.27", "3.2.22", "2.3.8")
MEMBER = "default"
PLACEHOLDER_IP = "{ip}"  # what a transcript writes for the server's address (normalise_text's mark)


@dataclass
class Transcript:
    case: Case
    expected: Reply
    source: str
    status_only: bool = False
    exact_body: bool = False


def parse_response(text: str) -> Reply:
    """`HTTP/1.1 200 OK\\nName: value\\n...\\n\\nbody` -> Reply (the body exactly as written)."""
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
    return Reply(lines[0], headers, body.encode())


def load(version: str) -> list[Transcript]:
    items = yaml.safe_load((CORPUS / f"{version}.yaml").read_text()) or []
    out = []
    for item in items:
        response, source = item.pop("response"), item.pop("source")
        status_only, exact = bool(item.pop("status_only", False)), bool(item.pop("exact_body", False))
        out.append(Transcript(Case(group=version, **item), parse_response(response), source, status_only, exact))
    ids = [t.case.id for t in out]
    if len(ids) != len(set(ids)):
        raise ValueError(f"duplicate transcript ids in {version}")
    return out


def run(version: str, persona: str | None = None) -> list[Outcome]:
    """Version's transcripts against a honeypot with `persona` (default: the same version)."""
    transcripts = load(version)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="etcdsec-transcripts-") as tmp:
        state = Path(tmp) / "state.json"
        ident = Identity.create(MEMBER, [], [])
        ident.revision_base = 1
        state.write_text(json.dumps(ident.to_dict()))
        config = SensorConfig(persona=persona or version, member_name=MEMBER, bait=Bait(), state_file=state)
        with BackgroundSensor(config, peer=True, keep_events=False) as hp:
            for t in transcripts:
                port = 2380 if t.case.peer else 2379
                head = t.case.method == "HEAD"
                got = exchange(hp.ip, port, t.case.wire(f"{hp.ip}:{port}"), head)
                outcome = compare(t.case, version, t.expected, PLACEHOLDER_IP, got, hp.ip)
                if t.status_only and outcome.status:
                    outcome = Outcome(t.case.id, version, version, True, True, True, True)
                body = got.body.replace(hp.ip.encode(), PLACEHOLDER_IP.encode())
                if t.exact_body and body != t.expected.body:
                    outcome.body = False
                    outcome.diffs.append(f"exact body: transcript {t.expected.body!r} honeypot {body!r}")
                outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.transcripts")
    parser.add_argument("--versions", default=",".join(VERSIONS))
    parser.add_argument("--show-diffs", action="store_true")
    args = parser.parse_args(argv)
    for version in [v.strip() for v in args.versions.split(",") if v.strip()]:
        if version not in VERSIONS:
            print(f"transcripts: error: no transcripts for {version!r} (have {', '.join(VERSIONS)})",
                  file=sys.stderr)
            return 2
        rows = run(version)
        matched = sum(o.match for o in rows)
        print(f"persona {version}: {matched} of {len(rows)} transcripts match")
        if args.show_diffs:
            for o in rows:
                if not o.match:
                    print(f"- {o.id}: " + " | ".join(o.diffs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

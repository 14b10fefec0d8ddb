"""etcdctl 3.3.25, the client an old cluster's operators (and those who find it) run, against real etcd
3.3.25 and persona 3.3.25 side by side: same exit codes, same output, per-deployment values masked.

Both servers start empty with the same member name and v2 on (3.3's default); commands run in one
order against each, v2 (etcdctl 3.3's default API) then v3.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from etcdsec.honeypot.context import Identity
from etcdsec.honeypot.core.bait import Bait
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer, etcd_binaries
from tests.support.harness import BackgroundSensor

V2 = [["ls", "/", "-r"], ["get", "/nope"], ["set", "/a", "1"], ["get", "/a"], ["mk", "/a", "2"],
      ["update", "/nope", "x"], ["mkdir", "/d"], ["ls", "-r", "-p", "/"], ["rm", "/a"], ["rmdir", "/d"],
      ["member", "list"], ["cluster-health"], ["user", "list"], ["role", "list"], ["auth", "enable"],
      ["ls", "/registry"], ["--output", "json", "get", "/nope"], ["set", "/t", "v", "--ttl", "100"],
      ["--output", "extended", "get", "/t"]]
V3 = [["get", "", "--prefix", "--keys-only"], ["put", "k", "v"], ["get", "k"], ["get", "k", "-w", "json"],
      ["member", "list"], ["endpoint", "status"], ["endpoint", "health"], ["user", "list"], ["role", "list"],
      ["auth", "enable"], ["lease", "list"], ["alarm", "list"], ["get", "--from-key", ""], ["del", "k"],
      ["version"], ["member", "list", "-w", "json"], ["endpoint", "status", "-w", "json"],
      ["get", "/registry", "--prefix", "--keys-only"], ["txn", "-i"], ["defrag"], ["endpoint", "hashkv"],
      ["lease", "grant", "60"], ["watch", "x", "--rev", "1"]]
# Per deployment or per moment: ids, raft term and index (a fresh etcd is at term 2, a sensor shows a
# cluster that has lived), durations, sizes, the client's log timestamps and its random resolver name.
MASKS = [(re.compile(r'"(raft_term|raftTerm|raftIndex)":\d+'), r'"\1":<v>'),
         (re.compile(r"(true|false), \d+, \d+\n"), r"\1, <term>, <index>\n"),
         (re.compile(r'"ts":"[^"]+"'), '"ts":<ts>'), (re.compile(r"client-[0-9a-f-]{36}"), "client-<uuid>"),
         (re.compile(r"\b[0-9a-f]{14,16}\b"), "<id>"), (re.compile(r"\d+(\.\d+)?(ms|µs|s)\b"), "<dur>"),
         (re.compile(r"\b\d{5,}\b"), "<n>"), (re.compile(r"\d+(\.\d+)? ?[kM]?B\b"), "<size>")]


def _run(ctl: Path, ip: str, api: str, args: list[str]) -> tuple[object, str, str]:
    def norm(text: bytes) -> str:
        out = text.decode(errors="replace").replace(ip, "{ip}")
        for pattern, repl in MASKS:
            out = pattern.sub(repl, out)
        return out
    wait = 3 if args[0] == "watch" else 30  # a watch never ends by itself: both sides time out alike
    try:
        r = subprocess.run([str(ctl), f"--endpoints=http://{ip}:2379", *args], env={"ETCDCTL_API": api},
                           capture_output=True, timeout=wait, input=b"")
    except subprocess.TimeoutExpired:
        return "timeout", "", ""
    return r.returncode, norm(r.stdout), norm(r.stderr)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[tuple[str, str], tuple[object, object]]:
    _, ctl = etcd_binaries("3.3")
    state = tmp_path_factory.mktemp("ctl33") / "state.json"
    ident = Identity.create("etcd-test", [], [])
    ident.revision_base = 1  # a fresh etcd starts at revision 1
    state.write_text(json.dumps(ident.to_dict()))
    config = SensorConfig(persona="3.3.25", member_name="etcd-test", bait=Bait(), enable_v2=True, state_file=state)
    seen = {}
    with EtcdServer(EtcdConfig(version="3.3", enable_v2=True, name="etcd-test")) as real, \
            BackgroundSensor(config, ip=free_loopback_ip((2379, 2380)), peer=True, keep_events=False) as hp:
        for api, commands in (("2", V2), ("3", V3)):
            for args in commands:
                seen[(api, " ".join(args))] = (_run(ctl, real.ip, api, args), _run(ctl, hp.ip, api, args))
    return seen


@pytest.mark.parametrize(("api", "command"), [("2", " ".join(a)) for a in V2] + [("3", " ".join(a)) for a in V3])
def test_etcdctl_33_sees_what_real_etcd_shows(outputs, api: str, command: str) -> None:
    real, honeypot = outputs[(api, command)]
    if api == "2" and command.startswith("ls"):  # v2 lists a directory in Go map order: random on both
        real = (real[0], sorted(str(real[1]).splitlines()), real[2])
        honeypot = (honeypot[0], sorted(str(honeypot[1]).splitlines()), honeypot[2])
    assert honeypot == real, f"etcdctl {command}: real {real!r} honeypot {honeypot!r}"

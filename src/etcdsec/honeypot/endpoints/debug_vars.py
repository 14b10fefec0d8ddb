"""etcd's `/debug/vars` (expvar): the command line the persona runs with, fd limit, memstats, raft.

The command line is what a kubeadm-style etcd of this version would show for the sensor's real
listen address, member name and URLs: flags sorted as kubeadm writes them, `--enable-v2` when v2 is
served although the version's default is off (or the reverse), TLS files when the port speaks TLS.
Persona files may set `cmdline: {"argv0", "data_dir", "flags"}`; the defaults are kubeadm's.
"""

from __future__ import annotations

import json
from typing import Any

from etcdsec.honeypot.context import SensorContext
from etcdsec.honeypot.core.persona import Persona, go_release
from etcdsec.honeypot.endpoints.go_runtime import FD_LIMIT, by_size, size_classes

KUBEADM_PKI = "/etc/kubernetes/pki/etcd"


def v2_by_default(persona: Persona) -> bool:
    """etcd serves the v2 API unless told otherwise up to 3.3; from 3.4 only with --enable-v2."""
    return persona.major_minor < (3, 4)


def cmdline(ctx: SensorContext) -> list[str]:
    persona, ident = ctx.persona, ctx.identity
    conf: dict[str, Any] = persona.extra.get("cmdline", {})
    client, peer = ",".join(ident.client_urls), ",".join(ident.peer_urls)
    flags = {
        "advertise-client-urls": client,
        "data-dir": conf.get("data_dir", "/var/lib/etcd"),
        "initial-advertise-peer-urls": peer,
        "initial-cluster": f"{ident.member_name}={peer}",
        "listen-client-urls": ctx.listen_urls.get("client", client),
        "listen-peer-urls": ctx.listen_urls.get("peer", peer),
        "name": ident.member_name,
    }
    if persona.major_minor >= (3, 0) and persona.v2_enabled != v2_by_default(persona):
        flags["enable-v2"] = "true" if persona.v2_enabled else "false"
    if any(url.startswith("https:") for url in ident.client_urls):
        flags["cert-file"] = f"{KUBEADM_PKI}/server.crt"
        flags["key-file"] = f"{KUBEADM_PKI}/server.key"
    extra = [str(f) for f in conf.get("flags", ["--snapshot-count=10000"])]
    argv = [f"--{k}={v}" for k, v in flags.items()] + extra
    return [str(conf.get("argv0", "etcd")), *sorted(argv)]


def debug_vars_body(ctx: SensorContext, memstats: dict[str, Any], index: int) -> bytes:
    """expvar's layout: `{\\n"name": value,\\n...}`, each value compact JSON, keys sorted; `memstats`
    from etcdsec.honeypot.endpoints.go_runtime (the same figures /metrics shows), `index` raft's commit index."""
    ident = ctx.identity
    member = f"{ident.member_id:x}"
    raft = {"id": member, "term": ident.raft_term, "vote": member, "commit": index, "lead": member,
            "raftState": "StateLeader", "applied": index,
            "progress": {member: {"match": index, "next": index + 1, "state": "StateReplicate"}},
            "leadtransferee": "0"}
    memstats = {**memstats, "BySize": by_size(memstats, size_classes(ctx.persona.go_version))}
    if go_release(ctx.persona.go_version) < (1, 8):  # MemStats.NumForcedGC arrived in Go 1.8 (go CL 34067)
        del memstats["NumForcedGC"]
    items = [("cmdline", cmdline(ctx)), ("file_descriptor_limit", FD_LIMIT),
             ("memstats", memstats), ("raft.status", raft)]
    return ("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}"
                               for k, v in items) + "\n}\n").encode()

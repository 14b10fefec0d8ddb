"""Bodies of the non-key endpoints: /version, /metrics, /debug/vars, peer /members, /v2/stats/*."""

from __future__ import annotations

import functools
import struct
import time
import zlib
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from etcdsec.honeypot.context import SensorContext
from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.endpoints.debug_vars import debug_vars_body
from etcdsec.honeypot.endpoints.etcd_metrics import EtcdMetrics, Live, Traffic, load_metrics_data
from etcdsec.honeypot.endpoints.v2_metrics import V2Traffic
from etcdsec.honeypot.wire.go_json import go_duration, go_json


@functools.cache
def _version_body(version: str, cluster_version: str) -> bytes:
    return go_json({"etcdserver": version, "etcdcluster": cluster_version})


def version_body(ctx: SensorContext) -> bytes:
    return _version_body(ctx.persona.version, ctx.persona.cluster_version)


def member_id_hex(ctx: SensorContext) -> str:
    return f"{ctx.identity.member_id:x}"


def cluster_id_hex(ctx: SensorContext) -> str:
    return f"{ctx.identity.cluster_id:x}"


def rfc3339nano(dt: datetime) -> str:
    nanos = f"{dt.microsecond:06d}{(dt.microsecond * 7) % 1000:03d}"  # Go prints 9 digits
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + nanos + "Z"


def v2_members_body(ctx: SensorContext) -> bytes:
    ident = ctx.identity
    member = {"id": member_id_hex(ctx), "name": ident.member_name, "peerURLs": ident.peer_urls,
              "clientURLs": ident.client_urls}
    return go_json({"members": [member]}, newline=True)


def peer_members_body(ctx: SensorContext) -> bytes:
    ident = ctx.identity
    return go_json([{"id": ident.member_id, "peerURLs": ident.peer_urls, "name": ident.member_name,
                     "clientURLs": ident.client_urls}], newline=True)


def raft_probing_body() -> bytes:
    now = datetime.now(UTC)
    return go_json({"OK": True, "Now": rfc3339nano(now)}, newline=True)


def stats_self_body(ctx: SensorContext) -> bytes:
    ident = ctx.identity
    uptime = (datetime.now(UTC) - ident.start_time).total_seconds()
    member = member_id_hex(ctx)
    leader_start = rfc3339nano(ident.start_time.replace(microsecond=201_459))
    return go_json({"name": ident.member_name, "id": member, "state": "StateLeader",
                    "startTime": rfc3339nano(ident.start_time),
                    "leaderInfo": {"leader": member, "uptime": go_duration(uptime),
                                   "startTime": leader_start},
                    "recvAppendRequestCnt": 0, "sendAppendRequestCnt": 0})


def stats_leader_body(ctx: SensorContext) -> bytes:
    return go_json({"leader": member_id_hex(ctx), "followers": {}})


def stats_store_body(counts: dict[str, int], watchers: int) -> bytes:
    return go_json({**counts, "watchers": watchers})


def metrics_body(ctx: SensorContext, requests: int) -> bytes:
    """A plausible Prometheus exposition: the gauges scanners read (version, leader, db size), for
    personas with no captured family set (3.3.27, 3.2.22, 2.3.8: no binary here to capture)."""
    p, ident = ctx.persona, ctx.identity
    minor = ".".join(p.cluster_version.split(".")[:2])
    start = ident.start_time.timestamp()
    db = 24576 * (8 + len(ctx.dataset) // 4)
    lines = [
        "# HELP etcd_cluster_version Which version is running. 1 for 'cluster_version' label with current "
        "cluster version",
        "# TYPE etcd_cluster_version gauge",
        f'etcd_cluster_version{{cluster_version="{minor}"}} 1',
        "# HELP etcd_debugging_auth_revision The current revision of auth store.",
        "# TYPE etcd_debugging_auth_revision gauge",
        "etcd_debugging_auth_revision 1",
        "# HELP etcd_mvcc_db_total_size_in_bytes Total size of the underlying database physically allocated "
        "in bytes.",
        "# TYPE etcd_mvcc_db_total_size_in_bytes gauge",
        f"etcd_mvcc_db_total_size_in_bytes {db}",
        "# HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence, 0 is not.",
        "# TYPE etcd_server_has_leader gauge",
        "etcd_server_has_leader 1",
        "# HELP etcd_server_id Server or member ID in hexadecimal format. 1 for 'server_id' label with "
        "current ID.",
        "# TYPE etcd_server_id gauge",
        f'etcd_server_id{{server_id="{member_id_hex(ctx)}"}} 1',
        "# HELP etcd_server_is_leader Whether or not this member is a leader. 1 if is, 0 otherwise.",
        "# TYPE etcd_server_is_leader gauge",
        "etcd_server_is_leader 1",
        "# HELP etcd_server_leader_changes_seen_total The number of leader changes seen.",
        "# TYPE etcd_server_leader_changes_seen_total counter",
        "etcd_server_leader_changes_seen_total 1",
        "# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current "
        "version.",
        "# TYPE etcd_server_version gauge",
        f'etcd_server_version{{server_version="{p.version}"}} 1',
        "# HELP go_info Information about the Go environment.",
        "# TYPE go_info gauge",
        f'go_info{{version="{p.go_version}"}} 1',
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
        "# TYPE process_start_time_seconds gauge",
        f"process_start_time_seconds {start:.2f}",
        "# HELP etcd_mvcc_db_total_size_in_use_in_bytes Total size of the underlying database logically in use "
        "in bytes.",
        "# TYPE etcd_mvcc_db_total_size_in_use_in_bytes gauge",
        f"etcd_mvcc_db_total_size_in_use_in_bytes {db * 3 // 4}",
        "# HELP etcd_network_client_grpc_received_bytes_total The total number of bytes received from grpc "
        "clients.",
        "# TYPE etcd_network_client_grpc_received_bytes_total counter",
        f"etcd_network_client_grpc_received_bytes_total {1200 + requests * 37}",
        "# HELP etcd_server_proposals_committed_total The total number of consensus proposals committed.",
        "# TYPE etcd_server_proposals_committed_total gauge",
        f"etcd_server_proposals_committed_total {ident.raft_index_base}",
        "# HELP etcd_server_proposals_pending The current number of pending proposals to commit.",
        "# TYPE etcd_server_proposals_pending gauge",
        "etcd_server_proposals_pending 0",
        "# HELP go_goroutines Number of goroutines that currently exist.",
        "# TYPE go_goroutines gauge",
        "go_goroutines 153",
        "# HELP go_threads Number of OS threads created.",
        "# TYPE go_threads gauge",
        "go_threads 14",
        "# HELP grpc_server_started_total Total number of RPCs started on the server.",
        "# TYPE grpc_server_started_total counter",
        'grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 0',
        'grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 0',
        "# HELP process_max_fds Maximum number of open file descriptors.",
        "# TYPE process_max_fds gauge",
        "process_max_fds 1.048576e+06",
        "# HELP process_open_fds Number of open file descriptors.",
        "# TYPE process_open_fds gauge",
        "process_open_fds 41",
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
        f"process_resident_memory_bytes {41_000_000 + db}",
        "# HELP promhttp_metric_handler_requests_total Total number of scrapes by HTTP status code.",
        "# TYPE promhttp_metric_handler_requests_total counter",
        f'promhttp_metric_handler_requests_total{{code="200"}} {requests}',
    ]
    return ("\n".join(lines) + "\n").encode()


GO_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, XFL 0, OS unknown


def go_gzip(data: bytes) -> bytes:
    """gzip as Go's compress/gzip writes it at the default level (Python's module writes OS 3)."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = deflate.compress(data) + deflate.flush()
    return GO_GZIP_HEADER + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def gzip_accepted(accept_encoding: bytes | None) -> bool:
    """promhttp's test: one comma-separated part that is `gzip` or starts `gzip;` (no q= weighing)."""
    parts = (accept_encoding or b"").split(b",")
    return any(p.strip() == b"gzip" or p.strip().startswith(b"gzip;") for p in parts)


class EtcdSurface:
    """One sensor's `/metrics` and `/debug/vars`: etcd's family set for the persona (captured from the
    real binary, `etcd_metrics`) with live values, or `metrics_body`'s short list for personas
    without a capture; the same Go process (`go_runtime`) behind both endpoints."""

    def __init__(self, ctx: SensorContext, v3_state: Any | None) -> None:
        self.ctx, self.v3_state = ctx, v3_state
        self.traffic = Traffic(v2=V2Traffic() if ctx.persona.v2_enabled else None)
        ctx.events.outputs.append(self.traffic)  # counts what etcd's counters would count
        data = load_metrics_data(ctx.persona.name)
        self.metrics = EtcdMetrics(data, ctx.persona, ctx.identity) if data is not None else None
        self.scrapes = 0

    def live(self, session: Session | None) -> Live:
        ident = self.ctx.identity
        now = time.time()
        # process_start_time_seconds has centiseconds (clock ticks): a stable fraction per member
        started = ident.start_time.timestamp() + (ident.member_id % 97) / 100
        live = Live(now=now, uptime=max(0.0, now - started),
                    calls=self.metrics.calls(self.traffic) if self.metrics else Counter(self.traffic.grpc),
                    scrapes=self.scrapes, health=self.traffic.http["/health"],
                    raft_index=ident.raft_index_base, keys=len(self.ctx.dataset),
                    v2=self.traffic.v2 or V2Traffic())
        if self.v3_state is not None:
            ns = self.v3_state.namespace(session)  # the keyspace this client sees, as Status shows it
            store = ns.store
            live.revision, live.compact_revision = store.revision, store.compact_revision
            live.keys, live.key_bytes = store.live_keys, store.bytes_used
            live.db_size, live.db_in_use = ns.db_size()
            live.raft_index = ns.raft_index
            live.writes = max(0, store.revision - ident.revision_base)
            live.watch_streams, live.watchers = len(ns.hub.streams), ns.hub.count
        else:
            live.raft_index += int(live.uptime // 30)
        return live

    def metrics_body(self, session: Session | None) -> bytes:
        self.scrapes += 1
        if self.metrics is None:
            return metrics_body(self.ctx, self.scrapes)
        return self.metrics.render(self.live(session))

    def metrics_response(self, session: Session | None,
                         accept_encoding: bytes | None) -> tuple[bytes, list[tuple[str, str]]]:
        """Body and headers as promhttp sends them: gzip when the client accepts it (Go's HTTP client,
        Prometheus and curl --compressed all ask), with Go's gzip header (no name, mtime 0, OS 255)."""
        body = self.metrics_body(session)
        headers = [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]
        if gzip_accepted(accept_encoding):
            return go_gzip(body), [*headers, ("Content-Encoding", "gzip")]
        return body, headers

    def debug_vars_body(self, session: Session | None) -> bytes:
        live = self.live(session)
        return debug_vars_body(self.ctx, live.memstats, live.raft_index)

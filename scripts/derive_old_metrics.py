"""Derive the /metrics family sets of etcd 3.3.27, 3.2.22 and 2.3.8 (no binary here) as persona data.

    PYTHONPATH=. .venv/bin/python scripts/derive_old_metrics.py

Base: `personas/metrics/3.4.23.json`, captured from the real etcd 3.4.23 by capture_etcd_metrics.py
(HELP/TYPE text, label sets, a fresh server's values). Each older version keeps the families etcd's
own dump of that release lists, with that release's HELP text, and adds the families 3.4 no longer
has. The dumps are etcd-io/etcd `Documentation/metrics/v3.3.24` and `Documentation/metrics/v3.2.23`
(written by tools/etcd-dump-metrics from the release binaries); the changelog entries between those
releases and the personas are applied on top (CHANGELOG-3.3: no metric change in 3.3.25-3.3.27;
CHANGELOG-3.2: `etcd_server_version` added in 3.2.23, so 3.2.22 has none). Peer families
(`etcd_network_peer_*`) are left out as in every capture: a single member has no peer.
Run it again after changing the base capture; the output is deterministic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

METRICS = Path("src/etcdsec/honeypot/personas/metrics")

# Families of the 3.4.23 capture that 3.3.24's dump does not list (added in 3.4).
NOT_IN_3_3 = {
    "etcd_debugging_disk_backend_commit_rebalance_duration_seconds",
    "etcd_debugging_disk_backend_commit_spill_duration_seconds",
    "etcd_debugging_disk_backend_commit_write_duration_seconds",
    "etcd_debugging_lease_granted_total", "etcd_debugging_lease_renewed_total",
    "etcd_debugging_lease_revoked_total", "etcd_debugging_lease_ttl_total",
    "etcd_disk_defrag_inflight", "etcd_mvcc_db_open_read_transactions",
    "etcd_mvcc_delete_total", "etcd_mvcc_put_total", "etcd_mvcc_range_total", "etcd_mvcc_txn_total",
    "etcd_server_is_learner", "etcd_server_learner_promote_successes", "etcd_snap_fsync_duration_seconds",
    # client_golang before v0.9 (3.3 pins prometheus/client_golang@5cec1d042, CHANGELOG-3.4 "Dependency")
    "process_virtual_memory_max_bytes", "promhttp_metric_handler_requests_in_flight",
    "promhttp_metric_handler_requests_total",
}
HELP_3_3 = {
    "etcd_debugging_mvcc_db_total_size_in_bytes":
        "Total size of the underlying database physically allocated in bytes. Use etcd_mvcc_db_total_size_in_bytes",
    "etcd_disk_wal_fsync_duration_seconds": "The latency distributions of fsync called by wal.",
    "go_gc_duration_seconds": "A summary of the GC invocation durations.",
}
GC_CPU_FRACTION = ["go_memstats_gc_cpu_fraction", "gauge",
                   "The fraction of this program's available CPU time used by the GC since the program started.",
                   [["", "", 1.6841712376788e-05]]]

# 3.2.23's dump, less etcd_server_version (CHANGELOG-3.2: added in 3.2.23).
IN_3_2 = {
    "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
    "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
    "etcd_debugging_mvcc_db_total_size_in_bytes", "etcd_debugging_mvcc_delete_total",
    "etcd_debugging_mvcc_events_total", "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
    "etcd_debugging_mvcc_keys_total", "etcd_debugging_mvcc_pending_events_total", "etcd_debugging_mvcc_put_total",
    "etcd_debugging_mvcc_range_total", "etcd_debugging_mvcc_slow_watcher_total", "etcd_debugging_mvcc_txn_total",
    "etcd_debugging_mvcc_watch_stream_total", "etcd_debugging_mvcc_watcher_total",
    "etcd_debugging_server_lease_expired_total", "etcd_debugging_snap_save_marshalling_duration_seconds",
    "etcd_debugging_snap_save_total_duration_seconds", "etcd_debugging_store_expires_total",
    "etcd_debugging_store_reads_total", "etcd_debugging_store_watch_requests_total",
    "etcd_debugging_store_watchers", "etcd_debugging_store_writes_total",
    "etcd_disk_backend_commit_duration_seconds", "etcd_disk_backend_snapshot_duration_seconds",
    "etcd_disk_wal_fsync_duration_seconds", "etcd_grpc_proxy_cache_hits_total", "etcd_grpc_proxy_cache_keys_total",
    "etcd_grpc_proxy_cache_misses_total", "etcd_grpc_proxy_events_coalescing_total",
    "etcd_grpc_proxy_watchers_coalescing_total", "etcd_network_client_grpc_received_bytes_total",
    "etcd_network_client_grpc_sent_bytes_total", "etcd_server_has_leader", "etcd_server_is_leader",
    "etcd_server_leader_changes_seen_total", "etcd_server_proposals_applied_total",
    "etcd_server_proposals_committed_total", "etcd_server_proposals_failed_total", "etcd_server_proposals_pending",
    "go_gc_duration_seconds", "go_goroutines", "go_memstats_alloc_bytes", "go_memstats_alloc_bytes_total",
    "go_memstats_buck_hash_sys_bytes", "go_memstats_frees_total", "go_memstats_gc_sys_bytes",
    "go_memstats_heap_alloc_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_inuse_bytes",
    "go_memstats_heap_objects", "go_memstats_heap_sys_bytes", "go_memstats_last_gc_time_seconds",
    "go_memstats_lookups_total", "go_memstats_mallocs_total", "go_memstats_mcache_inuse_bytes",
    "go_memstats_mcache_sys_bytes", "go_memstats_mspan_inuse_bytes", "go_memstats_mspan_sys_bytes",
    "go_memstats_next_gc_bytes", "go_memstats_other_sys_bytes", "go_memstats_stack_inuse_bytes",
    "go_memstats_stack_sys_bytes", "go_memstats_sys_bytes",
    "grpc_server_handled_total", "grpc_server_msg_received_total", "grpc_server_msg_sent_total",
    "grpc_server_started_total",
    # not in the dump (made where client_golang has no process collector); on Linux every
    # client_golang of the era registers them in the default registry
    "process_cpu_seconds_total", "process_max_fds", "process_open_fds", "process_resident_memory_bytes",
    "process_start_time_seconds", "process_virtual_memory_bytes",
}
HELP_3_2 = {
    **HELP_3_3,
    "etcd_debugging_mvcc_db_total_size_in_bytes": "Total size of the underlying database in bytes.",
    "go_memstats_sys_bytes": "Number of bytes obtained by system. Sum of all system allocations.",
}
# prometheus.Handler() (etcdhttp/base.go@v3.2.22) instruments /metrics itself: three summaries with
# handler="prometheus" exist from the start (NaN quantiles until a scrape was served), and
# http_requests_total once one was (the honeypot renders these live, etcd_metrics.py).
_QUANTILES = ("0.5", "0.9", "0.99")
HTTP_SUMMARIES_3_2 = [
    [name, "summary", help_text,
     [*(["", f'{{handler="prometheus",quantile="{q}"}}', "NaN"] for q in _QUANTILES),
      ["_sum", '{handler="prometheus"}', 0], ["_count", '{handler="prometheus"}', 0]]]
    for name, help_text in (("http_request_duration_microseconds", "The HTTP request latencies in microseconds."),
                            ("http_request_size_bytes", "The HTTP request sizes in bytes."),
                            ("http_response_size_bytes", "The HTTP response sizes in bytes."))
]
HTTP_REQUESTS_TOTAL_3_2 = ["http_requests_total", "counter", "Total number of HTTP requests made.", []]
HEAP_RELEASED_3_2 = ["go_memstats_heap_released_bytes_total", "counter", "Total number of heap bytes released to OS."]
# gRPC methods 3.3 added (CHANGELOG-3.3 v3.3.0 "Added(API)", "Added(etcd/clientv3)"); 3.4 MemberPromote
METHODS_AFTER_3_2 = {"LeaseLeases", "MoveLeader", "HashKV"}
METHODS_AFTER_3_3 = {"MemberPromote"}


def _family(base: list[list[Any]], name: str) -> list[Any]:
    return next(f for f in base if f[0] == name)


def _with_help(fam: list[Any], helps: dict[str, str]) -> list[Any]:
    out = list(fam)
    out[2] = helps.get(fam[0], fam[2])
    return out


def derive_3_3(base: dict[str, Any]) -> dict[str, Any]:
    fams = [_with_help(f, HELP_3_3) for f in base["families"] if f[0] not in NOT_IN_3_3]
    fams.append(GC_CPU_FRACTION)
    for fam in fams:
        if fam[0] == "etcd_server_client_requests_total":  # etcdctl 3.3 says 3.3
            fam[3] = [[s, labels.replace('"3.4"', '"3.3"'), v] for s, labels, v in fam[3]]
    return {
        "source": "derived (scripts/derive_old_metrics.py): the 3.4.23 capture reduced to etcd's own dump of "
                  "v3.3.24 (Documentation/metrics/v3.3.24), HELP texts of that dump",
        "grpc_methods": [m for m in base["grpc_methods"] if m[1] not in METHODS_AFTER_3_3],
        "grpc_codes": base["grpc_codes"],
        "v2_families": base["v2_families"],
        "families": sorted(fams, key=lambda f: f[0]),
    }


def derive_3_2(base: dict[str, Any]) -> dict[str, Any]:
    fams = [_with_help(f, HELP_3_2) for f in base["families"] if f[0] in IN_3_2]
    released = _family(base["families"], "go_memstats_heap_released_bytes")
    fams.append([*HEAP_RELEASED_3_2, released[3]])
    fams.extend(HTTP_SUMMARIES_3_2)
    fams.append(HTTP_REQUESTS_TOTAL_3_2)
    return {
        "source": "derived (scripts/derive_old_metrics.py): the 3.4.23 capture reduced to etcd's own dump of "
                  "v3.2.23 (Documentation/metrics/v3.2.23) less etcd_server_version (added in 3.2.23), "
                  "HELP texts of that dump; gRPC series only for methods called (3.2 does not pre-initialise "
                  "them, CHANGELOG-3.3 'Initialize gRPC server metrics with zero values')",
        "grpc_lazy": True,
        "grpc_methods": [m for m in base["grpc_methods"]
                         if m[1] not in METHODS_AFTER_3_2 | METHODS_AFTER_3_3 and m[0] != "grpc.health.v1.Health"],
        "grpc_codes": ["OK"],
        "v2_families": base["v2_families"],
        "families": sorted(fams, key=lambda f: f[0]),
    }


# etcd 2.3.8: etcd's families by package, as registered in each package's init() (the v2 line's
# names, before 3.0 renamed them): etcdserver/metrics.go, store/metrics.go, wal/metrics.go,
# snap/metrics.go, storage/metrics.go (the experimental v3 store, imported by etcdserver even when
# --experimental-v3demo is off) and etcdserver/etcdhttp/metrics.go (label vectors: shown once a v2
# request was served). Go and process families as 3.2's client_golang names them (inferred: the v2.3
# Godeps pin was not read); /metrics is prometheus.Handler() as in 3.2 (v2http/client.go@v2.3.8).
def _exp(start: float, factor: float, count: int) -> list[str]:
    """prometheus.ExponentialBuckets as `le` texts, +Inf last."""
    out, value = [], start
    for _ in range(count):
        out.append(f"{value:g}")  # every bound used here is below 1e6: Go's %g form and Python's agree
        value *= factor
    return [*out, "+Inf"]


def _zero_hist(name: str, help_text: str, les: list[str]) -> list[Any]:
    return [name, "histogram", help_text, [["", [0] * len(les), 0, 0]], les]


def _gauge(name: str, kind: str, help_text: str, value: float) -> list[Any]:
    return [name, kind, help_text, [["", "", value]]]


STORAGE_2_3 = [  # storage/metrics.go (package storage, 3.0 renamed it mvcc)
    ("range_total", "counter", "Total number of ranges seen by this member."),
    ("put_total", "counter", "Total number of puts seen by this member."),
    ("delete_total", "counter", "Total number of deletes seen by this member."),
    ("txn_total", "counter", "Total number of txns seen by this member."),
    ("keys_total", "gauge", "Total number of keys."),
    ("watch_stream_total", "gauge", "Total number of watch streams."),
    ("watcher_total", "gauge", "Total number of watchers."),
    ("slow_watcher_total", "gauge", "Total number of unsynced slow watchers."),
    ("events_total", "counter", "Total number of events sent by this member."),
    ("pending_events_total", "gauge", "Total number of pending events to be sent."),
    ("db_total_size_in_bytes", "gauge", "Total size of the underlying database in bytes."),
]


def derive_2_3(base: dict[str, Any]) -> dict[str, Any]:
    v32 = derive_3_2(base)["families"]
    keep = {f[0]: f for f in v32}
    ms14 = _exp(0.001, 2, 14)
    wal = _family(base["families"], "etcd_disk_wal_fsync_duration_seconds")
    fams: list[list[Any]] = [
        _gauge("etcd_server_file_descriptors_used_total", "gauge", "The total number of file descriptors used.", 17),
        _gauge("etcd_server_pending_proposal_total", "gauge", "The total number of pending proposals.", 0),
        ["etcd_server_proposal_durations_seconds", "histogram", "The latency distributions of committing proposal.",
         [["", [0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], 0.004712318, 3]], ms14],
        _gauge("etcd_server_proposal_failed_total", "counter", "The total number of failed proposals.", 0),
        _zero_hist("etcd_snapshot_save_marshalling_durations_seconds",
                   "The marshalling cost distributions of save called by snapshot.", ms14),
        _zero_hist("etcd_snapshot_save_total_durations_seconds",
                   "The total latency distributions of save called by snapshot.", ms14),
        _gauge("etcd_store_expires_total", "counter", "Total number of expired keys.", 0),
        ["etcd_store_reads_total", "counter",
         "Total number of reads action by (get/getRecursive), local to this member.",
         keep["etcd_debugging_store_reads_total"][3]],
        _gauge("etcd_store_watch_requests_total", "counter",
               "Total number of incoming watch requests (new or reestablished).", 0),
        _gauge("etcd_store_watchers", "gauge", "Count of currently active watchers.", 0),
        ["etcd_store_writes_total", "counter",
         "Total number of writes (e.g. set/compareAndDelete) seen by this member.",
         keep["etcd_debugging_store_writes_total"][3]],
        ["etcd_wal_fsync_durations_seconds", "histogram", "The latency distributions of fsync called by wal.",
         wal[3], ms14],
        _gauge("etcd_wal_last_index_saved", "gauge", "The index of the last entry saved by wal.", 4),
        _zero_hist("etcd_storage_index_compaction_pause_duration_milliseconds",
                   "Bucketed histogram of index compaction pause duration.", _exp(0.5, 2, 12)),
        _zero_hist("etcd_storage_db_compaction_pause_duration_milliseconds",
                   "Bucketed histogram of db compaction pause duration.", _exp(1, 2, 13)),
        _zero_hist("etcd_storage_db_compaction_total_duration_milliseconds",
                   "Bucketed histogram of db compaction total duration.", _exp(100, 2, 14)),
        *(_gauge(f"etcd_storage_{name}", kind, help_text, 0) for name, kind, help_text in STORAGE_2_3),
        *(f for f in v32 if f[0].startswith(("go_", "process_", "http_"))),
    ]
    v2 = [list(f) for f in base["v2_families"]]
    for fam in v2:  # etcdhttp/metrics.go before 3.x: the histogram's name ends in _second
        if fam[0] == "etcd_http_successful_duration_seconds":
            fam[0] = "etcd_http_successful_duration_second"
    return {
        "source": "derived (scripts/derive_old_metrics.py) from the v2 line's metrics.go files (etcdserver, store, "
                  "wal, snap, storage, etcdhttp); go_*/process_*/http_* as 3.2's client_golang writes them",
        "grpc_lazy": True,
        "grpc_methods": [],
        "grpc_codes": [],
        "v2_families": v2,
        "families": sorted(fams, key=lambda f: f[0]),
    }


def write(path: Path, data: dict[str, Any]) -> None:
    lines = [json.dumps(f) for f in data["families"]]
    head = {k: v for k, v in data.items() if k != "families"}
    text = json.dumps(head)[:-1] + ', "families": [\n' + ",\n".join(lines) + "\n]}\n"
    json.loads(text)  # well-formed
    path.write_text(text)


def main() -> int:
    base = json.loads((METRICS / "3.4.23.json").read_text())
    write(METRICS / "3.3.27.json", derive_3_3(base))
    write(METRICS / "3.2.22.json", derive_3_2(base))
    write(METRICS / "2.3.8.json", derive_2_3(base))
    return 0


if __name__ == "__main__":
    sys.exit(main())

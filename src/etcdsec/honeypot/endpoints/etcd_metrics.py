"""etcd's own `/metrics` for a persona: the family set captured from the real binary, live values.

`personas/metrics/<persona>.json` holds what `scripts/capture_etcd_metrics.py` read from the real
etcd (names, HELP/TYPE text exact, label sets, order, a fresh server's values). `EtcdMetrics`
renders the families that never change for this sensor once (ids and versions substituted), and
per scrape only the ones that must behave: counters that grow with the traffic the sensor saw, the
revision and db size of the keyspace, the start time, a Go heap that breathes with the uptime.
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import Any

from etcdsec.honeypot.core.identity import Identity
from etcdsec.honeypot.core.persona import Persona
from etcdsec.honeypot.endpoints.go_runtime import FD_LIMIT, METRIC_FIELDS, Load, memstats
from etcdsec.honeypot.endpoints.v2_metrics import V2Traffic, family_rows, store_rows

Row = list[Any]  # [suffix, "{labels}" or "", value]
Series = list[Any]  # histogram: [labels without le, cumulative bucket counts, sum, count]


def go_float(value: float) -> str:
    """strconv.FormatFloat(v, 'g', -1, 64), as Prometheus' Go client prints every sample value."""
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(float(value)))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    exponent = int(exponent) + len("".join(map(str, digit_tuple))) - len(digits)
    point = len(digits) + exponent  # digits.dp in Go's terms
    exp10 = point - 1
    if exp10 < -4 or exp10 >= 6:  # the shortest form switches to %e from an exponent of 6 up
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


@dataclass(frozen=True)
class MetricsData:
    grpc_methods: list[tuple[str, str, str]]  # (service, method, type) in etcd's order
    grpc_codes: list[str]
    families: list[list[Any]]  # [name, type, help, rows | series | "grpc", (les for histograms)]
    # with --enable-v2, once a v2 client was served: [name, type, help, les] (etcdsec.honeypot.endpoints.v2_metrics)
    v2_families: list[list[Any]] = field(default_factory=list)
    # grpc-prometheus before etcd 3.3 registers no series up front: a method shows once it was called
    grpc_lazy: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetricsData:
        return cls([tuple(m) for m in data["grpc_methods"]], list(data["grpc_codes"]), data["families"],
                   data.get("v2_families", []), bool(data.get("grpc_lazy", False)))


@functools.cache
def load_metrics_data(persona: str) -> MetricsData | None:
    """The persona's captured family set (read-only, shared), or None when none was captured."""
    path = resources.files("etcdsec.honeypot").joinpath("personas", "metrics", f"{persona}.json")
    if not path.is_file():
        return None
    return MetricsData.from_json(json.loads(path.read_text()))


def _header(fam: list[Any]) -> str:
    return f"# HELP {fam[0]} {fam[2]}\n# TYPE {fam[0]} {fam[1]}\n"


def _rows_text(name: str, rows: list[Row]) -> str:
    # a summary's _count is a uint64 (printed in full); every other sample a float64
    return "".join(f"{name}{suffix}{labels} {int(value) if suffix == '_count' else go_float(value)}\n"
                   for suffix, labels, value in rows)


def _histogram_text(name: str, les: list[str], series: list[Series]) -> str:
    out = []
    for labels, counts, total, count in series:
        lead = labels + "," if labels else ""
        # bucket counts and the count are uint64 (printed in full), the sum a float64
        out.extend(f'{name}_bucket{{{lead}le="{le}"}} {int(n)}\n' for le, n in zip(les, counts, strict=True))
        tail = "{" + labels + "}" if labels else ""
        out.append(f"{name}_sum{tail} {go_float(total)}\n{name}_count{tail} {int(count)}\n")
    return "".join(out)


def _grpc_rows(data: MetricsData, name: str, counts: Counter[str]) -> list[Row]:
    """grpc-prometheus' series: every method registered at start, by code for `handled`; sorted as
    client_golang sorts a family (by label values, label names in order)."""
    rows = []
    for service, method, kind in data.grpc_methods:
        n = counts.get(f"/{service}/{method}", 0)
        if data.grpc_lazy and not n:
            continue
        if name == "grpc_server_handled_total":
            rows.extend([[code, method, service, kind, n if code == "OK" else 0] for code in data.grpc_codes])
        else:
            rows.append(["", method, service, kind, n])
    rows.sort(key=lambda r: tuple(r[:4]))
    out: list[Row] = []
    for code, method, service, kind, n in rows:
        lead = f'grpc_code="{code}",' if code else ""
        out.append(["", f'{{{lead}grpc_method="{method}",grpc_service="{service}",grpc_type="{kind}"}}', n])
    return out


def _family_text(header: str, name: str, rows: list[Row]) -> str:
    """A family with its samples; client_golang leaves out a family that has none (an unused vector)."""
    return header + _rows_text(name, rows) if rows else ""


def render_static(data: MetricsData) -> str:
    """The captured text as etcd sent it (the capture script checks the round trip with this)."""
    parts = []
    for fam in data.families:
        parts.append(_header(fam))
        if fam[3] == "grpc":
            rows = [[suffix, labels, 0] for suffix, labels, _ in _grpc_rows(data, fam[0], Counter())]
            parts.append(_rows_text(fam[0], rows))
        elif fam[1] == "histogram":
            parts.append(_histogram_text(fam[0], fam[4], fam[3]))
        else:
            parts.append(_rows_text(fam[0], fam[3]))
    return "".join(parts)


# --- what the sensor saw ---------------------------------------------------------------------------
_GATEWAY_SERVICES = {"kv": "etcdserverpb.KV", "watch": "etcdserverpb.Watch", "lease": "etcdserverpb.Lease",
                     "cluster": "etcdserverpb.Cluster", "maintenance": "etcdserverpb.Maintenance",
                     "auth": "etcdserverpb.Auth"}


@dataclass
class Traffic:
    """An event output: the client traffic etcd's counters would have counted (gRPC calls by full
    method, gateway calls mapped to theirs, scrapes and health checks)."""

    grpc: Counter[str] = field(default_factory=Counter)
    gateway: Counter[str] = field(default_factory=Counter)  # "kv/range" -> n, resolved per persona
    http: Counter[str] = field(default_factory=Counter)  # "/metrics", "/health"
    requests: int = 0
    v2: V2Traffic | None = None  # set when the persona serves the v2 keys API

    def __call__(self, event: dict[str, Any]) -> None:
        # every event passes here: the common ones (an http.request for /version, a gRPC call) take
        # the fewest steps; the paths counted all start with "/v" or are /metrics and /health
        eventid = event["eventid"]
        if eventid == "etcdsec.http.request":
            path = event.get("path")
            if not isinstance(path, str):
                return
            self.requests += 1
            if path[:3] == "/v2":
                if self.v2 is not None and (path == "/v2/keys" or path.startswith(("/v2/keys/", "/v2/keys?"))):
                    self.v2.observe(str(event.get("method")), path, event.get("status"), event.get("body"))
                return
            if "?" in path:
                path = path.split("?", 1)[0]
            if path == "/metrics" or path == "/health":
                self.http[path] += 1
            elif path[:3] == "/v3" and path.count("/") == 3 and len(self.gateway) < 256:
                _, _, service, method = path.split("/")
                if service in _GATEWAY_SERVICES:
                    self.gateway[f"{service}/{method}"] += 1
        elif eventid == "etcdsec.grpc.request":
            method = event.get("grpc_method")
            if isinstance(method, str) and len(self.grpc) < 256:  # unknown names are dropped at render
                self.grpc[method] += 1
            self.requests += 1


@dataclass
class Live:
    """One scrape's live figures (memstats computed once, on first use)."""

    now: float
    uptime: float
    revision: int = 0
    compact_revision: int = 0
    keys: int = 0
    key_bytes: int = 0
    db_size: int = 0
    db_in_use: int = 0
    raft_index: int = 0
    writes: int = 0  # revisions since the start: puts, deletes, txns
    calls: Counter[str] = field(default_factory=Counter)  # gRPC full method -> calls
    scrapes: int = 0
    health: int = 0
    watch_streams: int = 0  # open now
    watchers: int = 0
    v2: V2Traffic = field(default_factory=V2Traffic)

    @functools.cached_property
    def memstats(self) -> dict[str, Any]:
        return memstats(Load(self.now, self.uptime, sum(self.calls.values()), self.keys))


# --- live families ------------------------------------------------------------------------------
def _one(fn: Callable[[Live, float], float]) -> Callable[[Live, list[Row]], list[Row]]:
    """A family whose every sample gets fn(live, captured value)."""
    return lambda live, rows: [[s, labels, fn(live, v)] for s, labels, v in rows]


def _scaled(fn: Callable[[Live], float]) -> Callable[[Live, list[Series]], list[Series]]:
    """A histogram whose captured shape is kept and scaled to fn(live) observations."""
    def scale(live: Live, series: list[Series]) -> list[Series]:
        out = []
        for labels, counts, total, count in series:
            want = max(int(fn(live)), count)
            ratio = want / count if count else 0.0
            out.append([labels, [round(n * ratio) for n in counts], total * ratio, want if count else 0])
        return out
    return scale


def _calls(*methods: str) -> Callable[[Live], int]:
    return lambda live: sum(live.calls.get(m, 0) for m in methods)


_RANGES = _calls("/etcdserverpb.KV/Range")
_TXNS = _calls("/etcdserverpb.KV/Txn")
_DELETES = _calls("/etcdserverpb.KV/DeleteRange")


def _memstat(field_name: str) -> Callable[[Live, list[Row]], list[Row]]:
    return _one(lambda live, v: float(live.memstats[field_name]))


def _instrumented_handler(typical: float, whole: bool) -> Callable[[Live, list[Row]], list[Row]]:
    """A summary of prometheus.Handler()'s own scrapes (one observation each, after it is served):
    NaN quantiles until the first; the quantiles and sum of the same observations after."""
    def rows(live: Live, captured: list[Row]) -> list[Row]:
        n = max(0, live.scrapes - 1)
        seen = [typical * (0.93 + 0.29 * ((i * 7) % 5) / 4) for i in range(min(n, 64))]
        seen = [float(round(v)) if whole else round(v, 3) for v in seen]
        ordered = sorted(seen)
        out = []
        for suffix, labels, _ in captured:
            if suffix == "_count":
                out.append([suffix, labels, n])
            elif suffix == "_sum":
                out.append([suffix, labels, round(sum(seen) + typical * (n - len(seen)), 3)])
            elif not ordered:
                out.append([suffix, labels, "NaN"])
            else:
                q = float(label_value(labels, "quantile"))
                out.append([suffix, labels, ordered[min(len(ordered) - 1, int(q * len(ordered)))]])
        return out
    return rows


LIVE_ROWS: dict[str, Callable[[Live, list[Row]], list[Row]]] = {
    "process_start_time_seconds": _one(lambda live, v: round(live.now - live.uptime, 2)),
    "process_cpu_seconds_total": _one(lambda live, v: round(v + live.uptime * 0.004
                                                            + sum(live.calls.values()) * 0.0003, 2)),
    "process_resident_memory_bytes": _one(lambda live, v: float(4096 * int((v + 0.5 * live.db_size
                                                                            + 6e6 * (live.uptime > 60)) // 4096))),
    "etcd_debugging_mvcc_current_revision": _one(lambda live, v: live.revision),
    "etcd_debugging_mvcc_compact_revision": _one(lambda live, v: live.compact_revision or -1),
    "etcd_debugging_mvcc_keys_total": _one(lambda live, v: live.keys),
    "etcd_debugging_mvcc_total_put_size_in_bytes": _one(lambda live, v: live.key_bytes),
    "etcd_mvcc_db_total_size_in_bytes": _one(lambda live, v: live.db_size),
    "etcd_debugging_mvcc_db_total_size_in_bytes": _one(lambda live, v: live.db_size),
    "etcd_mvcc_db_total_size_in_use_in_bytes": _one(lambda live, v: live.db_in_use),
    "etcd_server_proposals_committed_total": _one(lambda live, v: live.raft_index),
    "etcd_server_proposals_applied_total": _one(lambda live, v: live.raft_index),
    "etcd_disk_wal_write_bytes_total": _one(lambda live, v: v + 296 * live.writes),
    # every revision since the start is a put or a delete (a Txn's writes included)
    "etcd_mvcc_put_total": _one(lambda live, v: v + max(0, live.writes - _DELETES(live))),
    "etcd_debugging_mvcc_put_total": _one(lambda live, v: v + max(0, live.writes - _DELETES(live))),
    "etcd_mvcc_range_total": _one(lambda live, v: v + int(live.uptime * 0.4) + _RANGES(live) + _TXNS(live)),
    "etcd_debugging_mvcc_range_total": _one(lambda live, v: v + int(live.uptime * 0.4) + _RANGES(live)
                                            + _TXNS(live)),
    "etcd_mvcc_txn_total": _one(lambda live, v: v + _TXNS(live)),
    "etcd_debugging_mvcc_txn_total": _one(lambda live, v: v + _TXNS(live)),
    "etcd_mvcc_delete_total": _one(lambda live, v: v + _DELETES(live)),
    "etcd_debugging_mvcc_delete_total": _one(lambda live, v: v + _DELETES(live)),
    "etcd_server_client_requests_total": _one(lambda live, v: v + sum(live.calls.values())),
    "etcd_network_client_grpc_received_bytes_total": _one(lambda live, v: v + 81 * sum(live.calls.values())),
    "etcd_network_client_grpc_sent_bytes_total": _one(lambda live, v: v + 114 * sum(live.calls.values())
                                                      + 60 * live.keys),
    "etcd_server_health_success": _one(lambda live, v: v + live.health),
    "etcd_debugging_store_reads_total": lambda live, rows: store_rows("reads", rows, live.v2),
    "etcd_debugging_store_writes_total": lambda live, rows: store_rows("writes", rows, live.v2),
    # the same v2 store counters under their 2.x names
    "etcd_store_reads_total": lambda live, rows: store_rows("reads", rows, live.v2),
    "etcd_store_writes_total": lambda live, rows: store_rows("writes", rows, live.v2),
    "etcd_wal_last_index_saved": _one(lambda live, v: live.raft_index),
    # promhttp counts a scrape once it is served: the first one reads 0
    "promhttp_metric_handler_requests_total": lambda live, rows: [
        [s, labels, v + max(0, live.scrapes - 1) if labels == '{code="200"}' else v] for s, labels, v in rows],
    # etcd 3.2's prometheus.Handler() instruments /metrics itself (observed once a scrape is served)
    **{name: _instrumented_handler(typical, whole) for name, typical, whole in
       (("http_request_duration_microseconds", 1850.0, False), ("http_request_size_bytes", 74.0, True),
        ("http_response_size_bytes", 4112.0, True))},
    "http_requests_total": lambda live, rows: (
        [["", '{code="200",handler="prometheus",method="get"}', live.scrapes - 1]] if live.scrapes > 1 else []),
    # etcd runs a few goroutines per watch stream (send/recv loops, the stream's own)
    "go_goroutines": _one(lambda live, v: v + (int(live.now) // 7) % 5 + 3 * live.watch_streams),
    "etcd_debugging_mvcc_watch_stream_total": _one(lambda live, v: live.watch_streams),
    "etcd_debugging_mvcc_watcher_total": _one(lambda live, v: live.watchers),
    "etcd_debugging_lease_granted_total": _one(lambda live, v: v + _calls("/etcdserverpb.Lease/LeaseGrant")(live)),
    "etcd_debugging_lease_revoked_total": _one(lambda live, v: v + _calls("/etcdserverpb.Lease/LeaseRevoke")(live)),
    "etcd_debugging_lease_renewed_total": _one(lambda live, v: v + _calls("/etcdserverpb.Lease/LeaseKeepAlive")(live)),
    "go_memstats_last_gc_time_seconds": _one(lambda live, v: live.memstats["LastGC"] / 1e9),
    "process_max_fds": _one(lambda live, v: FD_LIMIT),
    "os_fd_limit": _one(lambda live, v: FD_LIMIT),
    **{name: _memstat(field_name) for name, field_name in METRIC_FIELDS.items()},
}

# Summary: go_gc_duration_seconds (quantile rows, then _sum and _count): the count follows the GCs.
LIVE_SUMMARY = {"go_gc_duration_seconds"}

LIVE_HISTOGRAMS: dict[str, Callable[[Live, list[Series]], list[Series]]] = {
    "etcd_disk_wal_fsync_duration_seconds": _scaled(lambda live: 8 + live.writes),
    "etcd_wal_fsync_durations_seconds": _scaled(lambda live: 8 + live.writes),  # its 2.x name
    "etcd_disk_backend_commit_duration_seconds": _scaled(lambda live: 5 + live.writes * 0.7 + live.uptime / 60),
    "etcd_debugging_disk_backend_commit_rebalance_duration_seconds": _scaled(
        lambda live: 5 + live.writes * 0.7 + live.uptime / 60),
    "etcd_debugging_disk_backend_commit_spill_duration_seconds": _scaled(
        lambda live: 5 + live.writes * 0.7 + live.uptime / 60),
    "etcd_debugging_disk_backend_commit_write_duration_seconds": _scaled(
        lambda live: 5 + live.writes * 0.7 + live.uptime / 60),
}


def _gc_summary(live: Live, rows: list[Row]) -> list[Row]:
    """go_gc_duration_seconds: quantiles of the recent pauses, the sum and count of all."""
    stats = live.memstats
    pauses = sorted(p for p in stats["PauseNs"] if p) or [0]
    out = []
    for suffix, labels, value in rows:
        if suffix == "_count":
            value = stats["NumGC"]
        elif suffix == "_sum":
            value = stats["PauseTotalNs"] / 1e9
        else:
            q = float(label_value(labels, "quantile"))
            value = pauses[min(len(pauses) - 1, int(q * (len(pauses) - 1) + 0.5))] / 1e9
        out.append([suffix, labels, value])
    return out


def label_value(labels: str, name: str) -> str:
    return labels.split(f'{name}="', 1)[1].split('"', 1)[0]


def _identity_rows(name: str, rows: list[Row], persona: Persona, ident: Identity) -> list[Row]:
    """Labels that name this member and version: substituted once per sensor."""
    minor = ".".join(persona.cluster_version.split(".")[:2])
    labels = {"etcd_server_id": f'{{server_id="{ident.member_id:x}"}}',
              "etcd_server_version": f'{{server_version="{persona.version}"}}',
              "etcd_cluster_version": f'{{cluster_version="{minor}"}}',
              "etcd_server_go_version": f'{{server_go_version="{persona.go_version}"}}',
              "go_info": f'{{version="{persona.go_version}"}}'}.get(name)
    return [[s, labels, v] for s, _, v in rows] if labels else rows


class EtcdMetrics:
    """One sensor's `/metrics` (static text cached per sensor; ids differ between sensors)."""

    def __init__(self, data: MetricsData, persona: Persona, identity: Identity) -> None:
        self.data = data
        self._gateway_names: dict[str, str] | None = None
        self._parts: list[str | Callable[[Live], str]] = []
        static: list[str] = []
        v2_names = {fam[0] for fam in data.v2_families} if persona.v2_enabled else set()
        # client_golang gathers families sorted by name: the on-use ones go where their name sorts
        ordered = sorted([*data.families, *(f for f in data.v2_families if f[0] in v2_names)], key=lambda f: f[0])
        for fam in ordered:
            name, kind = fam[0], fam[1]
            header = _header(fam)
            live_fn = self._v2_part(fam, header) if name in v2_names else self._live_part(fam, header)
            if live_fn is not None:
                if static:
                    self._parts.append("".join(static))
                    static = []
                self._parts.append(live_fn)
            elif kind == "histogram":
                static.append(header + _histogram_text(name, fam[4], fam[3]))
            else:
                static.append(header + _rows_text(name, _identity_rows(name, fam[3], persona, identity)))
        if static:
            self._parts.append("".join(static))

    def _live_part(self, fam: list[Any], header: str) -> Callable[[Live], str] | None:
        name, rows = fam[0], fam[3]
        if rows == "grpc":
            return lambda live: _family_text(header, name, _grpc_rows(self.data, name, live.calls))
        if name in LIVE_ROWS:
            fn = LIVE_ROWS[name]
            return lambda live: _family_text(header, name, fn(live, rows))
        if name in LIVE_SUMMARY:
            return lambda live: header + _rows_text(name, _gc_summary(live, rows))
        if name in LIVE_HISTOGRAMS:
            hist = LIVE_HISTOGRAMS[name]
            return lambda live: header + _histogram_text(name, fam[4], hist(live, rows))
        return None

    @staticmethod
    def _v2_part(fam: list[Any], header: str) -> Callable[[Live], str]:
        name, kind, les = fam[0], fam[1], fam[3]

        def part(live: Live) -> str:
            rows = family_rows(name, les, live.v2)
            if not rows:
                return ""  # a label vector nobody used yet: etcd leaves the family out
            return header + (_histogram_text(name, les, rows) if kind == "histogram" else _rows_text(name, rows))
        return part

    def calls(self, traffic: Traffic) -> Counter[str]:
        """gRPC calls by full method, the gateway's counted as the gRPC calls they become."""
        if self._gateway_names is None:
            self._gateway_names = {}
            for service, method, _ in self.data.grpc_methods:
                short = service.removeprefix("etcdserverpb.").lower()
                for name in (method.lower(), method.lower().removeprefix(short)):
                    self._gateway_names.setdefault(f"{short}/{name}", f"/{service}/{method}")
        out = Counter(traffic.grpc)
        for path, n in traffic.gateway.items():
            full = self._gateway_names.get(path)
            if full is not None:
                out[full] += n
        return out

    def render(self, live: Live) -> bytes:
        return "".join(p if isinstance(p, str) else p(live) for p in self._parts).encode()

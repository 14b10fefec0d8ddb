"""A live Go process's runtime.MemStats, as etcd shows it in /debug/vars and go_memstats_* metrics.

One model for both endpoints, so a scanner that reads both sees one process: the heap grows
between collections and falls back after each (Go forces one every 2 minutes when idle), the
malloc and free counters only climb, and Sys is the sum of its parts as Go keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from etcdsec.honeypot.core.persona import go_release

GC_PERIOD_S = 120.0  # forcegcperiod: an idle Go process collects every 2 minutes
PAGE = 8192
FD_LIMIT = 1_048_576  # a container's nofile limit (containerd, Docker): what kubeadm's etcd pod gets

# runtime.MemStats.BySize: its first 61 size classes, as etcd 3.4 and 3.5 print them (Go 1.16-1.19)
SIZE_CLASSES = (0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320,
                352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792,
                2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472,
                9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432)
# Before Go 1.16 there was no 24-byte class, so the 61 printed end one class later (measured on etcd
# 3.3.25 built with go1.15.9).
SIZE_CLASSES_GO115 = (*(c for c in SIZE_CLASSES if c != 24), 19072)


def size_classes(go_version: str) -> tuple[int, ...]:
    return SIZE_CLASSES if go_release(go_version) >= (1, 16) else SIZE_CLASSES_GO115


def by_size(memstats: dict[str, Any], classes: tuple[int, ...]) -> list[dict[str, int]]:
    """MemStats.BySize: the process's mallocs and frees spread over `classes`, small sizes busiest."""
    weights = [1.0 / (1 + size / 64) for size in classes[1:]]
    scale = sum(weights)
    mallocs, frees = memstats["Mallocs"], memstats["Frees"]
    return [{"Size": 0, "Mallocs": 0, "Frees": 0}] + [
        {"Size": size, "Mallocs": int(mallocs * w / scale), "Frees": int(frees * w / scale)}
        for size, w in zip(classes[1:], weights, strict=True)]


@dataclass(frozen=True)
class Load:
    """What drives the process: time since its start, requests served, keys held."""

    now: float  # wall clock, seconds
    uptime: float
    calls: int = 0
    keys: int = 0


def _up(value: float, step: int) -> int:
    return -(-int(value) // step) * step


def gc_count(load: Load) -> int:
    return 2 + int(load.uptime // GC_PERIOD_S) + load.calls // 5000


def _pause_ns(n: int) -> int:
    return 31_000 + (n * 7_919) % 90_000  # tens of microseconds, as a small heap's pauses are


def memstats(load: Load) -> dict[str, Any]:
    """runtime.MemStats in Go's field order (the JSON expvar prints)."""
    phase = (load.uptime % GC_PERIOD_S) / GC_PERIOD_S
    live_heap = 5_600_000 + 180 * load.keys + min(40 * load.calls, 4_000_000)
    heap_alloc = _up(live_heap * (1.0 + 0.6 * phase), 8)
    heap_inuse = _up(heap_alloc * 1.12, PAGE)
    heap_sys = max(66_224_128, _up(heap_inuse + 8_000_000, 64 * PAGE))
    heap_idle = heap_sys - heap_inuse
    heap_released = max(0, heap_idle - heap_idle % PAGE - 64 * PAGE)
    heap_objects = heap_alloc // 212
    mallocs = 40_855 + int(load.uptime * 190) + 31 * load.calls
    frees = mallocs - heap_objects
    stack = 884_736 + (32_768 if load.uptime > 60 else 0)
    mspan_inuse = 63_512 + 136 * (heap_objects // 1024)
    mspan_sys = max(81_920, _up(mspan_inuse, 16_384))
    fixed = {"MCacheInuse": 2_400, "MCacheSys": 16_384, "BuckHashSys": 1_447_590, "GCSys": 4_977_144,
             "OtherSys": 654_186}
    sys = heap_sys + stack + mspan_sys + fixed["MCacheSys"] + fixed["BuckHashSys"] + fixed["GCSys"] + \
        fixed["OtherSys"]
    gcs = gc_count(load)
    last_gc = int((load.now - phase * GC_PERIOD_S) * 1e9)
    pause_ns, pause_end = [0] * 256, [0] * 256
    for back in range(min(gcs, 256)):  # the ring buffer: GC n sits at (n + 255) % 256
        n = gcs - back
        pause_ns[(n + 255) % 256] = _pause_ns(n)
        pause_end[(n + 255) % 256] = last_gc - int(back * GC_PERIOD_S * 1e9)
    return {
        "Alloc": heap_alloc, "TotalAlloc": heap_alloc + 4_000_000 + int(load.uptime * 21_000) + 2_400 * load.calls,
        "Sys": sys, "Lookups": 0, "Mallocs": mallocs, "Frees": frees, "HeapAlloc": heap_alloc,
        "HeapSys": heap_sys, "HeapIdle": heap_idle, "HeapInuse": heap_inuse, "HeapReleased": heap_released,
        "HeapObjects": heap_objects, "StackInuse": stack, "StackSys": stack, "MSpanInuse": mspan_inuse,
        "MSpanSys": mspan_sys, "MCacheInuse": fixed["MCacheInuse"], "MCacheSys": fixed["MCacheSys"],
        "BuckHashSys": fixed["BuckHashSys"], "GCSys": fixed["GCSys"], "OtherSys": fixed["OtherSys"],
        "NextGC": 2 * live_heap, "LastGC": last_gc,
        "PauseTotalNs": sum(_pause_ns(n) for n in range(max(1, gcs - 4095), gcs + 1)),
        "PauseNs": pause_ns, "PauseEnd": pause_end, "NumGC": gcs, "NumForcedGC": 0,
        # above 1e-4, where Go's encoding/json and Python's repr print a float alike
        "GCCPUFraction": round(0.0003 + 0.05 / (1 + load.uptime / 10), 9),
        "EnableGC": True, "DebugGC": False,  # BySize: by_size(), for the persona's Go (debug_vars)
    }


# go_memstats_* metric -> MemStats field (client_golang's Go collector)
METRIC_FIELDS = {
    "go_memstats_alloc_bytes": "Alloc", "go_memstats_alloc_bytes_total": "TotalAlloc",
    "go_memstats_buck_hash_sys_bytes": "BuckHashSys", "go_memstats_frees_total": "Frees",
    "go_memstats_gc_cpu_fraction": "GCCPUFraction", "go_memstats_gc_sys_bytes": "GCSys",
    "go_memstats_heap_alloc_bytes": "HeapAlloc", "go_memstats_heap_idle_bytes": "HeapIdle",
    "go_memstats_heap_inuse_bytes": "HeapInuse", "go_memstats_heap_objects": "HeapObjects",
    "go_memstats_heap_released_bytes": "HeapReleased", "go_memstats_heap_sys_bytes": "HeapSys",
    "go_memstats_heap_released_bytes_total": "HeapReleased",  # its name before client_golang 0.9
    "go_memstats_lookups_total": "Lookups", "go_memstats_mallocs_total": "Mallocs",
    "go_memstats_mcache_inuse_bytes": "MCacheInuse", "go_memstats_mcache_sys_bytes": "MCacheSys",
    "go_memstats_mspan_inuse_bytes": "MSpanInuse", "go_memstats_mspan_sys_bytes": "MSpanSys",
    "go_memstats_next_gc_bytes": "NextGC", "go_memstats_other_sys_bytes": "OtherSys",
    "go_memstats_stack_inuse_bytes": "StackInuse", "go_memstats_stack_sys_bytes": "StackSys",
    "go_memstats_sys_bytes": "Sys",
}

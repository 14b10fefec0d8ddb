"""Scale-out benchmark for `etcdsec scan --workers/--cluster` (docs/scale.md, docs/benchmarks.md):

1. PostgreSQL result rows per second with 1, 2, 4, 8 concurrent writer processes, each writing
   500-row batches of realistic probe results (with findings) and its shard's resume cursor, exactly
   as shard tasks do (ScanStore.write_batch).
2. The Dask scheduler on loopback (`dask scheduler` + 2 `dask worker --nthreads 1`): trivial tasks
   per second, and the overhead of one etcdsec shard task (the same /18 sweep cut into 2 and into
   258 tasks, local cluster and --cluster).
3. The in-flight bound of a connect scan, simulated on loopback: listeners with a full accept queue
   drop every SYN, so each connect waits out its timeout (one process, then --workers 2).
4. The IPv4-in-24h sizing, from these figures and that bound.

SAFETY: PostgreSQL, the scheduler, the workers and every scanned address are on 127.0.0.0/8.
Every loop is bounded. `.venv/bin/python bench/scale_bench.py [--out FILE] [--skip-pg] [--skip-dask]`
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
sys.path.insert(0, str(ROOT))  # the repo root: tests.support


def loopback(host: str) -> str:
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing non-loopback address {host}")
    return host


# --- a Dask cluster and PostgreSQL on loopback: the test kit's, as the tests start them -----------
@contextlib.contextmanager
def dask_cluster(workers: int = 2) -> Iterator[str]:
    """`dask scheduler` and `workers` x `dask worker --nthreads 1` on a free 127.x address; the workers
    import etcdsec before the first task (--preload), so no timed task pays for that."""
    from tests.support.dask_cluster import DaskCluster

    cluster = DaskCluster(workers, preload="etcdsec.scan.shard_task")
    loopback(cluster.ip)
    with cluster:
        yield cluster.address


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    from tests.support.postgres import PostgresServer

    with PostgresServer() as pg:
        loopback(pg.ip)
        yield pg.url()


# --- 1. PostgreSQL rows/s with concurrent writers -----------------------------------------------
BATCH = 500


def _sample_result(ip: str):
    from etcdsec.model import Finding, Member, ProbeResult

    r = ProbeResult(target=f"{ip}:2379", ip=ip, port=2379, reachable=True, is_etcd=True, role="client",
                    version="3.5.9", cluster_version="3.5.0", cluster_id="cdf818194e3a8c32",
                    member_id="8e9e05c52164694d", members=[Member("kube-master-1", "8e9e05c52164694d",
                                                                  [f"http://{ip}:2380"], [f"http://{ip}:2379"])],
                    exposed=True, severity="critical", scheme="http")
    r.findings += [Finding("ETCD-ANON-READ-V3", "critical", "Anyone can read every key through the v3 API",
                           "POST /v3/kv/range (count_only) answered without credentials; 312 keys",
                           "Enable client certificate auth or v3 RBAC"),
                   Finding("ETCD-NO-TLS", "high", "Client traffic is not encrypted", "http://", "Serve TLS")]
    return r


def _pg_writer(url: str, scan_id: int, shards: int, index: int, batches: int, barrier, out) -> None:
    from etcdsec.scan.permutation import Shard
    from etcdsec.scan.stored import open_shard
    from etcdsec.store.scans import EndpointRow, ScanStore
    from etcdsec.store.shared import open_shared_engine

    store = ScanStore(open_shared_engine(url))
    scan = store.get_scan(scan_id)
    prog = open_shard(store, scan, Shard(index, shards), steps=batches * BATCH)
    rows = [[EndpointRow(_sample_result(f"10.{index}.{(b * BATCH + n) // 250}.{(b * BATCH + n) % 250 + 1}"))
             for n in range(BATCH)] for b in range(batches)]
    barrier.wait(120)
    started = time.monotonic()
    for b, batch in enumerate(rows):
        for n in range(BATCH):
            prog.cursor.launch(b * BATCH + n)
            prog.cursor.finish(b * BATCH + n)
        prog.swept += BATCH
        prog.open += BATCH
        store.write_batch(prog.row(), batch)
    out.put(time.monotonic() - started)


def pg_rows_per_second(writers_list: list[int], batches: int) -> list[dict]:
    from etcdsec.scan.exclusions import build_exclusions
    from etcdsec.scan.stored import stored_targets
    from etcdsec.scan.targets import build_target_set
    from etcdsec.store.engine import open_engine
    from etcdsec.store.scans import ScanStore

    figures = []
    with postgres() as url:
        store = ScanStore(open_engine(url))
        store.ensure_schema()
        targets = build_target_set(["10.0.0.0/8"], (2379,), build_exclusions())[0]
        ctx = multiprocessing.get_context("spawn")
        for writers in writers_list:
            scan = store.create_or_join(name=None, args={}, targets=stored_targets(targets), seed=1,
                                        shard_count=writers, options={})
            barrier, out = ctx.Barrier(writers + 1), ctx.Queue()
            procs = [ctx.Process(target=_pg_writer, args=(url, scan.id, writers, k, batches, barrier, out))
                     for k in range(writers)]
            for p in procs:
                p.start()
            barrier.wait(300)
            started = time.monotonic()
            for p in procs:
                p.join(600)
            wall = time.monotonic() - started
            rows = writers * batches * BATCH
            figures.append({"writers": writers, "rows": rows, "seconds": round(wall, 2),
                            "rows_per_s": round(rows / wall), "findings_per_s": round(2 * rows / wall),
                            "ok": all(p.exitcode == 0 for p in procs)})
            print("postgres writers:", figures[-1], flush=True)
    return figures


# --- 2. the scheduler and the per-task overhead ---------------------------------------------------
def scheduler_tasks_per_second(address: str, count: int) -> dict:
    import operator

    from distributed import Client

    with Client(address, timeout="10s") as c:
        started = time.monotonic()
        futures = c.map(operator.neg, range(count), pure=False)
        c.gather(futures)
        wall = time.monotonic() - started
    return {"tasks": count, "seconds": round(wall, 2), "tasks_per_s": round(count / wall)}


def etcdsec_scan(args: list[str]) -> float:
    started = time.monotonic()
    proc = subprocess.run([PY, "-m", "etcdsec", "scan", *args, "-q"], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"etcdsec scan failed: {proc.stderr.strip()}")
    return time.monotonic() - started


def task_overhead(where: list[str], db: str, cidr: str, few: int, many: int) -> dict:
    """The same --no-probe sweep as `few` and as `many` shard tasks: the difference per extra task."""
    times = {}
    for tasks in (few, many, few, many):  # alternated twice: the machine is shared
        t = etcdsec_scan([cidr, "-p", "23790", "--no-probe", "--db", db, "--seed", "1", "--tasks", str(tasks), *where])
        times.setdefault(tasks, []).append(round(t, 2))
    best = {k: min(v) for k, v in times.items()}
    return {"tasks": times, "ms_per_task": round(1000 * (best[many] - best[few]) / (many - few), 1)}


# --- 3. the in-flight bound, simulated on loopback --------------------------------------------------
def connect_bound(work: Path, concurrency: int = 128, timeout: float = 1.0, addresses: int = 128,
                  ports: int = 16) -> dict:
    """Little's law, checked: listeners whose accept queue is full drop every SYN, so each connect
    waits out its whole timeout, as most Internet addresses make it wait. Predicted: concurrency /
    timeout pairs per second per worker, whatever the CPU, so N workers give N times that."""
    import re
    import resource
    import socket

    from etcdsec.testbed.addresses import free_loopback_ip

    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    first = 23800
    port_range = tuple(range(first, first + ports))
    ips = [loopback(free_loopback_ip(port_range)) for _ in range(addresses)]
    held = []
    for ip in ips:
        for port in port_range:
            listener = socket.socket()
            listener.bind((ip, port))
            listener.listen(0)  # room for one connection: the filler below takes it
            filler = socket.create_connection((ip, port), timeout=5)
            held += [listener, filler]
    probe = socket.socket()
    probe.settimeout(0.3)
    dropped = probe.connect_ex((ips[0], first)) != 0  # the next SYN is dropped: a timeout, not a refusal
    probe.close()
    targets = work / "blackholes.txt"
    targets.write_text("\n".join(ips) + "\n")
    pairs = addresses * ports
    out: dict = {"pairs": pairs, "concurrency": concurrency, "timeout_s": timeout, "syn_dropped": dropped,
                 "predicted_per_worker_pairs_per_s": round(concurrency / timeout)}
    try:
        for label, extra in (("one_process", []), ("workers_2", ["--workers", "2"])):
            proc = subprocess.run([PY, "-m", "etcdsec", "scan", f"@{targets}", "-p", f"{first}-{first + ports - 1}",
                                   "--no-probe", "--db", str(work / f"bound-{label}.db"), "--concurrency",
                                   str(concurrency), "--connect-timeout", str(timeout), "--seed", "1", *extra],
                                  capture_output=True, text=True, timeout=600)
            m = re.search(r"pairs swept, (\d+) open.* in ([\d.]+)s", proc.stdout)
            if proc.returncode or not m:
                raise SystemExit(f"bound sweep failed: {proc.stdout} {proc.stderr}")
            seconds = float(m.group(2))
            out[label] = {"open": int(m.group(1)), "sweep_seconds": seconds, "pairs_per_s": round(pairs / seconds)}
            print(f"connect bound, {label}:", out[label], flush=True)
    finally:
        for sock in held:
            sock.close()
    return out


# --- 4. IPv4 in 24 hours --------------------------------------------------------------------------
def ipv4_sizing(ports: int = 2, concurrency: int = 10_000, timeout_s: float = 2.0, open_fraction: float = 1e-4,
                scheduler_tasks_per_s: float | None = None, pg_rows_per_s: float | None = None) -> dict:
    from etcdsec.scan.exclusions import build_exclusions, wide_exclusions
    from etcdsec.scan.shards import MAX_PAIRS_PER_TASK, plan_tasks
    from etcdsec.scan.targets import build_target_set

    # What `etcdsec scan 0.0.0.0/0 --confirm-wide` scans: the default and the IANA special-purpose exclusions.
    targets = build_target_set(["0.0.0.0/0"], tuple(range(2379, 2379 + ports)), build_exclusions(),
                               wide_exclusions=wide_exclusions())[0]
    pairs = targets.size
    needed = pairs / 86_400
    # A connect scan on the Internet: most addresses never answer, so each attempt holds its slot for
    # the whole timeout. One worker then completes at most concurrency / timeout pairs per second.
    per_worker = concurrency / timeout_s
    workers = -(-needed // per_worker)
    tasks = plan_tasks(pairs, int(workers), 16)
    out = {"public_addresses": targets.address_count, "pairs": pairs, "pairs_per_s_needed": round(needed),
           "per_worker_pairs_per_s": round(per_worker), "workers": int(workers),
           "syn_packets_per_s": round(needed * 2),  # a SYN and one retransmission for most pairs
           "tasks": tasks, "pairs_per_task": -(-pairs // tasks), "task_limit": MAX_PAIRS_PER_TASK,
           "result_rows_per_s": round(needed * open_fraction, 1)}
    if scheduler_tasks_per_s:
        # The scheduler limits when tasks end faster than it can hand them out.
        out["smallest_task_before_scheduler_limits_pairs"] = round(needed / scheduler_tasks_per_s)
    if pg_rows_per_s:
        out["postgres_headroom"] = round(pg_rows_per_s / max(out["result_rows_per_s"], 1e-9))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writers", default="1,2,4,8")
    ap.add_argument("--batches", type=int, default=20, help="500-row batches per writer")
    ap.add_argument("--tasks", type=int, default=2000, help="trivial tasks for the scheduler figure")
    ap.add_argument("--octet", type=int, default=43, help="the overhead sweep is 127.OCTET.0.0/18")
    ap.add_argument("--skip-pg", action="store_true")
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--skip-bound", action="store_true", help="no in-flight bound simulation")
    ap.add_argument("--out")
    a = ap.parse_args()
    if not 1 <= a.octet <= 254:
        raise SystemExit("--octet must be 1-254")
    cidr = f"127.{a.octet}.0.0/18"
    loopback(cidr.split("/")[0])
    figures: dict = {"load_at_start": os.getloadavg()}
    pg_best = None
    if not a.skip_pg:
        figures["postgres"] = pg_rows_per_second([int(w) for w in a.writers.split(",")], a.batches)
        pg_best = max(f["rows_per_s"] for f in figures["postgres"])
    sched = None
    if not a.skip_dask:
        work = Path(tempfile.mkdtemp(prefix="etcdsec-scale-bench-"))
        with dask_cluster(2) as address:
            figures["scheduler"] = scheduler_tasks_per_second(address, a.tasks)
            sched = figures["scheduler"]["tasks_per_s"]
            print("scheduler:", figures["scheduler"], flush=True)
            figures["task_overhead_local"] = task_overhead(["--workers", "2"], str(work / "o.db"), cidr, 2, 258)
            print("shard task overhead, local cluster:", figures["task_overhead_local"], flush=True)
            with postgres() as url:
                figures["task_overhead_cluster"] = task_overhead(["--cluster", address], url, cidr, 2, 258)
            print("shard task overhead, --cluster:", figures["task_overhead_cluster"], flush=True)
        shutil.rmtree(work, ignore_errors=True)
    if not a.skip_bound:
        work = Path(tempfile.mkdtemp(prefix="etcdsec-scale-bound-"))
        figures["connect_bound"] = connect_bound(work)
        shutil.rmtree(work, ignore_errors=True)
    figures["ipv4_24h"] = ipv4_sizing(scheduler_tasks_per_s=sched, pg_rows_per_s=pg_best)
    figures["load_at_end"] = os.getloadavg()
    print(json.dumps(figures, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

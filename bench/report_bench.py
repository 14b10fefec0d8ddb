"""Report benchmark: `etcdsec report` (JSON and the HTML page) over a stored scan of 1,000,000
etcd endpoints, side by side with what a researcher would do instead: a hand-written GROUP BY in the
sqlite3 shell, jq over the endpoints exported as JSON lines, and counting row by row in Python
(what `etcdsec report` did before it aggregated in SQL). Prints wall time, peak memory and output size.

The scan is synthetic (tests/report/synthetic.py): rows are written straight into a SQLite file
in a temp directory; no packet is sent anywhere. Every loop is bounded by --endpoints.

    .venv/bin/python bench/report_bench.py [--endpoints 1000000] [--small 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
# Runs in its own process: Linux keeps a process's peak RSS across fork and exec, so the bench
# itself stays small and each measured tool starts from a small parent.
MAKE_DB = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests" / "report")!r})
from synthetic import fill_scan
from etcdsec.store.engine import open_engine
from etcdsec.store.scans import ScanStore
fill_scan(ScanStore(open_engine(sys.argv[1])), int(sys.argv[2]), "bench")
"""

ROW_BY_ROW = """
import sys, collections
from etcdsec.store.engine import open_engine
from etcdsec.store.scans import ScanStore
store = ScanStore(open_engine(sys.argv[1]))
versions, orgs = collections.Counter(), collections.Counter()
for r, meta in store.endpoint_results(1):
    if r.reachable and r.is_etcd:
        versions[r.version] += 1
        orgs[meta.get("org") or "unknown"] += 1
print(len(versions), len(orgs))
"""


def run(cmd: list[str], stdout: Path | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak resident memory (MiB) of one process,
    its own rusage via wait4. On a shared machine the CPU time is the steadier figure."""
    start = time.perf_counter()
    with open(stdout or os.devnull, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def make_db(path: Path, n: int) -> float:
    seconds, _, _ = run([PY, "-c", MAKE_DB, str(path), str(n)])
    return seconds


def measure(db: Path, n: int, tmp: Path) -> list[tuple[str, float, float, int, int]]:
    rows = []
    etcdsec = [PY, "-m", "etcdsec", "report", "--db", str(db)]
    for label, extra, out in (("etcdsec report --format json", ["--format", "json"], tmp / f"r{n}.json"),
                              ("etcdsec report --format html", ["--format", "html", "-o", str(tmp / f"r{n}.html")],
                               tmp / f"r{n}.html")):
        rows.append((label, *run([*etcdsec, *extra], None if "-o" in extra else out), out.stat().st_size))
    if shutil.which("sqlite3"):
        query = ("SELECT version, count(*) FROM endpoints WHERE scan_id=1 AND reachable AND is_etcd GROUP BY 1; "
                 "SELECT org, count(*) FROM endpoints WHERE scan_id=1 AND reachable AND is_etcd GROUP BY 1;")
        out = tmp / "sqlite3.txt"
        rows.append(("sqlite3 shell: GROUP BY version, org", *run(["sqlite3", str(db), query], out),
                     out.stat().st_size))
    if shutil.which("jq") and shutil.which("sqlite3"):
        export = tmp / "endpoints.jsonl"
        wall_x, cpu_x, mib_x = run(["sqlite3", str(db), "SELECT result FROM endpoints WHERE scan_id=1"], export)
        out = tmp / "jq.json"
        wall, cpu, mib = run(["jq", "-n", "reduce inputs as $r ({}; .[$r.version // \"unknown\"] += 1)",
                              str(export)], out)
        rows.append(("sqlite3 export + jq: count versions", wall_x + wall, cpu_x + cpu, max(mib, mib_x),
                     out.stat().st_size))
        export.unlink()
    out = tmp / "rowbyrow.txt"
    rows.append(("row by row in Python (old report): versions, orgs", *run([PY, "-c", ROW_BY_ROW, str(db)], out),
                 out.stat().st_size))
    return rows


def write_events(path: Path, n: int) -> None:
    """n honeypot events as the sensor writes them: recon and dumps from many sources, 5 per session."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({
                "timestamp": f"2026-11-27T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000000Z",
                "eventid": "etcdsec.http.request", "sensor": "bench", "session": f"s{i // 5}",
                "src_ip": f"127.1.{i // 256 % 256}.{i % 256}", "src_port": 40000 + i % 1000, "dst_ip": "127.88.0.1",
                "dst_port": 2379, "method": "GET", "path": "/v2/keys/?recursive=true" if i % 2 else "/version",
                "user_agent": "curl/7.88.1", "status": 200}) + "\n")


def measure_events(db: Path, n: int, tmp: Path) -> list[tuple[str, float, float, int, int]]:
    """The honeypot part from a JSON-lines file (`--events`), next to jq counting sources in it."""
    events = tmp / f"events-{n}.jsonl"
    write_events(events, n)
    rows = []
    out = tmp / "events-report.json"
    rows.append((f"etcdsec report --events ({n:,} lines, every figure)",
                 *run([PY, "-m", "etcdsec", "report", "--db", str(db), "--format", "json", "--events", str(events)],
                      out), out.stat().st_size))
    if shutil.which("jq"):
        out = tmp / "events-jq.txt"  # the shell idiom; jq's own `reduce ... .[$ip] += 1` is quadratic here
        rows.append((f"jq -r .src_ip | sort | uniq -c ({n:,} lines)",
                     *run(["sh", "-c", f"jq -r .src_ip '{events}' | sort | uniq -c | sort -rn | head -20"], out),
                     out.stat().st_size))
    events.unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000, help="a small scan too: the page must not grow")
    parser.add_argument("--events", type=int, default=200_000, help="honeypot event lines for --events (0: skip)")
    parser.add_argument("--keep", metavar="DIR", help="keep the databases and outputs here")
    args = parser.parse_args()
    if not 1 <= args.small <= args.endpoints <= 5_000_000 or not 0 <= args.events <= 5_000_000:
        raise SystemExit("need 1 <= --small <= --endpoints <= 5,000,000 and 0 <= --events <= 5,000,000")
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="report-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        for n in sorted({args.small, args.endpoints}):
            db = tmp / f"scan-{n}.db"
            if not db.exists():
                print(f"writing a synthetic scan of {n:,} endpoints ...", flush=True)
                print(f"  {make_db(db, n):.1f} s, {db.stat().st_size / 2**20:,.0f} MiB database", flush=True)
            print(f"\n{n:,} etcd endpoints (SQLite, {db.stat().st_size / 2**20:,.0f} MiB)")
            print(f"  {'tool':<52} {'wall s':>8} {'CPU s':>8} {'peak MiB':>9} {'output KiB':>11}")
            rows = measure(db, n, tmp)
            if n == args.small and args.events:
                rows += measure_events(db, args.events, tmp)
            for label, wall, cpu, mib, size in rows:
                print(f"  {label:<52} {wall:>8.2f} {cpu:>8.2f} {mib:>9,} {size / 1024:>11,.0f}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

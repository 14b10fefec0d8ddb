"""Scan benchmark: a loopback test bed of >= 1,000 etcd-like endpoints in one /16, swept and probed by
`etcdsec scan`, and side by side in the same run by `nmap -sT` (same /16), `nmap -sV` and kube-hunter
(on a subset). Prints addresses swept per second, endpoints probed per second, peak memory and each
tool's accuracy against the known truth. Scale-out (docs/scale.md): the sweep and the full scan again
with `--workers N` (a local Dask cluster), and with `--cluster` on a `dask scheduler`
+ N `dask worker` processes started on loopback, against a PostgreSQL started on loopback (the local
cluster is run against the same PostgreSQL for a like-for-like row).

SAFETY: every address is in 127.0.0.0/8 (checked before any tool runs); kube-hunter runs under a
guard that refuses any non-loopback connection or name lookup. Every loop is bounded.

    .venv/bin/python bench/scan_bench.py [--emulated 1000] [--real 4] [--subset 48] [--profile]
        [--workers 2] [--skip-scale] [--skip-cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from loopback_guard import GUARD  # shared with probe_bench.py
from scale_bench import dask_cluster, postgres

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

def kube_hunter_python() -> Path | None:
    """A Python with kube_hunter importable: $KUBE_HUNTER_PYTHON, bench/.tools (setup-tools.sh), /tmp/kh-venv."""
    for cand in (os.environ.get("KUBE_HUNTER_PYTHON"), str(Path(__file__).parent / ".tools/bin/python"),
                 "/tmp/kh-venv/bin/python"):
        if cand and Path(cand).exists() and subprocess.run(
                [cand, "-c", "import kube_hunter"], capture_output=True).returncode == 0:
            return Path(cand)
    return None


PORT = 2379


# --- the emulated endpoints ----------------------------------------------------------------------
def _http(status: str, body: bytes, ctype: str = "application/json", head: bool = False,
          server: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nDate: Fri, 27 Nov 2026 00:00:00 GMT\r\n"
            f"Content-Length: {len(body)}\r\n").encode() + server + b"\r\n" + (b"" if head else body)


class _Http(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive server; `route(method, path, body) -> response bytes`."""

    def __init__(self, route) -> None:
        self.route = route
        self.buf = b""

    def connection_made(self, transport) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > 1 << 16 or not self.buf[:1].isupper():
            # Not HTTP (a TLS ClientHello, say): answer 400 and hang up, as Go's net/http and nginx do.
            self.t.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         b"Connection: close\r\n\r\n400 Bad Request")
            self.t.close()
            return
        for _ in range(64):  # bounded pipelining
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) < 3:
                self.t.close()
                return
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1].strip() or 0)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            self.t.write(self.route(parts[0], parts[1], body))
            if "connection: close" in head.lower():
                self.t.close()
                return


def etcd_like(index: int, ip: str):
    cluster, member = f"{0x1000 + index:x}", f"{0x9000 + index:x}"
    header = {"cluster_id": cluster, "member_id": member, "revision": "7", "raft_term": "2"}
    members = [{"ID": member, "name": f"emu-{index}", "peerURLs": [f"http://{ip}:2380"],
                "clientURLs": [f"http://{ip}:{PORT}"]}]
    v3 = {
        "/v3/maintenance/status": {"header": header, "version": "3.5.9", "dbSize": "20480", "leader": member,
                                   "raftIndex": "9", "raftTerm": "2", "raftAppliedIndex": "9",
                                   "dbSizeInUse": "16384"},
        "/v3/cluster/member/list": {"header": header, "members": members},
        "/v3/kv/range": {"header": header, "count": "0"},
        "/v3/auth/status": {"header": header, "enabled": False, "authRevision": "1"},
    }
    version = json.dumps({"etcdserver": "3.5.9", "etcdcluster": "3.5.0"}).encode()

    def route(method: str, path: str, body: bytes) -> bytes:
        path = path.split("?", 1)[0]
        head = method == "HEAD"
        if path == "/version":
            return _http("200 OK", version, head=head)
        if path == "/health":
            return _http("200 OK", b'{"health":"true","reason":""}', head=head)
        if path.startswith("/v3/") and method == "POST":
            return _http("200 OK", json.dumps(v3.get(path, {"header": header})).encode())
        return _http("404 Not Found", b"404 page not found\n", "text/plain; charset=utf-8", head=head)

    return route


def not_etcd(_index: int, _ip: str):
    page = b"<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center></body></html>"

    def route(method: str, _path: str, _body: bytes) -> bytes:
        return _http("404 Not Found", page, "text/html", head=method == "HEAD", server=b"Server: nginx\r\n")

    return route


class _Tarpit(asyncio.Protocol):
    """Accepts and never answers; drops the connection after 60 s."""

    def connection_made(self, transport) -> None:
        asyncio.get_running_loop().call_later(60, transport.close)

    def data_received(self, data: bytes) -> None:
        pass


def _serve(spec: dict[str, list[str]], ready) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def protocol(route):
        return lambda: _Http(route)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for i, ip in enumerate(spec["etcd"]):
            await loop.create_server(protocol(etcd_like(i, ip)), ip, PORT, backlog=512)
        for i, ip in enumerate(spec["http"]):
            await loop.create_server(protocol(not_etcd(i, ip)), ip, PORT, backlog=512)
        for ip in spec["tarpit"]:
            await loop.create_server(_Tarpit, ip, PORT, backlog=512)
        ready.send(True)
        await asyncio.sleep(3600)  # bounded: the bench terminates us long before

    asyncio.run(main())


# --- the bed -------------------------------------------------------------------------------------
@dataclass
class Bed:
    cidr: str
    real: list[str]
    emulated: list[str]
    http: list[str]
    tarpit: list[str]
    servers: list = field(default_factory=list)

    @property
    def etcd(self) -> set[str]:
        return set(self.real) | set(self.emulated)

    @property
    def open(self) -> set[str]:
        return self.etcd | set(self.http) | set(self.tarpit)


def loopback_only(addresses) -> None:
    for a in addresses:
        net = ipaddress.ip_network(a, strict=False)
        if not net.subnet_of(ipaddress.ip_network("127.0.0.0/8")):
            raise SystemExit(f"refusing non-loopback address {a}")


def listening_in(cidr: str) -> int:
    """Listeners already on PORT inside our /16 (someone else's): the truth would be wrong."""
    net = ipaddress.ip_network(cidr)
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    count = 0
    for line in out.splitlines():
        local = line.split()[3]
        host, _, port = local.rpartition(":")
        with contextlib.suppress(ValueError):
            if port == str(PORT) and ipaddress.ip_address(host.strip("[]")) in net:
                count += 1
    return count


@contextlib.contextmanager
def test_bed(second_octet: int, n_real: int, n_emulated: int, n_http: int, n_tarpit: int, seed: int) -> Iterator[Bed]:
    sys.path.insert(0, str(ROOT / "src"))
    from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

    cidr = f"127.{second_octet}.0.0/16"
    if listening_in(cidr):
        raise SystemExit(f"{cidr} already has listeners on {PORT}: pick another --octet")
    rng = random.Random(seed)
    picks = rng.sample(range(1, 65535), n_real + n_emulated + n_http + n_tarpit)
    ips = [f"127.{second_octet}.{p >> 8}.{p & 255}" for p in picks]
    ips = [ip for ip in ips if not ip.endswith((".0", ".255"))] + [
        f"127.{second_octet}.255.{k}" for k in range(1, 40)]
    real, ips = ips[:n_real], ips[n_real:]
    emulated, ips = ips[:n_emulated], ips[n_emulated:]
    http, ips = ips[:n_http], ips[n_http:]
    tarpit = ips[:n_tarpit]
    bed = Bed(cidr, real, emulated, http, tarpit)
    loopback_only([cidr, *bed.open])
    ready_recv, ready_send = multiprocessing.Pipe(duplex=False)
    proc = multiprocessing.Process(target=_serve, args=({"etcd": emulated, "http": http, "tarpit": tarpit},
                                                        ready_send), daemon=True)
    proc.start()
    if not ready_recv.poll(120):
        raise SystemExit("emulated endpoints did not start")
    try:
        for i, ip in enumerate(real):
            version = "3.4" if i % 2 else "3.5"
            bed.servers.append(EtcdServer(EtcdConfig(version=version, ip=ip, name=f"kube-master-{i}")).start())
        yield bed
    finally:
        for server in bed.servers:
            server.stop()
        proc.terminate()
        proc.join(10)


# --- running tools -------------------------------------------------------------------------------
@dataclass
class Run:
    tool: str
    seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: str = ""
    stderr: str = ""
    cpu_s: float = 0.0


def run_tool(name: str, argv: list[str], timeout: float, **kw) -> Run:
    """Wall time and the child's own peak RSS (sampled VmHWM), bounded by `timeout`."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        return _run_tool(name, argv, timeout, out, err, **kw)


def _high_water_kb(pid: int) -> int:
    """VmHWM of a running process: its own peak RSS (wait4's ru_maxrss also counts the parent's memory
    at fork time on Linux, so it is not used)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _run_tool(name: str, argv: list[str], timeout: float, out, err, **kw) -> Run:
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, **kw)
    deadline = started + timeout
    peak_kb = 0
    while True:
        peak_kb = max(peak_kb, _high_water_kb(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    return Run(name, seconds, peak_kb / 1024, proc.returncode, out.read(), err.read(),
               cpu_s=usage.ru_utime + usage.ru_stime)


def costs(r: Run) -> dict:
    return {"seconds": round(r.seconds, 2), "peak_rss_mb": round(r.peak_rss_mb, 1), "cpu_s": round(r.cpu_s, 2)}


def etcdsec(args: list[str]) -> list[str]:
    return [PY, "-m", "etcdsec", *args]


def stored_results(db: str) -> list[dict]:
    proc = subprocess.run(etcdsec(["report", "--db", db, "--export", "endpoints", "--format", "jsonl"]),
                          capture_output=True, text=True, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def nmap_open(xml_text: str) -> dict[str, dict]:
    """ip -> {service, product, version} for open ports in nmap -oX output."""
    found = {}
    with contextlib.suppress(ElementTree.ParseError):
        for host in ElementTree.fromstring(xml_text).iter("host"):
            ip = host.find("address").get("addr")
            for port in host.iter("port"):
                state, service = port.find("state"), port.find("service")
                if state is not None and state.get("state") == "open":
                    found[ip] = {k: (service.get(k) if service is not None else None)
                                 for k in ("name", "product", "version", "method")}
    return found





def kube_hunter_found(stdout: str) -> set[str]:
    start = stdout.find("{")
    if start < 0:
        return set()
    try:
        report = json.loads(stdout[start:])
    except json.JSONDecodeError:
        return set()
    hosts = set()
    for service in report.get("services", []):
        if "etcd" in str(service.get("service", "")).lower():
            hosts.add(str(service.get("location", "")).rsplit(":", 1)[0])
    for vuln in report.get("vulnerabilities", []):
        if "etcd" in json.dumps(vuln).lower():
            hosts.add(str(vuln.get("location", "")).rsplit(":", 1)[0])
    return hosts


def accuracy(found: set[str], truth: set[str], universe: set[str]) -> dict:
    tp = len(found & truth)
    return {"found": tp, "of": len(truth), "false_positives": len(found & (universe - truth)),
            "recall": round(tp / len(truth), 4) if truth else None}


def full_scan(bed: Bed, universe: set[str], db: Path | str, a, extra: list[str], seed: int = 2) -> dict:
    """Sweep + probe of the /16 (the store read back for accuracy)."""
    r = run_tool("etcdsec scan", etcdsec(["scan", bed.cidr, "-p", str(PORT), "--db", str(db), "--seed", str(seed),
                                          "-q", "--timeout", "5", "--concurrency", str(a.concurrency), *extra]), 1800)
    rows = stored_results(str(db)) if r.returncode == 0 else []
    etcd_found = {row["ip"] for row in rows if row.get("is_etcd")}
    # cpu_s counts the command and the local workers it reaped, not the workers of a --cluster.
    return {"seconds": round(r.seconds, 2), "cpu_s": round(r.cpu_s, 2), "addresses_per_s": round(65536 / r.seconds),
            "endpoints_probed": len(rows), "probed_per_s": round(len(rows) / r.seconds, 1),
            "etcd": accuracy(etcd_found, bed.etcd, universe), "rc": r.returncode,
            "stderr": r.stderr.strip()[-300:] if r.returncode else ""}


def cluster_runs(bed: Bed, universe: set[str], a) -> dict:
    """Local cluster vs `--cluster` (a scheduler and N workers on loopback), both on one PostgreSQL."""
    out: dict = {}
    with postgres() as url, dask_cluster(a.workers) as address:
        # Like for like: the same task count on both (per-task costs are in bench/scale_bench.py).
        tasks = ["--tasks", str(a.workers)]
        for label, extra in ((f"local_workers_{a.workers}", ["--workers", str(a.workers), *tasks]),
                             (f"cluster_{a.workers}_workers", ["--cluster", address, *tasks])):
            sweep = run_tool(label, etcdsec(["scan", bed.cidr, "-p", str(PORT), "--no-probe", "--db", url, "-q",
                                             "--seed", "5", "--concurrency", str(a.concurrency), *extra]), 900)
            out[f"{label}_sweep"] = {"seconds": round(sweep.seconds, 2), "addresses_per_s":
                                     round(65536 / sweep.seconds), "rc": sweep.returncode}
            out[f"{label}_scan"] = full_scan(bed, universe, url, a, extra, seed=6)
            print(f"{label}:", out[f"{label}_sweep"], out[f"{label}_scan"], flush=True)
    return out


# --- main ----------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--octet", type=int, default=42, help="the bed is 127.OCTET.0.0/16")
    ap.add_argument("--real", type=int, default=4, help="real etcd processes (3.5 and 3.4 alternating)")
    ap.add_argument("--emulated", type=int, default=1000, help="emulated etcd-like endpoints")
    ap.add_argument("--http", type=int, default=40, help="non-etcd HTTP services")
    ap.add_argument("--tarpit", type=int, default=4)
    ap.add_argument("--subset", type=int, default=48, help="endpoints given to nmap -sV and kube-hunter")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--concurrency", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="alternated sweep runs per tool (median kept)")
    ap.add_argument("--profile", action="store_true", help="also profile the sweep (cProfile, top 15)")
    ap.add_argument("--skip-nmap", action="store_true")
    ap.add_argument("--skip-kube-hunter", action="store_true")
    ap.add_argument("--kube-hunter-timeout", type=float, default=300)
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--workers", type=int, default=2, help="worker processes for the scale-out rows")
    ap.add_argument("--skip-scale", action="store_true", help="no --workers / --cluster rows")
    ap.add_argument("--skip-cluster", action="store_true", help="no --cluster rows (needs PostgreSQL)")
    ap.add_argument("--skip-subset", action="store_true", help="no subset runs (nmap -sV, kube-hunter)")
    ap.add_argument("--big-sweep", action="store_true", help="also sweep the /14 around the bed (once per tool)")
    a = ap.parse_args()
    if not 1 <= a.octet <= 254:
        raise SystemExit("--octet must be 1-254")
    # SIGTERM unwinds like Ctrl-C, so the bed's etcd processes and emulators are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    figures: dict = {"bed": {}, "runs": {}}
    work = Path(tempfile.mkdtemp(prefix="etcdsec-scan-bench-"))
    with test_bed(a.octet, a.real, a.emulated, a.http, a.tarpit, a.seed) as bed:
        figures["bed"] = {"cidr": bed.cidr, "addresses": 65536, "real_etcd": len(bed.real),
                          "emulated_etcd": len(bed.emulated), "http": len(bed.http), "tarpit": len(bed.tarpit)}
        print(f"bed: {bed.cidr}: {len(bed.real)} real etcd, {len(bed.emulated)} emulated etcd, "
              f"{len(bed.http)} HTTP, {len(bed.tarpit)} tarpits, the rest closed (port {PORT})", flush=True)
        universe = bed.open

        # 1. the sweep alone, etcdsec vs nmap -sT on the same /16, alternated `--repeat` times (the
        #    machine is shared: the median of alternated runs is fairer than one run each)
        sweeps: dict[str, list[dict]] = {"etcdsec_sweep": [], "nmap_sT": []}
        # (`--workers 1` is the one-process scan itself: no cluster for one worker)
        scale = [] if a.skip_scale else [(f"etcdsec_sweep_workers_{a.workers}", ["--workers", str(a.workers)])]
        for attempt in range(a.repeat):
            for tool, extra in [("etcdsec_sweep", []), *scale]:
                db = str(work / f"sweep{attempt}-{tool}.db")
                r = run_tool(tool, etcdsec(["scan", bed.cidr, "-p", str(PORT), "--no-probe", "--db", db,
                                            "--seed", str(attempt), "-q", "--concurrency", str(a.concurrency),
                                            *extra]), 900)
                found = {row["ip"] for row in stored_results(db)} if r.returncode == 0 else set()
                sweeps.setdefault(tool, []).append({**costs(r), "addresses_per_s": round(65536 / r.seconds),
                                                    "open": accuracy(found, universe, universe), "rc": r.returncode})
                print(f"{tool}:", sweeps[tool][-1], flush=True)
            if a.skip_nmap or not shutil.which("nmap"):
                continue
            xml = work / "nmap-sT.xml"
            r = run_tool("nmap -sT", ["nmap", "-sT", "-Pn", "-n", "-T4", "-p", str(PORT), "-oX", str(xml), bed.cidr],
                         1800)
            found = set(nmap_open(xml.read_text())) if xml.exists() else set()
            sweeps["nmap_sT"].append({**costs(r), "addresses_per_s": round(65536 / r.seconds),
                                      "open": accuracy(found, universe, universe), "rc": r.returncode})
            print("nmap -sT -T4:", sweeps["nmap_sT"][-1], flush=True)
        for tool, runs in sweeps.items():
            if runs:
                median = sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]
                figures["runs"][tool] = {**median, "all_seconds": [run["seconds"] for run in runs]}

        # 1b. a sweep 4x larger (the /14 around the bed), where a cluster's start-up weighs less
        if not a.skip_scale and a.big_sweep:
            big = f"127.{a.octet & ~3}.0.0/14"
            loopback_only([big])
            big_runs = [("etcdsec_sweep_14", []),
                        (f"etcdsec_sweep_14_workers_{a.workers}", ["--workers", str(a.workers)])]
            for tool, extra in big_runs:
                db = str(work / f"big-{tool}.db")
                r = run_tool(tool, etcdsec(["scan", big, "-p", str(PORT), "--no-probe", "--db", db, "--seed", "1", "-q",
                                            "--concurrency", str(a.concurrency), *extra]), 900)
                found = {row["ip"] for row in stored_results(db)} if r.returncode == 0 else set()
                figures["runs"][tool] = {**costs(r), "addresses_per_s": round(262144 / r.seconds),
                                         "open": accuracy(found & universe, universe, universe), "rc": r.returncode}
                print(f"{tool}:", figures["runs"][tool], flush=True)
            if not a.skip_nmap and shutil.which("nmap"):
                xml = work / "nmap-sT-14.xml"
                r = run_tool("nmap -sT /14", ["nmap", "-sT", "-Pn", "-n", "-T4", "-p", str(PORT), "-oX", str(xml), big],
                             3600)
                found = set(nmap_open(xml.read_text())) if xml.exists() else set()
                figures["runs"]["nmap_sT_14"] = {**costs(r), "addresses_per_s": round(262144 / r.seconds),
                                                 "open": accuracy(found & universe, universe, universe),
                                                 "rc": r.returncode}
                print("nmap -sT /14:", figures["runs"]["nmap_sT_14"], flush=True)

        # 2. the full scan: sweep + probe of every open port
        db = str(work / "scan.db")
        r = run_tool("etcdsec scan", etcdsec(["scan", bed.cidr, "-p", str(PORT), "--db", db, "--seed", "2", "-q",
                                              "--timeout", "5", "--concurrency", str(a.concurrency)]), 1800)
        rows = stored_results(db) if r.returncode == 0 else []
        etcd_found = {row["ip"] for row in rows if row.get("is_etcd")}
        figures["runs"]["etcdsec_scan"] = {
            "seconds": round(r.seconds, 2), "addresses_per_s": round(65536 / r.seconds),
            "endpoints_probed": len(rows), "probed_per_s": round(len(rows) / r.seconds, 1),
            **costs(r), "etcd": accuracy(etcd_found, bed.etcd, universe),
            "rc": r.returncode}
        print("etcdsec scan:", figures["runs"]["etcdsec_scan"], flush=True)
        if not a.skip_scale:
            full = full_scan(bed, universe, work / "scan-workers.db", a, ["--workers", str(a.workers)])
            figures["runs"][f"etcdsec_scan_workers_{a.workers}"] = full
            print(f"etcdsec scan --workers {a.workers}:", full, flush=True)
        if not a.skip_scale and not a.skip_cluster:
            figures["cluster"] = cluster_runs(bed, universe, a)

        # 3. a subset for the slow tools: real etcd, emulated, HTTP, tarpits
        if a.skip_subset:
            a.skip_nmap = a.skip_kube_hunter = True
        rng = random.Random(a.seed)
        n_emu = max(1, a.subset - len(bed.real) - 8 - 2)
        subset = bed.real + rng.sample(bed.emulated, min(n_emu, len(bed.emulated))) + bed.http[:8] + bed.tarpit[:2]
        loopback_only(subset)
        sub_truth = bed.etcd & set(subset)
        figures["subset"] = {"endpoints": len(subset), "etcd": len(sub_truth)}
        db = str(work / "subset.db")
        r = run_tool("etcdsec subset", etcdsec(["scan", *subset, "-p", str(PORT), "--db", db, "-q",
                                                "--timeout", "5"]), 600)
        found = {row["ip"] for row in stored_results(db) if row.get("is_etcd")} if r.returncode == 0 else set()
        figures["runs"]["etcdsec_subset"] = {**costs(r),
                                             "etcd": accuracy(found, sub_truth, set(subset)), "rc": r.returncode}
        print("etcdsec subset:", figures["runs"]["etcdsec_subset"], flush=True)
        if not a.skip_nmap and shutil.which("nmap"):
            xml = work / "nmap-sV.xml"
            r = run_tool("nmap -sV", ["nmap", "-sV", "-Pn", "-n", "-T4", "-p", str(PORT), "-oX", str(xml), *subset],
                         1800)
            services = nmap_open(xml.read_text()) if xml.exists() else {}
            # `method="table"` is nmap naming the port from nmap-services (2379 is "etcd-client"
            # whatever answers); only a `probed` match is an identification.
            found = {ip for ip, s in services.items()
                     if s["method"] == "probed" and "etcd" in f"{s['name']} {s['product']}".lower()}
            by_port = {ip for ip, s in services.items() if "etcd" in str(s["name"]).lower()}
            figures["runs"]["nmap_sV"] = {
                **costs(r),
                "etcd": accuracy(found, sub_truth, set(subset)),
                "etcd_by_port_name": accuracy(by_port, sub_truth, set(subset)),
                "open": accuracy(set(services), set(subset), set(subset)),
                "said": sorted({f"{s['name']}/{s['product']}/{s['method']}" for s in services.values()}),
                "rc": r.returncode}
            print("nmap -sV:", figures["runs"]["nmap_sV"], flush=True)
        kube_hunter = None if a.skip_kube_hunter else kube_hunter_python()
        if kube_hunter is not None:
            # Without the tarpits: kube-hunter waits on them and never reports (see the probe bench).
            hunted = [ip for ip in subset if ip not in bed.tarpit]
            r = run_tool("kube-hunter", [str(kube_hunter), "-c", GUARD, "--remote", *hunted, "--report", "json",
                                         "--log", "none", "--network-timeout", "3"], a.kube_hunter_timeout)
            found = kube_hunter_found(r.stdout)
            figures["runs"]["kube_hunter"] = {**costs(r),
                                              "endpoints": len(hunted), "etcd": accuracy(found, sub_truth, set(hunted)),
                                              "finished": r.returncode == 0, "rc": r.returncode}
            print("kube-hunter:", figures["runs"]["kube_hunter"], flush=True)
        elif not a.skip_kube_hunter:
            print("kube-hunter: not installed (bash bench/setup-tools.sh)", flush=True)

        if a.profile:
            prof = work / "sweep.prof"
            run_tool("profile", [PY, "-m", "cProfile", "-o", str(prof), "-m", "etcdsec", "scan", bed.cidr, "-p",
                                 str(PORT), "--no-probe", "--db", str(work / "prof.db"), "-q"], 900)
            import pstats

            print("sweep profile (cumulative, top 15):")
            pstats.Stats(str(prof)).sort_stats("tottime").print_stats(15)
    shutil.rmtree(work, ignore_errors=True)
    if a.out:
        Path(a.out).write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

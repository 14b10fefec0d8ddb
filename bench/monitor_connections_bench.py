"""How many new connections per second `etcdsec monitor connections` keeps up with, per source.

A real etcd 3.5.1 on a loopback address; a load process opens and closes bounded numbers of TCP
connections to its client port at set rates, from 200 distinct 127.x source addresses, closed either
with RST (nothing lingers: like a remote client that is gone) or FIN (the client keeps TIME_WAIT, like a
client on this host). The monitor runs as the real command with no baseline, so each source gets a card;
the cards' final counts (flushed at SIGTERM) are the connections it saw, /proc gives its CPU. Beside
it: `ss -tn` polled every second, what an admin scripts instead. Loopback only; every round is
bounded in connections (ROUND_MAX) and time (ROUND_S).

    .venv/bin/python bench/monitor_connections_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from etcdsec.testbed.addresses import free_loopback_ip
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

ROUND_MAX = 30_000  # connections per round at most
ROUND_S = 6.0  # seconds of load per round at most
SOURCES = 200
ROUNDS = [("packet", "100ms"), ("sockdiag", "100ms"), ("sockdiag", "10ms")]
TICK = os.sysconf("SC_CLK_TCK")


def generate(ip: str, rate: float, total: int, base: str, rst: bool) -> None:
    """The load: `total` connections at `rate` per second (0: as fast as it can), round robin over sources."""
    linger = b"\x01\x00\x00\x00\x00\x00\x00\x00"
    start = time.monotonic()
    made = 0
    for i in range(total):
        if rate:
            wait = start + i / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        if time.monotonic() - start > ROUND_S:
            break
        s = socket.socket()
        s.bind((f"{base}.{2 + i % SOURCES}", 0))
        try:
            s.connect((ip, 2379))
            made += 1
        except OSError:
            pass
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.close()
    print(made, time.monotonic() - start, flush=True)


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class SsPoller:
    """`ss -tn` every second: the distinct connections to the port it ever saw."""

    def __init__(self, ip: str, base: str) -> None:
        self.ip, self.base, self.keys, self.cpu = ip, base + ".", set(), 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            before = os.times()
            out = subprocess.run(["ss", "-tnH", "state", "all", f"dst {self.ip}:2379"], capture_output=True,
                                 text=True, timeout=10).stdout
            after = os.times()
            self.cpu += (after.children_user - before.children_user) + (after.children_system - before.children_system)
            self.keys.update(k for k in (line.split()[-2] for line in out.splitlines() if line.strip())
                             if k.startswith(self.base))  # this round's clients only
            self.stop.wait(1.0)


def load_seen(events: str, base: str) -> int:
    """Connections from the load's sources that the monitor counted: each source's card, last count."""
    counts: dict[str, int] = {}
    with open(events) as fh:
        for line in fh:
            card = json.loads(line)["card"]
            if card["src_ip"].startswith(base + "."):
                counts[card["src_ip"]] = max(counts.get(card["src_ip"], 0), card["count"])
    return sum(counts.values())


def one_round(etcd: EtcdServer, source: str, interval: str, rate: float, total: int, rst: bool) -> dict:
    events = tempfile.mktemp(prefix="etcdsec-bench-", suffix=".jsonl")
    mon = subprocess.Popen([sys.executable, "-m", "etcdsec", "monitor", "connections", "--watch", etcd.client_addr,
                            "--source", source, "--interval", interval, "--duration", "120s", "--quiet",
                            "--probe-every", "1h", "--update-every", "1h", "--events", events],
                           stdout=subprocess.PIPE, text=True)
    try:
        mon.stdout.readline()
        time.sleep(1.5)  # its first exposure probe done
        before_cpu = cpu_s(mon.pid)
        base = free_loopback_ip(()).rsplit(".", 1)[0]
        ss = SsPoller(etcd.ip, base)
        t0 = time.monotonic()
        gen = subprocess.run([sys.executable, __file__, "--gen", etcd.ip, str(rate), str(total), base, str(int(rst))],
                             capture_output=True, text=True, timeout=ROUND_S + 30)
        made, secs = gen.stdout.split()
        time.sleep(1.2)  # the last poll and the last SYNs read
        ss.stop.set()
        ss.thread.join(5)
        cpu, wall = cpu_s(mon.pid) - before_cpu, time.monotonic() - t0
    finally:
        mon.terminate()  # flushes every card's final count
        tail = mon.communicate(timeout=60)[0].strip().splitlines()
    print(f"  monitor: {tail[-1] if tail else '-'}", file=sys.stderr, flush=True)
    got = load_seen(events, base)
    os.unlink(events)
    made_n = int(made)
    name = f"{source}" + (f" ({interval})" if source == "sockdiag" else "")
    return {"source": name, "close": "RST" if rst else "FIN",
            "rate": f"{made_n / float(secs):,.0f}", "made": made_n, "seen": got, "missed": made_n - got,
            "cpu": cpu, "cpu_pct": 100 * cpu / wall, "ss_seen": len(ss.keys), "ss_cpu": ss.cpu}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--gen", nargs=5)
    args = ap.parse_args()
    if args.gen:
        ip, rate, total, base, rst = args.gen
        generate(ip, float(rate), int(total), base, rst == "1")
        return
    # FIN rounds at the set rate only: each leaves its connections in TIME_WAIT for 60 s, and a host
    # past net.ipv4.tcp_max_tw_buckets closes the next ones without it (then they leave no trace, as RST)
    plan = [(True, 1000, 3000), (True, 0, ROUND_MAX), (False, 1000, 3000)] if not args.quick else [
        (True, 1000, 2000), (False, 1000, 2000)]
    rows = []
    with EtcdServer(EtcdConfig(version="3.5")) as etcd:
        print("| source | close | conn/s | made | seen | missed | monitor CPU s (% of a core) | ss -tn 1 s saw |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for rst, rate, total in plan:
            for source, interval in ROUNDS:
                rows.append(one_round(etcd, source, interval, rate, total, rst))
                r = rows[-1]
                print(f"| {r['source']} | {r['close']} | {r['rate']} | {r['made']:,} | {r['seen']:,} | "
                      f"{r['missed']:,} | {r['cpu']:.2f} ({r['cpu_pct']:.0f} %) | {r['ss_seen']:,} |", flush=True)


if __name__ == "__main__":
    main()

"""Socket inode -> owning process, the way osquery's process_open_sockets does it: /proc/PID/fd links.

Another user's /proc/PID/fd is unreadable without root, so unprivileged this finds only our own processes.
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Collection

from etcdsec.monitor.connections.model import Process

MAX_PROCS = 20_000  # processes looked at per lookup
MAX_FDS = 100_000  # descriptors looked at per lookup
BUDGET_S = 0.05  # and CPU time: the watch must not stall on a host with many processes (the client stays unnamed)
WALL_FACTOR = 10  # wall time may run to 10x the CPU budget: on a loaded host the scan waits its turn, not give up


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def processes_of(inodes: Collection[int], uids: dict[int, int], proc: str = "/proc",
                 budget_s: float = BUDGET_S) -> dict[int, Process]:
    """The process holding each socket inode that can be found (bounded scan; first holder wins)."""
    wanted = {f"socket:[{i}]": i for i in inodes if i}
    found: dict[int, Process] = {}
    fds_seen = 0
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()][:MAX_PROCS]
    except OSError:
        return found
    cpu_deadline = time.thread_time() + budget_s
    wall_deadline = time.monotonic() + budget_s * WALL_FACTOR
    for pid in pids:
        if len(found) == len(wanted) or fds_seen > MAX_FDS or time.thread_time() > cpu_deadline \
                or time.monotonic() > wall_deadline:
            break
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone, or another user's
            continue
        fds_seen += len(fds)
        for fd in fds:
            try:
                inode = wanted.get(os.readlink(f"{fd_dir}/{fd}"))
            except OSError:
                continue
            if inode is not None and inode not in found:
                found[inode] = Process(int(pid), _comm(proc, pid), user_name(uids.get(inode, -1)))
    return found


def _comm(proc: str, pid: str) -> str:
    try:
        with open(f"{proc}/{pid}/comm", "rb") as fh:
            return fh.read(64).decode("utf-8", "replace").strip()
    except OSError:
        return "?"

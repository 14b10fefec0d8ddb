"""Live etcd and kube-apiserver processes, read from /proc: argv, environment, and their root."""

from __future__ import annotations

import os
from pathlib import Path

from etcdsec.audit.collector import Collector
from etcdsec.audit.model import Origin, Source


def live_processes(pids: set[int] | None = None, proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """(pid, program) for running etcd and kube-apiserver processes (only `pids` when given)."""
    found: list[tuple[int, str]] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or (pids is not None and int(entry.name) not in pids):
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        program = argv[0].decode(errors="replace").rsplit("/", 1)[-1] if argv and argv[0] else ""
        if program == "etcd" and len(argv) > 1 and argv[1] in (b"grpc-proxy", b"gateway"):
            continue  # a proxy, not a member
        if program in ("etcd", "kube-apiserver"):
            found.append((int(entry.name), program))
    return sorted(found)


def add_process(collector: Collector, pid: int, program: str, proc: Path = Path("/proc")) -> None:
    """Audit one live process from /proc: its argv, its environment, the files it names."""
    base = proc / str(pid)
    shown = f"{base}"
    try:
        argv = [w.decode(errors="replace") for w in (base / "cmdline").read_bytes().split(b"\0")]
    except OSError as exc:
        why = exc.strerror or str(exc)
        collector.sources.append(Source(shown + "/cmdline", "process", "unreadable", why))
        return
    argv = argv[:-1] if argv and argv[-1] == "" else argv
    collector.sources.append(Source(shown + "/cmdline", "process", "read", " ".join(argv)[:300]))
    root = Path("/")
    try:
        if os.readlink(base / "root") != "/":
            root = base / "root"  # a container: its files are under /proc/PID/root
    except OSError:
        pass
    argv_origin = Origin(process=f"pid {pid} argv")
    args = [(w, argv_origin) for w in argv[1:]]
    if program == "kube-apiserver":
        collector.add_apiserver(f"kube-apiserver (pid {pid})", argv_origin, root, args, pid=pid)
        return
    env: list[tuple[str, str, Origin]] = []
    try:
        raw = (base / "environ").read_bytes()
    except OSError as exc:
        collector.sources.append(Source(shown + "/environ", "process", "unreadable",
                                        f"{exc.strerror or exc}: ETCD_* variables unknown"))
    else:
        collector.sources.append(Source(shown + "/environ", "process", "read"))
        env_origin = Origin(process=f"pid {pid} environ")
        for item in raw.split(b"\0"):
            key, sep, value = item.decode(errors="replace").partition("=")
            if sep:
                env.append((key, value, env_origin))
    collector.add_etcd(f"etcd (pid {pid})", argv_origin, root, args, env, pid=pid)

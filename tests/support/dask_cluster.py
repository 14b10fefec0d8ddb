"""A real Dask cluster on loopback, started the way a user starts one: `dask scheduler` and
`dask worker` processes (each worker under its nanny, one thread)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from etcdsec.testbed.addresses import free_loopback_ip

DASK = str(Path(sys.executable).parent / "dask")


class DaskCluster:
    def __init__(self, workers: int = 2, python: str | None = None, preload: str | None = None) -> None:
        self.ip = free_loopback_ip((8786,))
        self.address = f"tcp://{self.ip}:8786"
        self.workers = workers
        self.python = python  # a worker environment other than ours (None: this venv's `dask worker`)
        self.preload = ["--preload", preload] if preload else []  # a module each worker imports at start
        self.dir = Path(tempfile.mkdtemp(prefix="etcdsec-dask-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        out = open(self.dir / log, "wb")  # noqa: SIM115 (lives as long as the process)
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start(self) -> DaskCluster:
        # Without a dashboard the HTTP server (health, metrics) still listens, by default on every
        # interface (the scheduler on 8787): on our loopback address and a free port instead.
        http = ["--no-dashboard", "--dashboard-address", f"{self.ip}:0"]
        self._spawn([DASK, "scheduler", "--host", self.ip, "--port", "8786", *http], "scheduler.log")
        worker = [self.python, "-m", "distributed.cli.dask_worker"] if self.python else [DASK, "worker"]
        for k in range(self.workers):
            self._spawn([*worker, self.address, "--nthreads", "1", "--host", self.ip, *http,
                         "--name", f"w{k}", *self.preload], f"worker{k}.log")
        try:
            self.wait_for_workers(self.workers)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self):
        from distributed import Client

        return Client(self.address, timeout="20s")

    def wait_for_workers(self, n: int, limit: float = 120.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                with self.client() as c:
                    c.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
                    return
            except (OSError, TimeoutError):
                time.sleep(0.5)
        raise RuntimeError(f"dask workers did not come up: {self.logs()}")

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> pid of the worker process itself (the nanny's child)."""
        with self.client() as c:
            return c.run(os.getpid)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in self.dir.glob("*.log"))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 15)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> DaskCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def environment_without_etcdsec(root: Path) -> str:
    """A Python environment with this venv's packages except etcdsec: a venv whose one .pth file points
    at a directory of symlinks to everything in our site-packages but etcdsec. Returns its python."""
    import site
    import venv

    ours = Path(next(p for p in site.getsitepackages() if p.endswith("site-packages")))
    mirror = root / "mirror"
    mirror.mkdir(parents=True)
    for entry in ours.iterdir():
        lowered = entry.name.lower()
        if "etcdsec" in lowered or entry.suffix == ".pth":
            continue
        (mirror / entry.name).symlink_to(entry)
    venv.EnvBuilder(with_pip=False).create(root / "venv")
    site_dir = next((root / "venv" / "lib").glob("python3*/site-packages"))
    (site_dir / "mirror.pth").write_text(str(mirror) + "\n")
    return str(root / "venv" / "bin" / "python")

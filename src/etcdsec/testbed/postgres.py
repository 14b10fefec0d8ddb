"""A throwaway PostgreSQL server on loopback for store tests (trust auth, temp data dir)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from etcdsec.testbed.addresses import free_loopback_ip


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise FileNotFoundError("PostgreSQL not installed: apt-get install postgresql")
    return Path(found[-1]).parent


class PostgresServer:
    """`with PostgresServer() as pg: open_engine(pg.url)`. Runs as `postgres` when we are root."""

    def __init__(self, port: int = 5432) -> None:
        self.bin = postgres_bin()
        self.port = port
        self.ip = free_loopback_ip((port,))
        self.dir = Path(tempfile.mkdtemp(prefix="etcdsec-pg-"))
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.ip}:{self.port}/postgres"

    def _run(self, *cmd: str) -> subprocess.CompletedProcess[bytes]:
        full = ["runuser", "-u", self.user, "--", *cmd] if self.user else list(cmd)
        return subprocess.run(full, capture_output=True, timeout=60, check=False)

    def start(self) -> PostgresServer:
        if self.user:
            ent = pwd.getpwnam(self.user)
            os.chown(self.dir, ent.pw_uid, ent.pw_gid)
        data = self.dir / "data"
        out = self._run(str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        if out.returncode:
            raise RuntimeError(f"initdb failed: {out.stderr.decode()[-500:]}")
        opts = f"-h {self.ip} -p {self.port} -k {self.dir} -c fsync=off"
        out = self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(self.dir / "log"),
                        "-w", "-t", "30", "start")
        if out.returncode:
            raise RuntimeError(f"postgres did not start: {out.stderr.decode()[-500:]}")
        return self

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_ready(url: str, timeout: float = 10.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)

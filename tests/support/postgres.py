"""A real PostgreSQL server for tests: Debian's binaries, a temp data dir, a free loopback port.

PostgreSQL refuses to run as root, and the test suite runs as root in CI, so initdb and postgres run
as `nobody` then. tests/conftest.py offers its fixtures (`pg_server`, `pg_url`) to every test;
outside pytest: `with PostgresServer() as pg: pg.url()`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcdsec.testbed.addresses import free_loopback_ip


def postgres_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise FileNotFoundError("PostgreSQL not installed: apt-get install postgresql (scripts/test.sh does)")
    return Path(found[-1]).parent


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


class PostgresServer:
    user = "etcdsec"

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="etcdsec-pg-"))
        self.ip = free_loopback_ip(())
        self.port = _free_port(self.ip)
        self.proc: subprocess.Popen[bytes] | None = None

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "nobody")
        data = self.dir / "data"
        subprocess.run(
            [*self._as_owner(), str(self.bin / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust",
             "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, cwd=self.dir, timeout=120,
        )
        log = open(self.dir / "postgres.log", "wb")  # noqa: SIM115 (lives as long as the server)
        self.proc = subprocess.Popen(
            [*self._as_owner(), str(self.bin / "postgres"), "-D", str(data), "-h", self.ip, "-p", str(self.port),
             "-k", str(self.dir), "-c", "fsync=off", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.dir / 'postgres.log').read_text()[-2000:]}")
            try:
                self.execute("SELECT 1")
                return self
            except Exception:
                time.sleep(0.2)
        raise RuntimeError("postgres did not become ready in 60 s")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.ip}:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def new_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        self.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # smart shutdown would wait for clients: SIGTERM is "fast" here
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server: `postgresql://etcdsec@127.x.y.z:port/t_...`."""
    return pg_server.new_database()

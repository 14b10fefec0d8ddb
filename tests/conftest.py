"""Shared fixtures: real etcd servers on loopback, started once per configuration and version, hostile
fakes, and a real PostgreSQL (`pg_server`, `pg_url`). Test kit lives in tests/support/ (`tests.support.*`:
pytest puts the repo root on sys.path, see `pythonpath` in pyproject.toml)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.support.fakes import FakeServers
from tests.support.postgres import pg_server, pg_url  # noqa: F401  (fixtures, by name)

VERSIONS = ("3.4", "3.5")


@pytest.fixture(scope="session")
def etcd_factory() -> Iterator[Callable[..., EtcdServer]]:
    """`etcd_factory(key, EtcdConfig(...), setup=fn)`: one server per key for the whole run."""
    started: dict[str, EtcdServer] = {}

    def make(key: str, config: EtcdConfig, setup: Callable[[EtcdServer], None] | None = None) -> EtcdServer:
        if key not in started:
            server = EtcdServer(config).start()
            started[key] = server
            if setup:
                setup(server)
        return started[key]

    yield make
    for server in started.values():
        server.stop()


@pytest.fixture(scope="session")
def fakes() -> Iterator[FakeServers]:
    with FakeServers() as f:
        yield f

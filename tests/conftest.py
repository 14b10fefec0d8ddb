"""Shared fixtures: real etcd servers on loopback, started once per configuration and version, hostile
fakes, and a real PostgreSQL (`pg_server`, `pg_url`). Test kit lives in tests/support/ (`tests.support.*`:
pytest puts the repo root on sys.path, see `pythonpath` in pyproject.toml)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.support.fakes import FakeServers
from tests.support.postgres import pg_server, pg_url  # noqa: F401  (fixtures, by name)

VERSIONS = ("3.4", "3.5")


@pytest.fixture(scope="session", autouse=True)
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every honeypot a test starts without --state keeps its state in the run's temporary folder,
    never in the user's ~/.local/state (the default) or the checkout."""
    saved = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("xdg-state"))
    yield
    if saved is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = saved


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

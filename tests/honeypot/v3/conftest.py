"""Builds a real SensorContext (HP-CORE's context module) for the v3 layers under test."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from etcdsec.honeypot.context import (
    EventSink,
    Honeytokens,
    Identity,
    SensorContext,
    Session,
    load_persona,
)
from etcdsec.honeypot.sensor import SensorConfig
from etcdsec.honeypot.v3.state import V3State
from tests.support.harness import BackgroundSensor
from tests.support.memory_events import MemoryEvents

MakeCtx = Callable[..., tuple[SensorContext, MemoryEvents]]


def make_ctx(persona: str = "3.5.1", dataset: list[tuple[bytes, bytes]] | None = None,
             namespace_writes: bool = False, revision_base: int = 1, ip: str = "127.0.0.1",
             tokens: dict[str, str] | None = None) -> tuple[SensorContext, MemoryEvents]:
    ident = Identity.create("etcd-test", [f"http://{ip}:2379"], [f"http://{ip}:2380"])
    ident.revision_base = revision_base
    memory = MemoryEvents()
    events = EventSink("test-sensor", [memory])
    ctx = SensorContext(load_persona(persona), ident, events, Honeytokens(events, tokens or {}),
                        dataset=list(dataset or []), namespace_writes=namespace_writes)
    return ctx, memory


def session(ip: str = "127.0.0.1", port: int = 40000) -> Session:
    return Session.new(ip, port, "127.0.0.1", 2379)


@pytest.fixture
def ctx_factory() -> MakeCtx:
    return make_ctx


def new_state(**kw: object) -> tuple[V3State, MemoryEvents]:
    ctx, memory = make_ctx(**kw)  # type: ignore[arg-type]
    return V3State(ctx), memory


@contextlib.contextmanager
def real_sensor(persona: str, seed: list[tuple[str, str]], workdir: Path, tokens: dict[str, str] | None = None,
                ip: str | None = None, **config: Any) -> Iterator[BackgroundSensor]:
    """HP-CORE's whole sensor (listener, HTTP/1, TLS, events) with the v3 side, seeded like a test etcd.

    The state file pins revision_base=1, so after the seed the revisions equal those of a fresh etcd
    that got the same puts in the same (sorted) order.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    seed_file = workdir / "seed.yaml"
    seed_file.write_text(yaml.safe_dump({"keys": dict(sorted(seed)), "honeytokens": tokens or {}}))
    ident = Identity.create("etcd-test", [], [])
    ident.revision_base = 1
    state_file = workdir / "state.json"
    state_file.write_text(json.dumps(ident.to_dict()))
    cfg = SensorConfig(persona=persona, member_name="etcd-test", seed_file=seed_file, state_file=state_file,
                       **config)
    with BackgroundSensor(cfg, ip=ip) as hp:
        yield hp

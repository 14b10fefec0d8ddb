"""The thin asyncio shell: feeds a source's connections to the tracker, announces cards, ends on time.

Everything with side effects comes in as a callable (emit an event, save a card or the baseline, refresh
the endpoints' exposure, resolve a name, print a status line), so the command wires the outputs it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from etcdsec.monitor.connections.model import Connection
from etcdsec.monitor.connections.tracker import Tracker

ANOMALOUS = "etcdsec.monitor.connection.anomalous"
UPDATED = "etcdsec.monitor.connection.updated"
RESOLVE_TIMEOUT = 2.0


class Source(Protocol):
    name: str
    misses: str

    def close(self) -> None: ...


@dataclass
class Hooks:
    emit: Callable[[dict[str, Any]], None]
    say: Callable[[str], None] = print
    save_card: Callable[[dict[str, Any]], None] = lambda card: None
    save_cards: Callable[[list[dict[str, Any]]], None] = lambda cards: None
    save_baseline: Callable[[], None] = lambda: None
    refresh_exposure: Callable[[], Awaitable[None]] | None = None
    resolve: Callable[[str], str | None] | None = None  # reverse DNS, blocking: run in a thread
    extra: dict[str, Any] = field(default_factory=dict)


class Monitor:
    def __init__(self, source: Any, tracker: Tracker, hooks: Hooks, *, probe_every: float = 300.0,
                 update_every: float = 60.0, stats_every: float = 5.0) -> None:
        self.source = source
        self.tracker = tracker
        self.hooks = hooks
        self.probe_every = probe_every
        self.update_every = update_every
        self.stats_every = stats_every
        self.stop = asyncio.Event()
        self.dirty: set[tuple[str, str]] = set()  # cards counted again since their last event
        self.pending: set[asyncio.Task[None]] = set()
        self.learning_done = not tracker.learning(time.time())
        self.poll_errors = 0

    def event(self, eventid: str, card: dict[str, Any]) -> dict[str, Any]:
        return {"eventid": eventid, "src_ip": card["src_ip"], "src_port": card["src_port"], "dst_ip": card["dst_ip"],
                "dst_port": card["dst_port"], "role": card["role"], "severity": card["severity"], "card": card}

    def feed(self, conns: list[Connection]) -> None:
        for conn in conns:
            decision = self.tracker.observe(conn)
            if decision.card is None:
                continue
            key = (decision.card["src_ip"], decision.card["endpoint"])
            if decision.kind == "anomalous":
                task = asyncio.ensure_future(self.announce(decision.card))
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)
            else:
                self.dirty.add(key)

    async def announce(self, card: dict[str, Any]) -> None:
        if self.hooks.resolve is not None:
            with contextlib.suppress(TimeoutError, OSError):
                card["rdns"] = await asyncio.wait_for(asyncio.to_thread(self.hooks.resolve, card["src_ip"]),
                                                      RESOLVE_TIMEOUT)
        self.hooks.emit(self.event(ANOMALOUS, card))
        self.hooks.save_card(card)

    def flush_updates(self) -> None:
        cards = [self.tracker.cards[key] for key in sorted(self.dirty)]
        self.dirty.clear()
        for card in cards:
            self.hooks.emit(self.event(UPDATED, card))
        if cards:
            self.hooks.save_cards(cards)

    def end_learning(self) -> None:
        self.learning_done = True
        self.hooks.save_baseline()
        self.hooks.say(f"learned: {len(self.tracker.baseline)} known source(s); watching for new ones")

    async def _poll(self, interval: float) -> None:
        while not self.stop.is_set():
            try:
                self.feed(self.source.poll())
            except OSError as exc:  # one failed dump is a gap, said once, not the end of the watch
                self.poll_errors += 1
                if self.poll_errors == 1:
                    self.hooks.say(f"socket table read failed ({exc}); retrying every poll")
            await self._tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), interval)

    async def _tick(self) -> None:
        if not self.learning_done and not self.tracker.learning(time.time()):
            self.end_learning()

    async def _timers(self) -> None:
        next_probe = time.monotonic() + self.probe_every
        next_update = time.monotonic() + self.update_every
        while not self.stop.is_set():
            await self._tick()
            now = time.monotonic()
            if now >= next_update:
                self.flush_updates()
                next_update = now + self.update_every
            if self.hooks.refresh_exposure is not None and now >= next_probe:
                await self.hooks.refresh_exposure()
                next_probe = time.monotonic() + self.probe_every
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.2)

    async def run(self, duration: float | None) -> None:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.ensure_future(self._timers())]
        if hasattr(self.source, "fileno"):
            loop.add_reader(self.source.fileno(), lambda: self.feed(self.source.read()))
        else:
            tasks.append(asyncio.ensure_future(self._poll(self.source.interval)))
        if self.hooks.refresh_exposure is not None:
            tasks.append(asyncio.ensure_future(self.hooks.refresh_exposure()))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), duration)
        finally:
            self.stop.set()
            if hasattr(self.source, "fileno"):
                loop.remove_reader(self.source.fileno())
                self.feed(self.source.read())  # what arrived up to the end
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.pending:
                await asyncio.gather(*self.pending, return_exceptions=True)
            if not self.learning_done:
                self.end_learning()
            self.flush_updates()

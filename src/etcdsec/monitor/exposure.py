"""`monitor exposure`: re-probe every target on its own jittered beat, store each observation,
emit one event per security-relevant change (`drift`), keep alerts and metrics current.

Every probe is the non-intrusive prober's (bounded by its deadline); a target that cannot be
probed is an unreachable observation, never an error. Observations are written in batches from a
thread, so a slow database does not hold the probes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from etcdsec.errors import UserError
from etcdsec.events.emitter import Emitter
from etcdsec.events.ids import EventOutput
from etcdsec.events.metrics import EventCounter, MetricsServer
from etcdsec.model import ProbeResult
from etcdsec.monitor.drift import EVENT_ID, Change, TargetState, step
from etcdsec.monitor.history import History
from etcdsec.monitor.metrics import render
from etcdsec.monitor.observation import Observation, observe
from etcdsec.output import printable
from etcdsec.probe.api import probe
from etcdsec.probe.options import ProbeOptions
from etcdsec.store.schema import monitor_events
from etcdsec.targets import Target

FLUSH_EVERY_S = 1.0
EXIT_WORSE = 4  # --once: something got worse


@dataclass
class ExposureConfig:
    targets: list[Target]
    db: str
    every: float = 60.0
    jitter: float = 0.1  # each wait is every * (1 +- jitter)
    down_after: int = 2
    cert_warn_days: float = 14.0
    duration: float | None = None
    once: bool = False
    concurrency: int = 64
    probe: ProbeOptions = field(default_factory=ProbeOptions)
    events: Path | None = None
    shared_events: bool = False  # several processes append to `events` (--workers/--cluster)
    sensor: str = field(default_factory=socket.gethostname)
    alert_on: list[str] = field(default_factory=lambda: ["etcdsec.monitor.exposure.changed"])
    alert_webhook: str | None = None
    alert_syslog: tuple[str, int] | None = None
    alert_rate: int = 10
    alertmanager: str | None = None
    alertmanager_resend: float = 60.0
    metrics_listen: tuple[str, int] | None = None
    extra_outputs: list[EventOutput] = field(default_factory=list)


def change_line(change: Change) -> str:
    """One line for people: what changed on which target."""
    b, a = change.before, change.after
    parts = [f"{change.after.observed_at:%Y-%m-%dT%H:%M:%SZ}", printable(change.target)]
    if "reachable" in change.changes:
        parts.append("DOWN" if not a.reachable else "UP")
    if a.reachable:
        if b.severity != a.severity or b.exposed != a.exposed:
            parts.append(f"severity {printable(b.severity, 20)}->{printable(a.severity, 20)}"
                         + (" exposed" if a.exposed else " not-exposed"))
        # printable: with --workers the line is made from an event read back from the database
        parts += [f"+{printable(f, 80)}" for f in change.added] + [f"-{printable(f, 80)}" for f in change.removed]
        if "version" in change.changes and b.reachable:
            parts.append(f"version {printable(b.version or '?', 40)}->{printable(a.version or '?', 40)}")
        parts += [name for name in ("certificate", "cert_expiring", "scheme", "client_cert_required", "v3_auth")
                  if name in change.changes]
    else:
        parts.append(printable(a.error or "unreachable", 120))
    if change.worse:
        parts.append("(worse)")
    return " ".join(parts)


def state_line(obs: Observation, misses: int = 0, down_after: int = 1) -> str:
    """One line for people: a target's latest observation (with the misses not yet counted as down)."""
    what = "exposed" if obs.exposed else "not exposed"
    if not obs.reachable:
        pending = f"; miss {misses} of {down_after} before it counts as down" if misses else ""
        what = f"unreachable ({printable(obs.error or 'no answer', 120)}{pending})"
    findings = ",".join(obs.findings) or "-"
    return f"{printable(obs.target)} {what} severity={obs.severity} findings={findings}"


class ExposureMonitor:
    def __init__(self, config: ExposureConfig, out: IO[str] | None = None) -> None:
        self.config = c = config
        self.out = out or sys.stdout
        if c.down_after < 1:
            raise UserError("--down-after must be at least 1")
        self.history = History(c.db)
        self.targets = c.targets
        self.states: dict[str, TargetState] = self.history.load(t.text for t in c.targets)
        self.current: dict[str, Observation] = {}  # the baseline: what metrics and alerts report
        self.latest: dict[str, Observation] = {}
        self.pending: list[tuple[Observation, bool, ProbeResult | None]] = []
        self.observations = 0
        self.changes = 0
        self.worse: list[Change] = []
        self.outputs: list[Any] = []
        self._open_outputs()
        self.counter = EventCounter()
        self.emitter = Emitter(c.sensor, [*self.outputs, self.counter, *c.extra_outputs])
        self.metrics: MetricsServer | None = None
        self.failure: UserError | None = None
        self.errors = 0  # observations lost to a bug (never expected)

    def _open_outputs(self) -> None:
        from etcdsec.events.alerts import AlertOutput
        from etcdsec.events.jsonl import JsonlWriter
        from etcdsec.events.store import EventStoreWriter

        c = self.config
        self.writer = self.store_writer = self.alerts = self.alertmanager = None
        if c.events is not None:
            try:
                self.writer = JsonlWriter(c.events, shared=c.shared_events)
            except OSError as exc:
                raise UserError(f"cannot open event file {c.events}: {exc.strerror or exc}") from None
            self.outputs.append(self.writer)
        self.store_writer = EventStoreWriter(c.db, table=monitor_events)
        self.outputs.append(self.store_writer)
        if c.alert_webhook or c.alert_syslog:
            self.alerts = AlertOutput(c.alert_on, c.alert_webhook, c.alert_syslog, c.alert_rate, name="etcdsec-monitor",
                                      key="target")
            self.outputs.append(self.alerts)
        if c.alertmanager:
            from etcdsec.events.alertmanager import AlertmanagerOutput

            self.alertmanager = AlertmanagerOutput(c.alertmanager, resend_s=c.alertmanager_resend,
                                                   per_alert_per_minute=c.alert_rate)

    # --- one observation ------------------------------------------------------------------------
    def record(self, target: Target, result: ProbeResult, now: dt.datetime | None = None) -> Change | None:
        """Judge one probe result of `target` against its history (sans-IO apart from the outputs)."""
        now = now or dt.datetime.now(dt.UTC)
        obs = observe(target.text, result, now, self.config.cert_warn_days)
        state = self.states.setdefault(target.text, TargetState())
        first = state.baseline is None
        outcome = step(state, obs, self.config.down_after)
        keep_result = result if (outcome.change is not None or first) and obs.reachable else None
        self.pending.append((obs, outcome.baseline, keep_result))
        self.current[target.text] = state.baseline or obs
        self.latest[target.text] = obs
        self.observations += 1
        if self.alertmanager is not None:
            from etcdsec.monitor.alerting import target_alerts

            self.alertmanager.set_group(target.text, target_alerts(state, self.config.sensor))
        change = outcome.change
        if change is None:
            return None
        self.changes += 1
        if change.worse and self.config.once:
            self.worse.append(change)
        self.emitter.emit(EVENT_ID, **change.event_fields())
        if not self.config.once:
            print(change_line(change), file=self.out, flush=True)
        return change

    async def flush(self) -> None:
        """The rows are taken on the event loop's thread (no append can slip between), written in another."""
        rows, self.pending = self.pending, []
        await asyncio.to_thread(self.history.write, rows)

    # --- the loop -------------------------------------------------------------------------------
    async def _observe(self, target: Target, sem: asyncio.Semaphore) -> None:
        async with sem:
            result = await probe(target, self.config.probe)  # never raises: trouble is in result.error
        self.record(target, result)

    async def _watch(self, target: Target, sem: asyncio.Semaphore, rng: random.Random) -> None:
        c = self.config
        await asyncio.sleep(rng.uniform(0, c.every))  # spread the first round over one interval
        while True:
            started = time.monotonic()
            try:
                await self._observe(target, sem)
            except Exception as exc:  # a bug on one target must not end the watch of the others
                self.errors += 1
                print(f"etcdsec monitor: {printable(target.text)}: {type(exc).__name__}: {printable(str(exc), 200)}",
                      file=sys.stderr, flush=True)
            wait = c.every * (1 + rng.uniform(-c.jitter, c.jitter)) - (time.monotonic() - started)
            await asyncio.sleep(max(0.0, wait))

    async def _flusher(self, stop: asyncio.Event) -> None:
        """Writes the observations each second; a database that is gone stops the monitor (exit 3)."""
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            try:
                await self.flush()
            except UserError as exc:
                self.failure = exc
                stop.set()
                return

    async def observe_once(self) -> None:
        sem = asyncio.Semaphore(self.config.concurrency)
        await asyncio.gather(*(self._observe(t, sem) for t in self.targets))
        await self.flush()

    def once_lines(self) -> tuple[list[str], list[str]]:
        """After `observe_once`: a state line per target (in order), a `worse:` line per worse change."""
        c = self.config
        states = [state_line(self.latest[t.text], self.states[t.text].misses, c.down_after) for t in self.targets]
        return states, ["worse: " + change_line(change) for change in self.worse]

    async def run_once(self) -> int:
        await self.observe_once()
        states, worse = self.once_lines()
        for line in (*states, *worse):
            print(line, file=self.out)
        self.out.flush()
        return EXIT_WORSE if self.worse else 0

    async def run(self, stop: asyncio.Event, ready: Callable[[ExposureMonitor], None] | None = None) -> int:
        c = self.config
        if c.metrics_listen is not None:
            self.metrics = MetricsServer(lambda: render(self))
            try:
                await self.metrics.start(*c.metrics_listen)
            except OSError as exc:
                raise UserError(f"--metrics-listen: cannot listen: {exc.strerror or exc}") from None
        if ready:
            ready(self)
        if c.once:
            return await self.run_once()
        sem = asyncio.Semaphore(c.concurrency)
        rng = random.Random()
        tasks = [asyncio.create_task(self._watch(t, sem, rng)) for t in self.targets]
        tasks.append(asyncio.create_task(self._flusher(stop)))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), c.duration)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.failure is None:
                await self.flush()
        if self.failure is not None:
            raise self.failure
        return 0

    async def close(self) -> None:
        if self.metrics is not None:
            await self.metrics.close()
        for output in (self.writer, self.store_writer, self.alerts, self.alertmanager):
            if output is not None:
                output.close()
        self.history.close()

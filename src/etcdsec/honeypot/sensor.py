"""Assemble a sensor from its configuration and run it until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import resource
import signal
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from etcdsec.errors import UserError
from etcdsec.events.ids import EventOutput
from etcdsec.events.jsonl import JsonlWriter
from etcdsec.events.kept import KeptEvents, kept_path
from etcdsec.events.metrics import EventCounter, MetricsServer
from etcdsec.honeypot.context import SensorContext
from etcdsec.honeypot.core.bait import Bait, kubernetes_bait, load_seed_file
from etcdsec.honeypot.core.eventsink import EventSink
from etcdsec.honeypot.core.honeytokens import Honeytokens
from etcdsec.honeypot.core.identity import Identity
from etcdsec.honeypot.core.limits import Limits
from etcdsec.honeypot.core.persona import load_persona
from etcdsec.honeypot.persist.journal import JournalError
from etcdsec.honeypot.persist.keyspace import KeyspaceJournal
from etcdsec.honeypot.sensor_metrics import render
from etcdsec.honeypot.serve.guard import Guard
from etcdsec.honeypot.serve.http1 import ClientApp, PeerApp
from etcdsec.honeypot.serve.inline_start import start_eagerly
from etcdsec.honeypot.serve.listener import Listener, ListenerOptions, parse_networks
from etcdsec.honeypot.shared.link import KeyspaceLink
from etcdsec.honeypot.v2.forward import V2_CALL
from etcdsec.honeypot.v2.forward import answer as v2_answer
from etcdsec.honeypot.v2.forward import answer_held as v2_answer_held
from etcdsec.honeypot.v2.keystore import V2Store
from etcdsec.honeypot.v3.churn import Churn
from etcdsec.honeypot.v3.replica import Published
from etcdsec.honeypot.v3.state import V3State


@dataclass
class SensorConfig:
    listen: tuple[str, int] = ("127.0.0.1", 2379)
    peer_listen: tuple[str, int] | None = None
    persona: str = "3.5.1"
    member_name: str = "kube-master-1"
    events: Path | None = None
    db: str | None = None
    state_file: Path | None = None
    keyspace_state: Path | None = None  # keep the keyspace in <this>.snap + <this>.log (None: forget it)
    state_flush: float = 1.0  # seconds between keyspace log writes (fsynced): what kill -9 can lose
    state_max_bytes: int = 256 << 20  # keyspace state on disk; past it puts fail as etcd's NOSPACE
    sensor: str = field(default_factory=socket.gethostname)
    advertise_client_url: str | None = None
    advertise_peer_url: str | None = None
    seed_file: Path | None = None
    namespace_writes: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    proxy_protocol: bool = False
    trusted_proxies: list[str] = field(default_factory=list)
    trust_xff: bool = False
    events_max_bytes: int = 100 << 20
    events_backups: int = 5
    flush_interval: float = 0.0
    limits: Limits = field(default_factory=Limits)
    extra_outputs: list[EventOutput] = field(default_factory=list)
    enable_v2: bool | None = None  # None: as the persona's version does by default
    bait: Bait | None = None  # the keyspace to serve; None: seed file or the Kubernetes bait
    alert_on: list[str] = field(default_factory=lambda: ["honeytoken.used"])
    alert_webhook: str | None = None
    alert_syslog: tuple[str, int] | None = None
    alert_rate: int = 10  # alerts per source per minute
    metrics_listen: tuple[str, int] | None = None  # Prometheus metrics (loopback)
    shared_keyspace: bool = True  # with workers: one keyspace, owned by worker 0 (shared/link.py)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop where it is installed (libuv transports: about a fifth less CPU per request than the
    stdlib's selector loop on the HTTP/1 fast path), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop  # type: ignore[no-any-return]


@dataclass
class WorkerSlot:
    """This process's place among `count` workers, with its listening sockets made by the supervisor."""

    index: int
    count: int
    sockets: dict[str, socket.socket]  # "client", and "peer" when the peer port is served
    control: socket.socket | None = None  # the supervisor asks for metrics on it
    shared: bool = False  # --shared-keyspace: worker 0 owns the v3 keyspace, the others forward to it
    link: socket.socket | None = None  # a forwarding worker's link to the owner, made before its fork
    published: Published | None = None  # the owner's count of pushed changes, shared by every worker

    @property
    def owner(self) -> bool:
        return self.shared and self.index == 0

    @property
    def forwarding(self) -> bool:
        return self.shared and self.index != 0


def sensor_identity(c: SensorConfig) -> Identity:
    """Ids, start time and honeytoken seed: from the state file, else new (and written there)."""
    scheme = "https" if c.tls_cert else "http"
    client_url = c.advertise_client_url or _url(scheme, *c.listen)
    peer_host, peer_port = c.peer_listen or (c.listen[0], 2380)
    peer_url = c.advertise_peer_url or _url("http", peer_host, peer_port)
    return Identity.load_or_create(c.state_file, c.member_name, [client_url], [peer_url])


def listen_urls(c: SensorConfig) -> dict[str, str]:
    """The addresses as bound (0.0.0.0 stays 0.0.0.0, as in etcd's own flags)."""
    peer_host, peer_port = c.peer_listen or (c.listen[0], 2380)
    return {"client": _host_url("https" if c.tls_cert else "http", *c.listen),
            "peer": _host_url("http", peer_host, peer_port)}


def tls_context(c: SensorConfig) -> ssl.SSLContext | None:
    if not c.tls_cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(str(c.tls_cert), str(c.tls_key) if c.tls_key else None)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"cannot load TLS certificate {c.tls_cert}: {exc}") from None
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


def _url(scheme: str, host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return _host_url(scheme, host, port)


def _host_url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


class Sensor:
    """Everything one running honeypot owns. `await start()`, then `await stop()`."""

    def __init__(self, config: SensorConfig, *, identity: Identity | None = None,
                 slot: WorkerSlot | None = None) -> None:
        self.config = c = config
        self.slot = slot
        self.persona = load_persona(c.persona)
        if c.enable_v2 is not None and self.persona.major_minor >= (3, 0):
            self.persona = dataclasses.replace(self.persona, v2_enabled=c.enable_v2)
        self.identity = identity or sensor_identity(c)
        shared = slot is not None and slot.count > 1
        try:
            self.writer = JsonlWriter(c.events, c.events_max_bytes, c.events_backups, c.flush_interval,
                                      shared=shared) if c.events else None
        except OSError as exc:
            raise UserError(f"cannot open event file {c.events}: {exc.strerror or exc}") from None
        # first sight of each source and every honeytoken use, beside the file and never rotated
        self.kept = KeptEvents(kept_path(c.events)) if c.events else None
        self.store_writer: Any = None
        outputs: list[EventOutput] = [*([self.writer] if self.writer else []), *([self.kept] if self.kept else []),
                                      *c.extra_outputs]
        if c.db:
            from etcdsec.events.store import EventStoreWriter

            self.store_writer = EventStoreWriter(c.db)
            outputs.append(self.store_writer)
        self.alerts: Any = None
        if c.alert_webhook or c.alert_syslog:
            from etcdsec.events.alerts import AlertOutput

            self.alerts = AlertOutput(c.alert_on, c.alert_webhook, c.alert_syslog, c.alert_rate)
            outputs.append(self.alerts)
        self.event_counter = EventCounter()
        outputs.append(self.event_counter)
        self.events = EventSink(c.sensor, outputs)
        if slot is not None:
            self.events.worker = slot.index
        bait: Bait = c.bait if c.bait is not None else load_seed_file(c.seed_file) if c.seed_file else \
            kubernetes_bait(self.identity.secret_seed or str(self.identity.cluster_id), self.identity.start_time,
                            self.identity.member_name)
        self.honeytokens = Honeytokens(self.events, bait.tokens)
        self.honeytokens.find(b"warm-up")  # compile the token matcher now, not on the first request
        self.ctx = SensorContext(self.persona, self.identity, self.events, self.honeytokens, bait.keys, c.limits,
                                 c.namespace_writes)
        self.ctx.listen_urls = listen_urls(c)
        self.v3_state = self._v3_state()
        slot = self.slot
        self.link = KeyspaceLink(slot is not None and slot.shared, slot is not None and slot.forwarding,
                                 slot.link if slot is not None else None, self.v3_state,
                                 slot.published if slot is not None else None)
        # the control plane's own writes (lease renewals, events) between attackers' requests
        self.churn = Churn(self.v3_state) if self.v3_state is not None and not self.link.forwarding else None
        v2_keys = bait.v2_view  # v2 keeps its own copy of the bait (v2 and v3 stores are separate)
        v2 = V2Store(start_index=3 + len(v2_keys), max_keys=c.limits.max_keys,
                     max_bytes=c.limits.max_store_bytes, max_watchers=c.limits.max_watches)
        for key, value in v2_keys:
            v2.set(key.decode(), value.decode())
        v2.index = 3 + 2 * len(v2_keys)
        self.keyspace = self._keyspace_journal(v2)
        if self.keyspace is not None:
            self.link.records = self.keyspace.records  # one set of hooks: the journal's and the replicas' records
        self.client_app = ClientApp(self.ctx, v2, self.v3_state, self.link.remote)
        # --shared-keyspace: the owner answers the other workers' v2 requests too
        self.link.extra[V2_CALL] = partial(v2_answer, start_eagerly, self.client_app.v2_handle)
        self.link.held = partial(v2_answer_held, start_eagerly, self.client_app.v2_handle)
        self.guard = Guard(c.limits)
        tls = self._tls()
        opts = ListenerOptions(tls=tls, proxy_protocol=c.proxy_protocol,
                               trusted_proxies=parse_networks(c.trusted_proxies), trust_xff=c.trust_xff)
        self.client = Listener(self.ctx, self.client_app, self.guard, opts, self.v3_state)
        # Real etcd serves the whole v3 gRPC API on the peer port too (etcdctl works against 2380).
        self.peer = Listener(self.ctx, PeerApp(self.ctx), self.guard, ListenerOptions(peer=True), self.v3_state) \
            if c.peer_listen else None
        self.addresses: dict[str, tuple[str, int]] = {}
        # With several workers the supervisor serves the metrics, summed over the workers.
        self.metrics = MetricsServer(lambda: render(self.snapshot())) if c.metrics_listen and slot is None else None
        self._flusher: asyncio.Task[None] | None = None
        self.started = False

    def _v3_state(self) -> V3State | None:
        return V3State(self.ctx) if self.persona.grpc_enabled else None

    def _keyspace_journal(self, v2: V2Store) -> KeyspaceJournal | None:
        """The keyspace as persisted (restored now, journalled from here on); one per worker."""
        prefix = self.config.keyspace_state
        if prefix is None:
            return None
        if self.link.forwarding:
            return None  # the owner journals the one keyspace
        if self.slot is not None and self.slot.count > 1 and not self.slot.shared:  # one keyspace each
            prefix = prefix.with_name(f"{prefix.name}.w{self.slot.index}")
        journal = KeyspaceJournal(prefix, self.v3_state, v2, flush_interval=self.config.state_flush,
                                  max_bytes=self.config.state_max_bytes)
        try:
            journal.open()
        except JournalError as exc:
            raise UserError(f"{exc} (move it away to start with a fresh keyspace)") from None
        except OSError as exc:
            raise UserError(f"cannot write keyspace state {prefix}: {exc.strerror or exc}") from None
        return journal

    def _tls(self) -> ssl.SSLContext | None:
        return tls_context(self.config)

    def snapshot(self) -> dict[str, Any]:
        """This process's figures as plain JSON values (a worker sends them to its supervisor)."""
        snap: dict[str, Any] = {
            "events": dict(self.event_counter.by_id), "sessions": self.client.sessions, "active": self.client.active,
            "throttled": self.guard.throttled, "refused": self.guard.refused,
            "output_errors": self.events.output_errors,
            "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
        if self.writer is not None:
            snap["rotations"] = self.writer.rotations
        if self.store_writer is not None:
            snap["store_written"], snap["store_dropped"] = self.store_writer.written, self.store_writer.dropped
        if self.alerts is not None:
            snap["alerts_sent"], snap["alerts_suppressed"] = self.alerts.sent, self.alerts.suppressed
        return snap

    def _answer_control(self) -> None:
        """The supervisor asks (one byte) for this worker's figures; they go back as one JSON line."""
        assert self.slot is not None and self.slot.control is not None
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.slot.control, 64, 4)
            if not data:
                asyncio.get_running_loop().remove_reader(self.slot.control.fileno())
                return
            data = self.link.take(data, fds)  # keyspace links the supervisor hands over
            if data:
                self.slot.control.sendall(json.dumps(self.snapshot()).encode() + b"\n")
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            asyncio.get_running_loop().remove_reader(self.slot.control.fileno())

    async def start(self) -> None:
        try:
            if self.slot is not None:
                self.addresses["client"] = self.client.adopt(self.slot.sockets["client"])
                if self.peer and "peer" in self.slot.sockets:
                    self.addresses["peer"] = self.peer.adopt(self.slot.sockets["peer"])
            else:
                self.addresses["client"] = await self.client.start(*self.config.listen)
                if self.peer and self.config.peer_listen:
                    self.addresses["peer"] = await self.peer.start(*self.config.peer_listen)
            if self.metrics and self.config.metrics_listen:
                self.addresses["metrics"] = await self.metrics.start(*self.config.metrics_listen)
        except OSError as exc:
            await self.stop()
            raise UserError(f"cannot listen: {exc.strerror or exc}") from None
        if self.slot is not None and self.slot.control is not None:
            self.slot.control.setblocking(False)  # a snapshot is a few KiB: the socket buffer takes it whole
            asyncio.get_running_loop().add_reader(self.slot.control.fileno(), self._answer_control)
        self.link.start(asyncio.get_running_loop())
        if self.keyspace is not None:
            self.keyspace.start()
        if self.writer and self.config.flush_interval > 0:
            self._flusher = asyncio.create_task(self._flush_every(self.config.flush_interval))
        if self.churn is not None:
            self.churn.start()
        self.started = True
        worker = {"worker": self.slot.index} if self.slot is not None else {}
        self.events.emit("sensor.start", None, persona=self.persona.name, member_name=self.identity.member_name,
                         listen=[f"{h}:{p}" for h, p in self.addresses.values()], **worker)

    async def _flush_every(self, interval: float) -> None:
        """Batched event writes reach the file within `interval` even when the sensor goes quiet."""
        assert self.writer is not None
        while True:
            await asyncio.sleep(interval)
            self.writer.flush()

    def reopen_event_files(self) -> None:
        """SIGHUP: after an external logrotate moved the files."""
        if self.writer:
            self.writer.reopen()
        if self.kept:
            self.kept.reopen()

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        if self.churn is not None:
            await self.churn.stop()
        if self.metrics:
            await self.metrics.close()
        await self.client.close()
        if self.peer:
            await self.peer.close()
        self.link.close()
        if self.keyspace is not None:
            await self.keyspace.close()
        if self.started:  # a sensor that never listened has nothing to report
            worker = {"worker": self.slot.index} if self.slot is not None else {}
            self.events.emit("sensor.stop", None, sessions=self.client.sessions, throttled=self.guard.throttled,
                             refused=self.guard.refused, **worker)
        if self.writer:
            self.writer.close()
        if self.kept:
            self.kept.close()
        if self.store_writer:
            self.store_writer.close()
        if self.alerts:
            self.alerts.close()


def run_forever(config: SensorConfig, ready: Callable[[Sensor], None] | None = None, *,
                identity: Identity | None = None, slot: WorkerSlot | None = None) -> int:
    """Foreground run: SIGTERM/SIGINT stop it cleanly (flush, exit 0); SIGHUP reopens the event file."""

    async def main() -> None:
        sensor = Sensor(config, identity=identity, slot=slot)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if sensor.writer:
            loop.add_signal_handler(signal.SIGHUP, sensor.reopen_event_files)
        await sensor.start()
        # The process is this sensor's: what start built (bait, persona tables, metric families)
        # lives as long as it does, so take it out of the collector's reach. Each full collection
        # walked it: a fifth of a small request's instructions on the bigger heap (callgrind).
        gc.collect()
        gc.freeze()
        if ready:
            ready(sensor)
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await sensor.stop()

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main())
    return 0

"""`etcdsec monitor connections`: raise one triage card per source that connects to etcd and never did before.

`etcdsec.commands.monitor` mounts `add_arguments` and `run` as its `connections` mode
(`python -m etcdsec.commands.monitor_connections ...` runs it alone too).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from etcdsec.asn import open_asn_database
from etcdsec.commands.options import add_alert_arguments, alert_settings, http_url, parse_duration, parse_hostport
from etcdsec.errors import UserError
from etcdsec.events.alertmanager import AlertmanagerOutput
from etcdsec.events.alerts import AlertOutput
from etcdsec.events.emitter import Emitter
from etcdsec.events.jsonl import JsonlWriter
from etcdsec.events.metrics import EventCounter, MetricsServer, prometheus_text
from etcdsec.events.store import EventStoreWriter
from etcdsec.files import read_capped
from etcdsec.monitor.connections.baseline import MAX_ENTRIES, Baseline, BaselineError, parse_network
from etcdsec.monitor.connections.card import render_text
from etcdsec.monitor.connections.model import DEFAULT_PORTS, Endpoint, default_role, normalize_ip
from etcdsec.monitor.connections.runner import ANOMALOUS, Hooks, Monitor
from etcdsec.monitor.connections.timebudget import TimeBudget
from etcdsec.monitor.connections.tracker import Tracker
from etcdsec.monitor.observation import observe
from etcdsec.store.engine import open_engine
from etcdsec.store.monitor_connections import ConnectionStore
from etcdsec.store.schema import monitor_events

SOURCES = ("auto", "packet", "sockdiag")
MAX_BASELINE_FILE = 64 << 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--watch", action="append", default=[], metavar="HOST:PORT[=ROLE]",
                   help="a listener to watch (repeatable); ROLE client or peer, by default peer for 2380 "
                        "and 7001, client otherwise (default: every local listener on 2379, 2380, 4001)")
    p.add_argument("--source", choices=SOURCES, default="auto",
                   help="packet: AF_PACKET SYN capture, misses no connection (root/CAP_NET_RAW); sockdiag: "
                        "polls the socket table, unprivileged; auto (default): the best one available")
    p.add_argument("--interval", default="100ms", metavar="DURATION",
                   help="sockdiag poll interval, the shortest connection it is sure to see (100ms)")
    p.add_argument("--learn", default="0s", metavar="DURATION",
                   help="learn the sources seen for this long first; skipped when --db already holds a "
                        "baseline, so a restart does not relearn (unless --relearn)")
    p.add_argument("--relearn", action="store_true", help="learn for --learn even over a stored baseline")
    p.add_argument("--db", metavar="PATH_OR_URL",
                   help="keep the baseline and the cards in SQLite (path) or PostgreSQL (URL) across restarts")
    p.add_argument("--baseline-import", metavar="FILE", help="add the sources of an exported baseline (JSON)")
    p.add_argument("--baseline-export", metavar="FILE", help="write the baseline to FILE after learning and at exit")
    p.add_argument("--allow", action="append", default=[], metavar="CIDR", help="known sources, by hand (repeatable)")
    p.add_argument("--asn-db", metavar="FILE", help="organisation and ASN of sources (ip2asn TSV or MaxMind .mmdb)")
    p.add_argument("--resolve", action="store_true", help="put the source's reverse DNS name on the card")
    p.add_argument("--duration", metavar="DURATION", help="stop after this long (default: until SIGTERM/SIGINT)")
    p.add_argument("--probe-every", default="5m", metavar="DURATION",
                   help="re-probe the watched endpoints' exposure this often (5m)")
    p.add_argument("--update-every", default="60s", metavar="DURATION",
                   help="at most this often, an updated event for a card that counted more connections (60s)")
    p.add_argument("--events", metavar="FILE", help="JSON-lines event file (appended to)")
    p.add_argument("--sensor", help="sensor name in events (default: host name)")
    p.add_argument("--quiet", action="store_true", help="no card text on standard output")
    p.add_argument("--alertmanager", metavar="URL", help="Prometheus Alertmanager base URL (v2 API): one alert "
                                                          "per card, labelled by source, port and severity")
    p.add_argument("--alertmanager-resend", default="60s", metavar="DURATION",
                   help="re-send active alerts this often (default 60s)")
    p.add_argument("--alert-active", default="1h", metavar="DURATION",
                   help="an Alertmanager alert for a card resolves itself after this long (default 1h)")
    add_alert_arguments(p, default_on="monitor.connection.anomalous")


def parse_watch(text: str) -> Endpoint:
    spec, _, role = text.partition("=")
    host, port = parse_hostport(spec, "--watch")
    if port == 0:
        raise UserError(f"--watch: port 0 in {text!r}")
    role = role.strip().lower() or default_role(port)
    if role not in ("client", "peer"):
        raise UserError(f"--watch: role must be client or peer, got {role[:20]!r}")
    return Endpoint(str(ipaddress.ip_address(host)), port, role)


def watch_list(texts: list[str]) -> list[Endpoint]:
    if texts:
        return list(dict.fromkeys(parse_watch(t) for t in texts))
    from etcdsec.monitor.connections.sockdiag import local_listeners

    found = [Endpoint(ip, port, default_role(port)) for ip, port in local_listeners(DEFAULT_PORTS)]
    if not found:
        raise UserError("no listener on 2379, 2380 or 4001 on this host: name one with --watch HOST:PORT")
    return found


def open_source(kind: str, endpoints: list[Endpoint], interval: float) -> Any:
    from etcdsec.monitor.connections.packet import PacketSource
    from etcdsec.monitor.connections.sockdiag import SockDiagSource

    if kind in ("auto", "packet"):
        try:
            return PacketSource(endpoints)
        except PermissionError:
            if kind == "packet":
                raise UserError("--source packet needs root or CAP_NET_RAW") from None
        except OSError as exc:
            if kind == "packet":
                raise UserError(f"--source packet: cannot capture: {exc.strerror or exc}") from None
    try:
        return SockDiagSource(endpoints, interval)
    except OSError as exc:
        raise UserError(f"cannot read the socket table (sock_diag): {exc.strerror or exc}") from None


def load_baseline_file(path: str, baseline: Baseline) -> int:
    raw = read_capped(path, MAX_BASELINE_FILE, "--baseline-import file")
    try:
        return baseline.merge_doc(json.loads(raw))
    except (ValueError, RecursionError) as exc:
        raise UserError(f"--baseline-import: {path}: {str(exc)[:200]}") from None


def write_baseline_file(path: str, baseline: Baseline) -> None:
    tmp = Path(f"{path}.tmp")
    try:
        tmp.write_text(json.dumps(baseline.to_doc(), indent=1) + "\n")
        os.replace(tmp, path)  # never half a file for the next import
    except OSError as exc:
        raise UserError(f"--baseline-export: cannot write {path}: {exc.strerror or exc}") from None


def exposure_unknown() -> dict[str, Any]:
    """Before the first probe: the fields of a probe's summary, unknown."""
    return {"reachable": None, "exposed": None, "severity": None, "findings": [], "version": None,
            "client_cert_required": None, "error": None, "observed_at": None}


def exposure_from(target: str, result: Any) -> dict[str, Any]:
    """The same facts `monitor exposure` compares (monitor.observation), for the card."""
    return observe(target, result, dt.datetime.now(dt.UTC), warn_days=0).summary()


def probe_address(endpoint: Endpoint) -> str:
    ip = endpoint.ip
    if endpoint.wildcard:
        ip = "::1" if ":" in ip else "127.0.0.1"
    return f"[{ip}]:{endpoint.port}" if ":" in ip else f"{ip}:{endpoint.port}"


def source_address(endpoint: Endpoint) -> str:
    """The local address the kernel picks to reach the endpoint (our probes come from it)."""
    target = probe_address(endpoint).rsplit(":", 1)[0].strip("[]")
    with socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((target, endpoint.port))  # UDP: no packet is sent
            return normalize_ip(s.getsockname()[0])
        except OSError:
            return target


def reverse_dns(ip: str) -> str | None:
    try:
        name = socket.getnameinfo((ip, 0), socket.NI_NAMEREQD)[0]
    except (OSError, UnicodeError):
        return None
    return name


def check_args(args: argparse.Namespace) -> dict[str, Any]:
    """Every option checked before anything starts: a bad one is one line and exit 2."""
    opts: dict[str, Any] = {
        "learn": parse_duration(args.learn, "--learn"),
        "interval": parse_duration(args.interval, "--interval", minimum=0.001),
        "duration": parse_duration(args.duration, "--duration", minimum=0.001) if args.duration else None,
        "probe_every": parse_duration(args.probe_every, "--probe-every", minimum=1.0),
        "update_every": parse_duration(args.update_every, "--update-every", minimum=0.1),
        "alerts": alert_settings(args, emitter="monitor"),
        "alertmanager": http_url(args.alertmanager, "--alertmanager"),
        "alertmanager_resend": parse_duration(args.alertmanager_resend, "--alertmanager-resend", minimum=1.0),
        "alert_active": parse_duration(args.alert_active, "--alert-active", minimum=1.0),
    }
    try:
        opts["allow"] = [parse_network(text) for text in args.allow]
    except BaselineError as exc:
        raise UserError(f"--allow: {exc}") from None
    if args.events and not Path(args.events).expanduser().resolve().parent.is_dir():
        raise UserError(f"--events: directory does not exist: {Path(args.events).parent}")
    return opts


def run(args: argparse.Namespace) -> int:
    opts = check_args(args)
    endpoints = watch_list(args.watch)
    asn = open_asn_database(args.asn_db) if args.asn_db else None
    baseline = Baseline(opts["allow"])
    store = ConnectionStore(open_engine(args.db)) if args.db else None
    stored = 0
    try:
        if store is not None:
            stored = baseline.merge_doc({"format": "etcdsec.monitor.connections.baseline/1",
                                         "entries": store.load_baseline(MAX_ENTRIES)})
        imported = load_baseline_file(args.baseline_import, baseline) if args.baseline_import else 0
    except BaselineError as exc:
        raise UserError(f"--db: stored baseline unusable: {exc}") from None
    source = open_source(args.source, endpoints, opts["interval"])
    try:
        return asyncio.run(_run(args, opts, endpoints, asn, baseline, store, source, stored, imported))
    finally:
        source.close()


async def _run(args: argparse.Namespace, opts: dict[str, Any], endpoints: list[Endpoint], asn: Any,
               baseline: Baseline, store: ConnectionStore | None, source: Any, stored: int, imported: int) -> int:
    from etcdsec.monitor.connections.sockdiag import client_process
    from etcdsec.probe.api import probe

    sensor = args.sensor or socket.gethostname()
    exposures = {e: exposure_unknown() for e in endpoints}
    try:
        writer = JsonlWriter(Path(args.events).expanduser()) if args.events else None
    except OSError as exc:
        raise UserError(f"--events: cannot open {args.events}: {exc.strerror or exc}") from None
    alerts_cfg = opts["alerts"]
    alerts = (AlertOutput(alerts_cfg.on, alerts_cfg.webhook, alerts_cfg.syslog, alerts_cfg.rate,
                          name="etcdsec-monitor") if alerts_cfg.webhook or alerts_cfg.syslog else None)
    alertmanager = (AlertmanagerOutput(opts["alertmanager"], alerts_cfg.on, opts["alertmanager_resend"],
                                       alerts_cfg.rate, opts["alert_active"], name="etcdsec-monitor")
                    if opts["alertmanager"] else None)
    store_writer = EventStoreWriter(args.db, table=monitor_events) if args.db else None
    counter = EventCounter()
    emitter = Emitter(sensor, [o for o in (writer, store_writer, alerts, alertmanager, counter) if o is not None])

    def emit(event: dict[str, Any]) -> None:
        fields = dict(event)
        emitter.emit(fields.pop("eventid"), **fields)
        if event["eventid"] == ANOMALOUS and not args.quiet:
            print(render_text(event["card"]), flush=True)

    async def refresh_exposure() -> None:
        sources = {e: source_address(e) for e in endpoints}
        started = time.time()
        for e, src in sources.items():
            tracker.probing[(src, e.port)] = (started, float("inf"))
        try:
            results = await asyncio.gather(*(probe(probe_address(e)) for e in endpoints))
        finally:
            # a poll may see our closed connections one interval later, in TIME_WAIT
            until = time.time() + opts["interval"] + 1.0
            for e, src in sources.items():
                tracker.probing[(src, e.port)] = (started, until)
        for endpoint, result in zip(endpoints, results, strict=True):
            exposures[endpoint] = exposure_from(endpoint.text, result)  # cards made earlier keep their own copy

    failed: list[UserError] = []  # the database gone, the export unwritable: stop, then one line and exit 3

    def fatal_on_error(fn: Any) -> Any:
        def call(*a: Any) -> None:
            try:
                fn(*a)
            except UserError as exc:
                if not failed:
                    failed.append(exc)
                monitor.stop.set()
        return call

    def save_baseline() -> None:
        if store is not None:
            store.save_baseline([e.to_doc() for e in baseline.entries.values()])
        if args.baseline_export:
            write_baseline_file(args.baseline_export, baseline)

    started = time.time()
    learn = 0.0 if stored and not args.relearn else opts["learn"]
    tracker = Tracker(baseline, endpoints, started + learn,
                      exposure_of=lambda e: dict(exposures[e]),
                      org_of=(asn.lookup if asn is not None else lambda ip: None),
                      process_of=TimeBudget(client_process, share=0.1))
    hooks = Hooks(emit=emit, say=lambda line: print(f"etcdsec monitor connections: {line}", flush=True),
                  save_card=fatal_on_error(store.save_card) if store is not None else lambda card: None,
                  save_cards=fatal_on_error(store.save_cards) if store is not None else lambda cards: None,
                  save_baseline=fatal_on_error(save_baseline), refresh_exposure=refresh_exposure,
                  resolve=reverse_dns if args.resolve else None)
    monitor = Monitor(source, tracker, hooks, probe_every=opts["probe_every"], update_every=opts["update_every"])
    metrics = None
    if alerts_cfg.metrics_listen:
        metrics = MetricsServer(lambda: prometheus_text(_families(tracker, counter, exposures, source)))
        try:
            await metrics.start(*alerts_cfg.metrics_listen)
        except OSError as exc:
            raise UserError(f"--metrics-listen: cannot listen on {args.metrics_listen}: "
                            f"{exc.strerror or exc}") from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, monitor.stop.set)
    watched = ", ".join(f"{e.text} ({e.role})" for e in endpoints)
    known = f"{len(baseline)} known source(s)" + (f" ({stored} stored, {imported} imported)" if stored or imported
                                                  else "")
    learning = f", learning for {learn:g}s" if learn else (
        " (--learn skipped: the stored baseline is used)" if opts["learn"] else "")
    hooks.say(f"source {source.name}, which misses {source.misses}; watching {watched}; {known}{learning}")
    try:
        await monitor.run(opts["duration"])
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if metrics is not None:
            await metrics.close()
        for output in (alerts, alertmanager, store_writer, writer):
            if output is not None:
                output.close()
    if failed:
        raise failed[0]
    c = tracker.counts
    drops = source.update_drops() if hasattr(source, "update_drops") else 0
    hooks.say(f"stopped: {c['connections']} connection(s) seen, {len(tracker.cards)} anomalous source(s), "
              f"{c['counted']} repeat connection(s) counted on cards, {drops} SYN(s) dropped by the kernel")
    return 0


def _families(tracker: Tracker, counter: EventCounter, exposures: dict[Endpoint, dict[str, Any]],
              source: Any) -> list[Any]:
    from etcdsec.events.metrics import label_value

    by_kind = [(f'{{decision="{k}"}}', v) for k, v in sorted(tracker.counts.items()) if k != "connections"]
    exposed = [(f'{{endpoint="{label_value(e.text)}",role="{e.role}"}}', int(bool(x.get("exposed"))))
               for e, x in exposures.items()]
    drops = source.update_drops() if hasattr(source, "update_drops") else 0
    return [
        ("etcdsec_monitor_connections_total", "counter", "Connections to watched endpoints seen",
         [("", tracker.counts["connections"])]),
        ("etcdsec_monitor_connection_decisions_total", "counter", "Connections by decision", by_kind),
        ("etcdsec_monitor_anomalous_sources", "gauge", "Sources with an open triage card", [("", len(tracker.cards))]),
        ("etcdsec_monitor_baseline_sources", "gauge", "Known sources in the baseline", [("", len(tracker.baseline))]),
        ("etcdsec_monitor_endpoint_exposed", "gauge", "Watched endpoint exposed at its last probe", exposed),
        ("etcdsec_monitor_syn_drops_total", "counter", "SYNs the kernel dropped before we read them", [("", drops)]),
        ("etcdsec_monitor_events_total", "counter", "Events emitted",
         [(f'{{eventid="{k}"}}', v) for k, v in sorted(counter.by_id.items())]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="etcdsec monitor connections")
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except UserError as exc:
        print(f"etcdsec: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())

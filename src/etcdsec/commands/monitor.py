"""`etcdsec monitor exposure|connections`: long-running watches (foreground, systemd-friendly)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from etcdsec.commands import monitor_connections
from etcdsec.commands.monitor_cluster import add_scale_arguments
from etcdsec.commands.options import add_alert_arguments, alert_settings, http_url, parse_duration
from etcdsec.errors import UserError
from etcdsec.store.engine import DEFAULT_DB

EXPOSURE_EPILOG = """Each target is probed every --every (+-10% jitter) with the non-intrusive prober; every
observation is stored in --db, and each security-relevant change is one etcdsec.monitor.exposure.changed
event (--events FILE, the database, --alert-*), one line on stdout, and Alertmanager alerts (--alertmanager).
--once: one observation per target compared with the stored history; exit 0, or 4 when something got
worse. Exit 2 bad input, 3 database trouble. SIGTERM/SIGINT or --duration: flush and exit 0.
SIGHUP: reopen the event file (after an external logrotate).
--workers N|auto / --cluster tcp://HOST:PORT: the targets cut into partitions, each watched by one
worker (--concurrency then applies in each worker process); see docs/scale.md.
See docs/monitor.md."""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("monitor", help="keep watching: exposure drift, unexpected connections",
                       description="Long-running watches of etcd: exposure drift and unexpected connections.")
    modes = p.add_subparsers(dest="mode", metavar="MODE", parser_class=type(p))
    modes.required = True
    e = modes.add_parser("exposure", help="re-probe targets and report every change of their exposure",
                         description="Re-probe etcd endpoints on an interval and report each change.",
                         epilog=EXPOSURE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("targets", nargs="*", metavar="TARGET", help="as `probe` takes them: host:port, URL, [v6]:port")
    e.add_argument("-f", "--file", action="append", default=[], metavar="FILE", help="targets, one a line")
    e.add_argument("--from-scan", type=int, metavar="ID", help="watch every etcd endpoint of a stored scan")
    e.add_argument("--every", default="60s", metavar="DURATION", help="probe interval per target (default 60s)")
    e.add_argument("--duration", metavar="DURATION", help="stop cleanly after this long (default: run until stopped)")
    e.add_argument("--once", action="store_true", help="one observation per target, then exit (4: got worse)")
    e.add_argument("--down-after", type=int, default=2, metavar="N",
                   help="unreachable probes in a row before the target counts as down (default 2)")
    e.add_argument("--cert-warn", type=float, default=14.0, metavar="DAYS",
                   help="report a certificate this close to expiry (default 14; 0: off)")
    e.add_argument("--db", default=DEFAULT_DB, help=f"SQLite path or postgresql:// URL (default {DEFAULT_DB})")
    e.add_argument("--events", metavar="FILE", help="JSON-lines event file (appended to)")
    e.add_argument("--sensor", help="sensor name in events (default: host name)")
    e.add_argument("--concurrency", type=int, default=64,
                   help="targets probed at once (default 64; with --workers/--cluster: in each worker process)")
    e.add_argument("--timeout", default="10s", metavar="DURATION", help="deadline per probe (default 10s)")
    e.add_argument("--no-data", action="store_true", help="do not count keys by prefix")
    e.add_argument("--alertmanager", metavar="URL", help="Prometheus Alertmanager base URL (v2 API)")
    e.add_argument("--alertmanager-resend", default="60s", metavar="DURATION",
                   help="re-send active alerts this often (default 60s)")
    add_alert_arguments(e, default_on="monitor.exposure.changed", per="target")
    add_scale_arguments(e)
    e.set_defaults(run=run_exposure)
    c = modes.add_parser("connections", help="report connections to etcd from sources never seen before",
                         description="Watch TCP connections to local etcd listeners against a learned baseline.")
    monitor_connections.add_arguments(c)
    c.set_defaults(run=monitor_connections.run)


def _exposure_config(args: argparse.Namespace):
    from etcdsec.commands.probe import read_target_lines
    from etcdsec.monitor.exposure import ExposureConfig
    from etcdsec.probe.options import ProbeOptions
    from etcdsec.targets import parse_target

    every = parse_duration(args.every, "--every", minimum=0.1)
    duration = parse_duration(args.duration, "--duration", minimum=0.1) if args.duration else None
    timeout = parse_duration(args.timeout, "--timeout", minimum=0.1)
    resend = parse_duration(args.alertmanager_resend, "--alertmanager-resend", minimum=1.0)
    if not 0 <= args.cert_warn <= 3650:
        raise UserError("--cert-warn: expected days from 0 to 3650")
    if args.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    alerts = alert_settings(args, emitter="monitor")
    events = Path(args.events) if args.events else None
    if events is not None and not events.expanduser().resolve().parent.is_dir():
        raise UserError(f"--events: directory does not exist: {events.parent}")
    texts = list(args.targets)
    for path in args.file:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                texts += read_target_lines(fh.read().splitlines())
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}") from None
    if args.from_scan is not None:
        texts += scan_targets(args.db, args.from_scan)
    targets, seen = [], set()
    for text in texts:
        t = parse_target(text)
        if t.text not in seen:
            seen.add(t.text)
            targets.append(t)
    if not targets:
        raise UserError("no targets given (try: etcdsec monitor exposure 127.0.0.1:2379 --every 30s)")
    config = ExposureConfig(
        targets=targets, db=args.db, every=every, down_after=args.down_after, cert_warn_days=args.cert_warn,
        duration=duration, once=args.once, concurrency=args.concurrency, events=events,
        probe=ProbeOptions(deadline=timeout, connect_timeout=min(3.0, timeout), request_timeout=min(4.0, timeout),
                           collect_data=not args.no_data),
        alert_on=alerts.on, alert_webhook=alerts.webhook, alert_syslog=alerts.syslog, alert_rate=alerts.rate,
        alertmanager=http_url(args.alertmanager, "--alertmanager"), alertmanager_resend=resend,
        metrics_listen=alerts.metrics_listen,
    )
    if args.sensor:
        config.sensor = args.sensor
    return config


def scan_targets(db: str, scan_id: int) -> list[str]:
    """Every etcd endpoint of a stored scan, as `host:port` (or an https:// URL when it spoke TLS)."""
    from etcdsec.store.engine import open_engine
    from etcdsec.store.scans import ScanStore

    if "://" not in db and not Path(db).expanduser().is_file():
        raise UserError(f"--from-scan: no database at {db}")
    store = ScanStore(open_engine(db))
    if store.get_scan(scan_id) is None:
        raise UserError(f"--from-scan: no scan {scan_id} in {db}")
    out = []
    for result, _meta in store.endpoint_results(scan_id):
        if result.is_etcd is False or not result.reachable or not result.ip or not result.port:
            continue
        host = f"[{result.ip}]" if ":" in result.ip else result.ip
        out.append(f"https://{host}:{result.port}" if result.scheme == "https" else f"{host}:{result.port}")
    if not out:
        raise UserError(f"--from-scan: scan {scan_id} has no etcd endpoint")
    return out


def run_exposure(args: argparse.Namespace) -> int:
    from etcdsec.commands.monitor_cluster import run_partitioned, scale_out
    from etcdsec.monitor.exposure import ExposureMonitor

    partitioned = scale_out(args)  # its argument errors before anything is read
    config = _exposure_config(args)
    if partitioned:
        return run_partitioned(args, config)

    async def main() -> int:
        monitor = ExposureMonitor(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if monitor.writer is not None:  # after an external logrotate moved the event file
            loop.add_signal_handler(signal.SIGHUP, monitor.writer.reopen)

        def ready(m: ExposureMonitor) -> None:
            where = f", metrics on {m.metrics.server.sockets[0].getsockname()[:2]}" if m.metrics and m.metrics.server \
                else ""
            mode = "once" if config.once else f"every {args.every}"
            n = len(config.targets)
            print(f"etcdsec monitor exposure: {n} target{'s' if n != 1 else ''}, {mode}, db {config.db}{where}",
                  file=sys.stderr, flush=True)

        try:
            return await monitor.run(stop, ready)
        finally:
            await monitor.close()

    return asyncio.run(main())

"""`etcdsec honeypot`: run an etcd honeypot in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import sys
from pathlib import Path

from etcdsec.commands.options import add_alert_arguments, alert_settings, parse_hostport
from etcdsec.errors import UserError

EPILOG = """Event ids start with `etcdsec.` (etcdsec.session.connect, etcdsec.http.request,
etcdsec.grpc.request, etcdsec.malformed, etcdsec.honeytoken.used, ...); see docs/honeypot-events.md.
SIGTERM/SIGINT: flush and exit 0. SIGHUP: reopen the event file (after an external logrotate)."""
LEGACY_STATE = "etcdsec-honeypot.state.json"  # the --state default before it moved to the XDG state directory


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("honeypot", help="run an etcd honeypot that logs every request",
                       description="An etcd that answers like a chosen version and records all it is sent.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", default="127.0.0.1:2379", metavar="HOST:PORT",
                   help="client port: HTTP/1.1, gRPC (h2c) and TLS on one socket (default 127.0.0.1:2379)")
    p.add_argument("--peer-listen", metavar="HOST:PORT", help="also serve the peer port (/members, /version)")
    p.add_argument("--persona", default="3.5.1", help="etcd version to imitate: 3.5.1, 3.4.23, 3.3.27, 3.2.22, 2.3.8")
    p.add_argument("--name", default="kube-master-1", help="member name (default kube-master-1)")
    p.add_argument("--events", metavar="FILE", help="JSON-lines event file (appended to, never truncated)")
    p.add_argument("--db", metavar="PATH_OR_URL", help="also store events in SQLite (path) or PostgreSQL (URL)")
    p.add_argument("--state", metavar="PATH",
                   help="keeps cluster/member ids, start time, honeytoken seed and the keyspace across restarts: "
                        "a directory, or the ids' FILE with the keyspace beside it as FILE-stem.keyspace.* "
                        "(default: $XDG_STATE_HOME/etcdsec/honeypot/, else ~/.local/state/etcdsec/honeypot/)")
    p.add_argument("--state-flush", type=float, default=1.0, metavar="S",
                   help="write (and fsync) keyspace changes every S seconds: what kill -9 can lose (default 1)")
    p.add_argument("--state-max-bytes", type=int, default=256 << 20, metavar="N",
                   help="keyspace state on disk at most; past it puts fail as etcd's do when its quota is "
                        "exceeded (default 256 MiB)")
    p.add_argument("--forget-writes", action="store_true",
                   help="do not keep the keyspace: every start serves the fresh bait (ids are still kept)")
    p.add_argument("--sensor", help="sensor name in events (default: host name)")
    p.add_argument("--seed", metavar="FILE", help="YAML/JSON keyspace to serve instead of the Kubernetes bait")
    p.add_argument("--enable-v2", choices=("true", "false"),
                   help="serve the v2 API or not (default: as the persona's version does)")
    p.add_argument("--namespace-writes", action="store_true", help="each source sees only its own writes")
    p.add_argument("--tls-cert", metavar="PEM", help="accept TLS (ALPN h2 and http/1.1) with this certificate")
    p.add_argument("--tls-key", metavar="PEM")
    p.add_argument("--proxy-protocol", action="store_true",
                   help="accept PROXY protocol v1/v2 headers from --trusted-proxy addresses")
    p.add_argument("--trust-xff", action="store_true", help="take X-Forwarded-For from --trusted-proxy addresses")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="CIDR",
                   help="a balancer allowed to send PROXY headers / X-Forwarded-For (repeatable)")
    p.add_argument("--max-connections", type=int, default=1024, metavar="N", help="open connections (default 1024)")
    p.add_argument("--max-connections-per-source", type=int, default=64, metavar="N",
                   help="open connections per client IP (default 64)")
    p.add_argument("--rate", type=float, default=200.0, metavar="PER_S",
                   help="requests per second per source before it is slowed down (default 200; 0: off)")
    p.add_argument("--max-request-bytes", type=int, default=1 << 20, metavar="N", help="body size cap (default 1 MiB)")
    p.add_argument("--max-keys", type=int, default=100_000, metavar="N", help="keys per store at most (100000)")
    p.add_argument("--max-store-bytes", type=int, default=64 << 20, metavar="N",
                   help="bytes of keys and values per store at most (64 MiB)")
    p.add_argument("--idle-timeout", type=float, default=120.0, metavar="S", help="close idle connections (120 s)")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                   help="close a connection whose request head takes longer (10 s; slowloris)")
    p.add_argument("--watch-timeout", type=float, default=0.0, metavar="S",
                   help="end v2 waits and v3 watches after S seconds (default 0: held until the client "
                        "leaves, as etcd does)")
    p.add_argument("--events-max-bytes", type=int, default=100 << 20, metavar="N",
                   help="rotate the event file at this size (100 MiB)")
    p.add_argument("--events-backups", type=int, default=5, metavar="N", help="rotated files kept (5)")
    p.add_argument("--flush-interval", type=float, default=0.0, metavar="S",
                   help="batch event writes for this many seconds (0: write each event at once)")
    p.add_argument("--workers", default="1", metavar="N|auto",
                   help="sensor processes sharing the port, each client address always served by the same one "
                        "(default 1; auto: one per CPU; Linux). All workers serve one keyspace and revision "
                        "sequence, held by worker 0: the others forward writes, watches and v2 requests to it "
                        "and answer reads from a replica it keeps current; unless --keyspace-per-worker")
    keyspaces = p.add_mutually_exclusive_group()
    keyspaces.add_argument("--shared-keyspace", action="store_true",
                           help="one keyspace for all workers: the default with --workers N (kept for old command "
                                "lines)")
    keyspaces.add_argument("--keyspace-per-worker", action="store_true",
                           help="with --workers: each worker keeps its own keyspace (more writes per second, but "
                                "sources on different workers do not see each other's writes: a tell). "
                                "docs/honeypot.md")
    add_alert_arguments(p, default_on="honeytoken.used")
    p.set_defaults(run=run)


def default_state_dir() -> Path:
    """$XDG_STATE_HOME/etcdsec/honeypot (an absolute XDG_STATE_HOME only, as the spec says), else
    ~/.local/state/etcdsec/honeypot; made private (0700), as a daemon's state directory is."""
    base = os.environ.get("XDG_STATE_HOME", "")
    try:
        root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    except RuntimeError:
        raise UserError("--state: no home directory to keep the state in; give --state PATH") from None
    return root / "etcdsec" / "honeypot"


def _adopt_legacy_state(ids: Path) -> None:
    """The ids a sensor kept in its working directory before the XDG default: a restart after an
    upgrade must not show scanners a new cluster."""
    try:
        shutil.copyfile(LEGACY_STATE, ids)
        ids.chmod(0o600)
    except OSError as exc:
        raise UserError(f"--state: cannot copy ./{LEGACY_STATE} to {ids}: {exc.strerror or exc}") from None
    print(f"etcdsec honeypot: ids taken over from ./{LEGACY_STATE} into {ids}", file=sys.stderr)


def state_paths(arg: str | None) -> tuple[Path, Path]:
    """(ids file, keyspace prefix) for --state: a directory holds state.json and keyspace.*; a file
    (the form before the keyspace was kept) keeps its name, the keyspace goes beside it."""
    path = Path(arg).expanduser() if arg else default_state_dir()
    if arg is None or path.is_dir() or arg.endswith(("/", os.sep)):
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.chmod(0o700)  # mkdir's mode is masked by the umask, and an existing one may be wider
        except OSError as exc:
            raise UserError(f"--state: cannot make directory {path}: {exc.strerror or exc}") from None
        ids = path / "state.json"
        if arg is None and not ids.exists() and Path(LEGACY_STATE).is_file():
            _adopt_legacy_state(ids)
        return ids, path / "keyspace"
    if not path.resolve().parent.is_dir():
        raise UserError(f"--state: directory does not exist: {path.parent}")
    return path, path.with_name(path.stem + ".keyspace")


def build_config(args: argparse.Namespace):
    from etcdsec.honeypot.core.limits import Limits
    from etcdsec.honeypot.core.persona import load_persona
    from etcdsec.honeypot.sensor import SensorConfig

    load_persona(args.persona)  # unknown persona: one-line error before anything starts
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UserError("--tls-cert and --tls-key go together")
    if (args.proxy_protocol or args.trust_xff) and not args.trusted_proxy:
        raise UserError("--proxy-protocol/--trust-xff need at least one --trusted-proxy CIDR")
    for cidr in args.trusted_proxy:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise UserError(f"--trusted-proxy: {cidr!r} is not a CIDR") from None
    for name in ("max_connections", "max_connections_per_source", "max_request_bytes", "events_max_bytes",
                 "max_keys", "max_store_bytes"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    if args.header_timeout <= 0:
        raise UserError("--header-timeout must be positive")
    if not args.state_flush > 0 or args.state_max_bytes <= 0:
        raise UserError("--state-flush and --state-max-bytes must be positive")
    state_file, keyspace = state_paths(args.state)
    if args.idle_timeout <= 0 or args.rate < 0 or args.flush_interval < 0 or args.watch_timeout < 0:
        raise UserError("--idle-timeout must be positive; --rate, --flush-interval and --watch-timeout "
                        "not negative")
    events = Path(args.events) if args.events else None
    if events is not None and not events.expanduser().resolve().parent.is_dir():
        raise UserError(f"--events: directory does not exist: {events.parent}")
    if args.seed and not Path(args.seed).is_file():
        raise UserError(f"--seed: no such file: {args.seed}")
    limits = Limits(max_connections=args.max_connections, max_connections_per_source=args.max_connections_per_source,
                    max_request_bytes=args.max_request_bytes, idle_timeout_s=args.idle_timeout,
                    rate_per_source=args.rate, burst_per_source=max(1, int(args.rate * 2)),
                    max_keys=args.max_keys, max_store_bytes=args.max_store_bytes,
                    wait_timeout_s=args.watch_timeout, header_timeout_s=args.header_timeout)
    config = SensorConfig(
        listen=parse_hostport(args.listen, "--listen"),
        peer_listen=parse_hostport(args.peer_listen, "--peer-listen") if args.peer_listen else None,
        persona=args.persona, member_name=args.name, events=events, db=args.db,
        state_file=state_file, keyspace_state=None if args.forget_writes else keyspace,
        state_flush=args.state_flush, state_max_bytes=args.state_max_bytes,
        seed_file=Path(args.seed) if args.seed else None,
        namespace_writes=args.namespace_writes, tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None, proxy_protocol=args.proxy_protocol,
        trusted_proxies=list(args.trusted_proxy), trust_xff=args.trust_xff, events_max_bytes=args.events_max_bytes,
        events_backups=args.events_backups, flush_interval=args.flush_interval, limits=limits,
    )
    alerts = alert_settings(args, emitter="honeypot")
    config.alert_on, config.alert_webhook, config.alert_syslog = alerts.on, alerts.webhook, alerts.syslog
    config.alert_rate, config.metrics_listen = alerts.rate, alerts.metrics_listen
    config.shared_keyspace = not args.keyspace_per_worker
    if args.enable_v2:
        config.enable_v2 = args.enable_v2 == "true"
    if args.sensor:
        config.sensor = args.sensor
    return config


def parse_workers(text: str) -> int:
    if text == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise UserError(f"--workers: expected a number from 1 to 256 or 'auto', got {text!r}")
    if int(text) > 1 and not sys.platform.startswith("linux"):
        raise UserError("--workers above 1 needs Linux (SO_REUSEPORT with a BPF steering program)")
    return int(text)


def run(args: argparse.Namespace) -> int:
    from etcdsec.honeypot.sensor import run_forever

    config = build_config(args)
    workers = parse_workers(args.workers)

    def ready(sensor) -> None:
        where = ", ".join(f"{name} {h}:{p}" for name, (h, p) in sensor.addresses.items())
        print(f"etcdsec honeypot: persona {sensor.persona.name} listening on {where}", file=sys.stderr, flush=True)

    if workers == 1:
        return run_forever(config, ready)
    from etcdsec.honeypot.core.persona import load_persona
    from etcdsec.honeypot.workers import run_workers

    persona = load_persona(config.persona).name

    def workers_ready(addresses: dict[str, tuple[str, int]]) -> None:
        where = ", ".join(f"{name} {h}:{p}" for name, (h, p) in addresses.items())
        print(f"etcdsec honeypot: persona {persona} listening on {where} ({workers} workers)", file=sys.stderr,
              flush=True)

    return run_workers(config, workers, workers_ready)

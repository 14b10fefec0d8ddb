"""Command-line options that several commands share: HOST:PORT, durations, and the event outputs
(`--events`, `--alert-*`, `--metrics-listen`) of the long-running ones (honeypot, monitor)."""

from __future__ import annotations

import argparse
import ipaddress
import re
from dataclasses import dataclass

from etcdsec.errors import UserError
from etcdsec.events.ids import parse_event_ids

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_DURATION_S = 366 * 86400.0


def parse_hostport(text: str, what: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UserError(f"{what}: expected HOST:PORT, got {text!r}")
    host = host or "0.0.0.0"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise UserError(f"{what}: {host!r} is not an IP address") from None
        host = "127.0.0.1"
    return host, int(port)


def parse_duration(text: str, what: str, minimum: float = 0.0) -> float:
    """`90`, `1.5s`, `500ms`, `10m`, `1h30m`, `2d` -> seconds; at least `minimum`, at most a year."""
    cleaned = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        seconds = float(cleaned)
    else:
        parts = _DURATION.findall(cleaned)
        if not parts or "".join(n + u for n, u in parts) != cleaned:
            raise UserError(f"{what}: expected a duration like 30s, 10m, 1h or 1h30m, got {text[:40]!r}")
        seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if not minimum <= seconds <= MAX_DURATION_S:
        raise UserError(f"{what}: {text[:40]!r} is out of range ({minimum:g}s to 366d)")
    return seconds


def loopback_hostport(text: str, what: str) -> tuple[str, int]:
    """HOST:PORT on a loopback address (metrics are for the operator only)."""
    host, port = parse_hostport(text, what)
    if not ipaddress.ip_address(host).is_loopback:
        raise UserError(f"{what} must be a loopback address (metrics are for the operator only)")
    return host, port


def add_alert_arguments(p: argparse.ArgumentParser, default_on: str, per: str = "source") -> None:
    p.add_argument("--metrics-listen", metavar="HOST:PORT", help="Prometheus metrics on a loopback port")
    p.add_argument("--alert-webhook", metavar="URL", help="POST alert events as JSON to this URL")
    p.add_argument("--alert-syslog", metavar="HOST:PORT", help="send alert events to syslog (UDP)")
    p.add_argument("--alert-on", default=default_on, metavar="IDS",
                   help=f"comma-separated event ids that raise alerts (default {default_on})")
    p.add_argument("--alert-rate", type=int, default=10, metavar="N", help=f"alerts per {per} per minute (10)")


@dataclass
class AlertSettings:
    on: list[str]
    webhook: str | None
    syslog: tuple[str, int] | None
    rate: int
    metrics_listen: tuple[str, int] | None


def http_url(text: str | None, what: str) -> str | None:
    """An http(s) URL or None; anything else is a one-line error."""
    if text and not text.startswith(("http://", "https://")):
        raise UserError(f"{what}: expected an http:// or https:// URL")
    return text


def alert_settings(args: argparse.Namespace, emitter: str) -> AlertSettings:
    """The options of `add_alert_arguments`, checked; `emitter` limits --alert-on to its own ids."""
    if args.alert_rate <= 0:
        raise UserError("--alert-rate must be positive")
    return AlertSettings(
        on=parse_event_ids(args.alert_on, "--alert-on", emitter=emitter),
        webhook=http_url(args.alert_webhook, "--alert-webhook"),
        syslog=parse_hostport(args.alert_syslog, "--alert-syslog") if args.alert_syslog else None,
        rate=args.alert_rate,
        metrics_listen=loopback_hostport(args.metrics_listen, "--metrics-listen") if args.metrics_listen else None,
    )



def add_worker_arguments(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """`--workers` and `--cluster`, as `scan` and `monitor exposure` take them; the group, for more."""
    g = p.add_argument_group("scale out (docs/scale.md)")
    g.add_argument("--workers", default=None, metavar="N|auto",
                   help="N worker processes on this machine (a Dask local cluster); auto: one per core")
    g.add_argument("--cluster", default=None, metavar="tcp://HOST:PORT",
                   help="run on the workers of this Dask scheduler; needs --db postgresql://...")
    return g

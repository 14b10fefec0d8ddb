"""Alerts to Prometheus Alertmanager over its v2 API (`POST /api/v2/alerts`).

Alertmanager deduplicates by label set, expects active alerts to be re-sent (else they resolve at
their `endsAt`), and takes an alert with `endsAt` in the past as resolved. So:

- an emitter with state (the monitor: "this target is exposed") calls `set_group(group, alerts)`
  after every observation with the alerts that hold now; the ones of that group that no longer
  hold are sent resolved. An event that carries no state (`--alert-on` ids handed to `__call__`)
  becomes an alert that resolves itself after `oneshot_s`.
- active alerts are re-sent every `resend_s` with `endsAt` four re-sends ahead, so if this process
  dies they resolve in Alertmanager on their own, as Prometheus' alerts do.
- rate limit: an alert may start firing at most `per_alert_per_minute` times a minute (a flapping
  target); a start held back is sent later if the alert still holds. Resolutions are never held.

`AlertBook` is the sans-IO part; `AlertmanagerOutput` posts from a thread, one JSON list per tick.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from etcdsec.events.ids import EVENT_PREFIX, full_id
from etcdsec.events.ratelimit import WindowLimiter

MAX_ALERTS = 10_000
MAX_LABEL = 1024
TICK_S = 1.0


@dataclass(frozen=True)
class Alert:
    labels: dict[str, str]  # identity: Alertmanager deduplicates on these
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class _Entry:
    labels: dict[str, str]
    annotations: dict[str, str]
    group: str
    starts_at: dt.datetime
    active: bool = True
    dirty: bool = True  # Alertmanager has not seen the current state yet
    sent_active: bool = False  # Alertmanager knows it as firing
    last_sent: float = float("-inf")
    expires: float | None = None  # one-shot alerts: monotonic time they resolve themselves


def _clean(values: dict[str, Any]) -> dict[str, str]:
    return {str(k)[:128]: str(v)[:MAX_LABEL] for k, v in values.items() if v is not None}


def fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:32]


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AlertBook:
    def __init__(self, resend_s: float = 60.0, per_alert_per_minute: int = 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.resend_s = resend_s
        self.clock = clock
        self.limiter = WindowLimiter(per_alert_per_minute, 60.0, MAX_ALERTS)
        self.entries: dict[str, _Entry] = {}
        self.groups: dict[str, set[str]] = {}
        self.suppressed = 0
        self.dropped = 0  # alerts refused because MAX_ALERTS are held
        self.lock = threading.Lock()

    def _resolve(self, fp: str) -> None:
        entry = self.entries.get(fp)
        if entry is None or not entry.active:
            return
        if not entry.sent_active:  # Alertmanager never saw it fire: nothing to resolve there
            self._forget(fp)
            return
        entry.active, entry.dirty = False, True

    def _forget(self, fp: str) -> None:
        entry = self.entries.pop(fp, None)
        if entry is not None and entry.group in self.groups:
            self.groups[entry.group].discard(fp)

    def _hold(self, alert: Alert, group: str, now: dt.datetime, expires: float | None) -> None:
        labels, annotations = _clean(alert.labels), _clean(alert.annotations)
        fp = fingerprint(labels)
        entry = self.entries.get(fp)
        if entry is not None and entry.active:
            if entry.annotations != annotations:
                entry.annotations, entry.dirty = annotations, True
            entry.expires = expires
            return
        if entry is None and len(self.entries) >= MAX_ALERTS:
            self.dropped += 1
            return
        self.entries[fp] = _Entry(labels, annotations, group, now, expires=expires,
                                  sent_active=entry.sent_active if entry else False)
        self.groups.setdefault(group, set()).add(fp)

    def set_group(self, group: str, alerts: list[Alert], now: dt.datetime | None = None) -> None:
        """The alerts that hold for `group` now; the group's others resolve."""
        now = now or dt.datetime.now(dt.UTC)
        with self.lock:
            wanted = {fingerprint(_clean(a.labels)): a for a in alerts}
            for fp in list(self.groups.get(group, ())):
                if fp not in wanted:
                    self._resolve(fp)
            for alert in wanted.values():
                self._hold(alert, group, now, None)

    def fire_once(self, alert: Alert, lifetime_s: float, now: dt.datetime | None = None) -> None:
        with self.lock:
            self._hold(alert, "", now or dt.datetime.now(dt.UTC), self.clock() + lifetime_s)

    def due(self, now: dt.datetime | None = None) -> tuple[list[str], list[dict[str, Any]]]:
        """What to post now: (fingerprints, v2 alert objects); call `sent` with the outcome."""
        now = now or dt.datetime.now(dt.UTC)
        mono = self.clock()
        fps: list[str] = []
        items: list[dict[str, Any]] = []
        with self.lock:
            for fp, e in list(self.entries.items()):
                if e.active and e.expires is not None and mono >= e.expires:
                    self._resolve(fp)
                    if fp not in self.entries:
                        continue
                if e.active and not e.sent_active and e.dirty and not self.limiter.allow(fp, mono):
                    self.suppressed += 1
                    continue
                if not (e.dirty or (e.active and mono - e.last_sent >= self.resend_s)):
                    continue
                ends = now + dt.timedelta(seconds=4 * self.resend_s) if e.active else now
                fps.append(fp)
                items.append({"labels": e.labels, "annotations": e.annotations, "startsAt": _iso(e.starts_at),
                              "endsAt": _iso(ends)})
        return fps, items

    def sent(self, fps: list[str], ok: bool) -> None:
        mono = self.clock()
        with self.lock:
            for fp in fps:
                e = self.entries.get(fp)
                if e is None:
                    continue
                if not ok:
                    e.dirty = True
                    continue
                e.dirty, e.last_sent, e.sent_active = False, mono, e.active
                if not e.active:
                    self._forget(fp)

    def active(self) -> list[dict[str, str]]:
        with self.lock:
            return [e.labels for e in self.entries.values() if e.active]


def alert_name(eventid: str) -> str:
    """`etcdsec.monitor.connection.anomalous` -> `EtcdsecMonitorConnectionAnomalous`."""
    words = re.split(r"[._]", full_id(eventid))
    return "".join(w[:1].upper() + w[1:] for w in words if w)


def event_alert(event: dict[str, Any]) -> Alert:
    """A stateless event as an alert: who and where in the labels, the event itself in an annotation."""
    eventid = str(event.get("eventid", ""))
    labels = {"alertname": alert_name(eventid), "eventid": eventid, "sensor": event.get("sensor"),
              "target": event.get("target"), "src_ip": event.get("src_ip"), "dst_port": event.get("dst_port"),
              "severity": event.get("severity")}
    text = json.dumps(event, separators=(",", ":"), default=str)
    return Alert(labels, {"summary": f"{eventid[len(EVENT_PREFIX):]} on {event.get('sensor')}",
                          "event": text[:8192]})


class AlertmanagerOutput:
    """An event output and a state sink posting to one Alertmanager (`url` is its base URL)."""

    def __init__(self, url: str, eventids: Iterable[str] = (), resend_s: float = 60.0,
                 per_alert_per_minute: int = 10, oneshot_s: float = 3600.0, name: str = "etcdsec") -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.eventids = {full_id(e) for e in eventids}
        self.book = AlertBook(resend_s, per_alert_per_minute)
        self.oneshot_s = oneshot_s
        self.name = name
        self.posts = self.sent = self.failed = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="alertmanager", daemon=True)
        self.thread.start()

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("eventid") in self.eventids:
            self.book.fire_once(event_alert(event), self.oneshot_s)

    def set_group(self, group: str, alerts: list[Alert]) -> None:
        self.book.set_group(group, alerts)

    def _post(self, items: list[dict[str, Any]]) -> bool:
        body = json.dumps(items, separators=(",", ":")).encode()
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": self.name})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                resp.read(65536)
            return True
        except (OSError, ValueError):
            return False

    def tick(self) -> None:
        fps, items = self.book.due()
        if not items:
            return
        ok = self._post(items)
        self.posts += 1
        if ok:
            self.sent += len(items)
        else:
            self.failed += 1
        self.book.sent(fps, ok)

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            self.tick()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.thread.join(timeout)
        self.tick()  # what changed in the last second still goes out

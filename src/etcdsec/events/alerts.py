"""Alerts for the events that matter (`--alert-on`): webhook JSON POST and syslog.

Sent from a worker thread so a slow receiver never stalls the emitter (sensor or monitor); each source may raise at
most `per_source_per_minute` alerts (a flood of token reuse becomes one alert plus a counter); the
source is the event's `key` field (`src_ip` for the honeypot, `target` for the monitor).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from etcdsec.events.ids import full_id
from etcdsec.events.ratelimit import WindowLimiter

MAX_SOURCES = 10_000
_STOP = object()


class AlertOutput:
    def __init__(self, eventids: list[str], webhook: str | None = None, syslog: tuple[str, int] | None = None,
                 per_source_per_minute: int = 10, clock: Callable[[], float] = time.monotonic,
                 name: str = "etcdsec-honeypot", key: str = "src_ip") -> None:
        self.eventids = {full_id(e) for e in eventids}
        self.webhook = webhook
        self.limit = per_source_per_minute
        self.clock = clock
        self.limiter = WindowLimiter(per_source_per_minute, 60.0, MAX_SOURCES)
        self.sent = 0
        self.suppressed = 0
        self.failed = 0
        self.name = name  # the syslog tag and the webhook's User-Agent
        self.key = key  # the event field the per-minute limit counts by (a source, a target)
        self.syslog: logging.Logger | None = None
        if syslog is not None:
            self.syslog = logging.getLogger(f"etcdsec.events.alerts.{id(self)}")
            self.syslog.propagate = False
            self.syslog.setLevel(logging.WARNING)
            handler = logging.handlers.SysLogHandler(address=syslog, facility=logging.handlers.SysLogHandler.LOG_AUTH)
            handler.setFormatter(logging.Formatter(name + ": %(message)s"))
            self.syslog.addHandler(handler)
        self.queue: queue.Queue[Any] = queue.Queue(1000)
        self.thread = threading.Thread(target=self._run, name=f"{name}-alerts", daemon=True)
        self.thread.start()

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("eventid") not in self.eventids:
            return
        if not self.limiter.allow(str(event.get(self.key, "")), self.clock()):
            self.suppressed += 1
            return
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.suppressed += 1

    def _run(self) -> None:
        while True:
            event = self.queue.get()
            if event is _STOP:
                return
            alert = {"alert": event["eventid"], "suppressed_so_far": self.suppressed, "event": event}
            body = json.dumps(alert, separators=(",", ":"), default=str)
            if self.webhook:
                try:
                    req = urllib.request.Request(self.webhook, data=body.encode(), method="POST",
                                                 headers={"Content-Type": "application/json",
                                                          "User-Agent": self.name})
                    with urllib.request.urlopen(req, timeout=5) as resp:
                        resp.read()
                    self.sent += 1
                except (OSError, ValueError):
                    self.failed += 1
            if self.syslog is not None:
                self.syslog.warning(body)
                self.sent += 0 if self.webhook else 1

    def close(self, timeout: float = 10.0) -> None:
        self.queue.put(_STOP)
        self.thread.join(timeout)
        if self.syslog is not None:
            for handler in list(self.syslog.handlers):
                handler.close()
                self.syslog.removeHandler(handler)

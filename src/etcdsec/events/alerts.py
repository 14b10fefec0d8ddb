"""Alerts for the events that matter (`--alert-on`): webhook JSON POST and syslog.

Sent from a worker thread so a slow receiver never stalls the emitter (sensor or monitor); each source may raise at
most `per_source_per_minute` alerts (a flood of token reuse becomes one alert plus a counter).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import threading
import time
import urllib.request
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from etcdsec.events.ids import full_id

MAX_SOURCES = 10_000
_STOP = object()


class AlertOutput:
    def __init__(self, eventids: list[str], webhook: str | None = None, syslog: tuple[str, int] | None = None,
                 per_source_per_minute: int = 10, clock: Callable[[], float] = time.monotonic,
                 name: str = "etcdsec-honeypot") -> None:
        self.eventids = {full_id(e) for e in eventids}
        self.webhook = webhook
        self.limit = per_source_per_minute
        self.clock = clock
        self.recent: OrderedDict[str, deque[float]] = OrderedDict()
        self.sent = 0
        self.suppressed = 0
        self.failed = 0
        self.name = name  # the syslog tag and the webhook's User-Agent
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
        if not self._allowed(str(event.get("src_ip", "")), self.clock()):
            self.suppressed += 1
            return
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.suppressed += 1

    def _allowed(self, source: str, now: float) -> bool:
        window = self.recent.get(source)
        if window is None:
            window = self.recent[source] = deque()
            if len(self.recent) > MAX_SOURCES:
                self.recent.popitem(last=False)
        self.recent.move_to_end(source)
        while window and now - window[0] >= 60.0:
            window.popleft()
        if len(window) >= self.limit:
            return False
        window.append(now)
        return True

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

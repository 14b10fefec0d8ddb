"""Run a sensor in a background thread (tests, the fidelity runner, the benchmark). Loopback only."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

from etcdsec.honeypot.sensor import Sensor, SensorConfig, event_loop_factory
from etcdsec.testbed.addresses import free_loopback_ip, is_loopback
from tests.support.memory_events import MemoryEvents


class BackgroundSensor:
    """`with BackgroundSensor(SensorConfig(persona="3.4.23")) as hp: hp.url ...`"""

    def __init__(self, config: SensorConfig | None = None, ip: str | None = None, peer: bool = False,
                 keep_events: bool = True, port: int = 2379) -> None:
        self.config = config or SensorConfig()
        self.ip = ip or free_loopback_ip((2379, 2380))
        if not is_loopback(self.ip):
            raise ValueError("background sensors bind loopback only")
        self.port = port  # 0: any free port (read it back from .url once started)
        self.config.listen = (self.ip, port)
        if peer:
            self.config.peer_listen = (self.ip, 2380)
        self.memory = MemoryEvents()
        if keep_events:
            self.config.extra_outputs.append(self.memory)
        self.loop = event_loop_factory()()  # the loop the CLI runs, so tests exercise it
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="honeypot")
        self.sensor: Sensor | None = None

    @property
    def url(self) -> str:
        return f"http://[{self.ip}]:{self.port}" if ":" in self.ip else f"http://{self.ip}:{self.port}"

    @property
    def addr(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def start(self) -> BackgroundSensor:
        self.thread.start()

        async def make() -> Sensor:
            sensor = Sensor(self.config)
            await sensor.start()
            return sensor

        self.sensor = self.call(make())
        self.port = self.sensor.addresses["client"][1]
        return self

    def stop(self) -> None:
        if self.sensor is not None:
            self.call(self.sensor.stop())
            self.sensor = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def __enter__(self) -> BackgroundSensor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

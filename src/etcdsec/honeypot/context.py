"""The one object every part of a running sensor is handed: its persona, identity, events,
honeytokens, bait and limits (each defined in `core/`, one module a role).

It holds plain data only, so the HTTP/1 side and the v3 (gateway + gRPC) side can share it without
calling into each other; what a layer learns while serving belongs to that layer's own per-sensor
object (the v3 gateway's memo hangs on its `V3State`), never on this one or on a module.
The core names are importable from here too (`from etcdsec.honeypot.context import Session`),
so code written against the single module keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from etcdsec.honeypot.core.eventsink import EventSink
from etcdsec.honeypot.core.honeytokens import Honeytokens
from etcdsec.honeypot.core.identity import Identity
from etcdsec.honeypot.core.limits import Limits
from etcdsec.honeypot.core.persona import Persona, load_persona, persona_names
from etcdsec.honeypot.core.session import Session

__all__ = ["EventSink", "Honeytokens", "Identity", "Limits", "Persona", "SensorContext", "Session",
           "load_persona", "persona_names"]


@dataclass
class SensorContext:
    persona: Persona
    identity: Identity
    events: EventSink
    honeytokens: Honeytokens
    dataset: list[tuple[bytes, bytes]] = field(default_factory=list)  # fake Kubernetes keys -> values
    limits: Limits = field(default_factory=Limits)
    namespace_writes: bool = False  # True: each source sees its own writes only
    # etcd's --listen-client-urls / --listen-peer-urls for this sensor ("client", "peer"): /debug/vars
    listen_urls: dict[str, str] = field(default_factory=dict)

    @property
    def sensor(self) -> str:
        return self.events.sensor

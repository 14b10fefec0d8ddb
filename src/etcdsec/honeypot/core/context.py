"""What every part of the honeypot shares: persona, identity, session, events, honeytokens, limits.

This module is the interface between the HTTP/1 side and the v3 (gateway + gRPC) side, so it holds
plain data and tiny behaviour only. Event ids are passed to `EventSink.emit` WITHOUT the
`etcdsec.` prefix (`"http.request"`); the sink adds it (an id that already has it is kept as is).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from etcdsec.errors import UserError
from etcdsec.events.emitter import Emitter
from etcdsec.events.ids import EventOutput, full_id, utc_timestamp


# --- persona ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Persona:
    """One etcd version's outward behaviour, loaded from `personas/<name>.json`."""

    name: str  # "3.5.1"
    version: str  # what /version reports as etcdserver
    cluster_version: str  # what /version reports as etcdcluster
    v2_enabled: bool  # v2 keys API served on the client port
    # Gateway prefixes this version serves; each maps to the canonical "/v3" it is rewritten to.
    v3_prefixes_served: tuple[str, ...]
    has_auth_status: bool  # /v3/auth/status and Auth.AuthStatus exist (3.5+)
    health_body: str  # exact /health body
    grpc_enabled: bool = True  # 2.3 has no v3 at all
    go_version: str = "go1.16.3"
    git_sha: str = ""
    # Anything else a layer wants to read from the persona file (documented in docs/honeypot.md).
    extra: dict[str, Any] = field(default_factory=dict)

    def v3_path(self, path: str) -> str | None:
        """`/v3beta/kv/range` -> `/v3/kv/range` when this persona serves `/v3beta`; else None."""
        for prefix in self.v3_prefixes_served:
            if path == prefix or path.startswith(prefix + "/"):
                return "/v3" + path[len(prefix):]
        return None

    @property
    def major_minor(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Persona:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        fields = {k: v for k, v in data.items() if k in known}
        fields["v3_prefixes_served"] = tuple(fields.get("v3_prefixes_served", ()))
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**fields, extra=extra)


def persona_names() -> list[str]:
    files = resources.files("etcdsec.honeypot").joinpath("personas")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".json"))


def load_persona(name: str) -> Persona:
    """A persona by version name; "3.5" or "3.4" pick the newest matching file."""
    names = persona_names()
    match = name if name in names else next((n for n in reversed(names) if n.startswith(name + ".")), None)
    if match is None:
        raise UserError(f"unknown persona {name!r} (known: {', '.join(names)})")
    text = resources.files("etcdsec.honeypot").joinpath("personas", f"{match}.json").read_text()
    return Persona.from_dict(json.loads(text))


# --- deployment identity -------------------------------------------------------------------------
def _random_id() -> int:
    return secrets.randbits(64) | (1 << 60)  # etcd ids are full-width uint64; avoid tiny ones


@dataclass
class Identity:
    """Per-deployment ids: random once, then persisted so a restart does not change them."""

    cluster_id: int
    member_id: int
    member_name: str
    start_time: datetime
    peer_urls: list[str]
    client_urls: list[str]
    revision_base: int
    raft_term: int
    raft_index_base: int = 0
    secret_seed: str = ""  # seeds the honeytokens of this deployment

    @classmethod
    def create(cls, member_name: str, client_urls: list[str], peer_urls: list[str]) -> Identity:
        rng = secrets.SystemRandom()
        return cls(
            cluster_id=_random_id(),
            member_id=_random_id(),
            member_name=member_name,
            start_time=datetime.now(UTC).replace(microsecond=0),
            peer_urls=peer_urls,
            client_urls=client_urls,
            revision_base=rng.randint(20_000, 4_000_000),
            raft_term=rng.randint(2, 40),
            raft_index_base=rng.randint(30_000, 6_000_000),
            secret_seed=secrets.token_hex(16),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster_id": self.cluster_id, "member_id": self.member_id, "member_name": self.member_name,
            "start_time": self.start_time.isoformat(), "peer_urls": self.peer_urls,
            "client_urls": self.client_urls, "revision_base": self.revision_base,
            "raft_term": self.raft_term, "raft_index_base": self.raft_index_base,
            "secret_seed": self.secret_seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        data = dict(data)
        data["start_time"] = datetime.fromisoformat(data["start_time"])
        return cls(**data)

    @classmethod
    def load_or_create(cls, state_file: Path | None, member_name: str, client_urls: list[str],
                       peer_urls: list[str]) -> Identity:
        """Read the state file when present (keeping ids), else create and write it.

        The member name and URLs follow the current command line; ids, start time and seed persist.
        """
        if state_file is not None and state_file.exists():
            try:
                ident = cls.from_dict(json.loads(state_file.read_text()))
            except (ValueError, KeyError, TypeError) as exc:
                raise UserError(f"cannot read honeypot state file {state_file}: {exc}") from None
            ident.member_name, ident.client_urls, ident.peer_urls = member_name, client_urls, peer_urls
        else:
            ident = cls.create(member_name, client_urls, peer_urls)
        if state_file is not None:
            try:
                tmp = state_file.with_suffix(state_file.suffix + ".tmp")
                tmp.write_text(json.dumps(ident.to_dict(), indent=1))
                os.replace(tmp, state_file)
            except OSError as exc:
                raise UserError(f"cannot write honeypot state file {state_file}: {exc}") from None
        return ident


# --- sessions ----------------------------------------------------------------------------------
@dataclass
class Session:
    """One TCP connection. src_* is the client as we believe it (after PROXY/XFF when trusted)."""

    id: str
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    tls: bool = False
    peer_ip: str = ""  # the socket peer when src_ip came from PROXY protocol / X-Forwarded-For
    started: float = field(default_factory=time.monotonic)
    # what the client has sent so far: at the connection cap, the connection that sent least goes
    bytes_in: int = 0
    requests_in: int = 0  # complete requests, WebSocket messages, gRPC messages

    @classmethod
    def new(cls, src_ip: str, src_port: int, dst_ip: str, dst_port: int, tls: bool = False) -> Session:
        return cls(uuid.uuid4().hex[:12], _strip_mapped(src_ip), src_port, _strip_mapped(dst_ip), dst_port,
                   tls)


def _strip_mapped(ip: str) -> str:
    return ip[7:] if ip.startswith("::ffff:") else ip


# --- events (format and outputs: etcdsec.events) ------------------------------------------------
class EventSink(Emitter):
    """Builds Cowrie/T-Pot style events (session fields first) and delivers them through
    `etcdsec.events.emitter.Emitter` to every output (JSONL file, store, alerts)."""

    def __init__(self, sensor: str, outputs: Iterable[EventOutput] = ()) -> None:
        super().__init__(sensor, outputs)
        self._full_ids: dict[str, str] = {}

    def emit(self, eventid: str, session: Session | None = None, **fields: Any) -> dict[str, Any]:  # type: ignore[override]
        return self.emit_fields(eventid, session, fields)

    def emit_fields(self, eventid: str, session: Session | None, fields: dict[str, Any]) -> dict[str, Any]:
        """`emit` with the fields as a dict (no keyword copy on the hot path); None values are left out."""
        full = self._full_ids.get(eventid)
        if full is None:
            full = self._full_ids[eventid] = full_id(eventid)
        if session is None:
            event: dict[str, Any] = {"timestamp": utc_timestamp(), "eventid": full, "sensor": self.sensor}
        else:
            event = {"timestamp": utc_timestamp(), "eventid": full, "sensor": self.sensor, "session": session.id,
                     "src_ip": session.src_ip, "src_port": session.src_port, "dst_ip": session.dst_ip,
                     "dst_port": session.dst_port}
            if session.peer_ip:
                event["peer_ip"] = session.peer_ip
        if None in fields.values():
            for key, value in fields.items():
                if value is not None:
                    event[key] = value
        else:
            event.update(fields)
        self.deliver(event)
        return event


class MemoryEvents:
    """An output that keeps events in a list (tests, the fidelity runner)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def of(self, eventid: str) -> list[dict[str, Any]]:
        full = full_id(eventid)
        return [e for e in self.events if e["eventid"] == full]


# --- honeytokens ---------------------------------------------------------------------------------
class Honeytokens:
    """Planted credentials; `check` emits `honeytoken.used` when a request carries one.

    Besides the raw token it also matches the base64 forms (the v3 gateway and gRPC carry bytes
    base64-encoded in JSON). Events name the token by its label, never by its value.
    """

    def __init__(self, events: EventSink, tokens: dict[str, str] | None = None) -> None:
        self.events = events
        self.tokens: dict[str, str] = {}  # value -> label
        self._pattern: re.Pattern[bytes] | None = None
        self._forms: dict[bytes, str] = {}
        for value, label in (tokens or {}).items():
            self.add(value, label)

    def add(self, value: str, label: str) -> None:
        if len(value) < 8:
            raise ValueError("honeytokens must be at least 8 characters to avoid false hits")
        self.tokens[value] = label
        for form in _token_forms(value.encode()):
            self._forms[form] = label
        self._pattern = None  # compiled on first use: one compile for all tokens

    def _compiled(self) -> re.Pattern[bytes] | None:
        if self._pattern is None and self._forms:
            self._pattern = re.compile(_trie_pattern(list(self._forms)))
        return self._pattern

    def find(self, data: bytes) -> list[str]:
        """Labels of the tokens present in `data` (each once, in order of appearance)."""
        pattern = self._compiled()
        if pattern is None or not data:
            return []
        seen: list[str] = []
        for m in pattern.finditer(data):
            label = self._forms[m.group(0)]
            if label not in seen:
                seen.append(label)
        return seen

    def check(self, session: Session | None, data: bytes, where: str = "request") -> None:
        for label in self.find(data):
            self.events.emit("honeytoken.used", session, token=label, where=where)


def _trie_pattern(words: list[bytes]) -> bytes:
    """One regex for many literals, factored as a trie: JWTs and keys share long prefixes, and a flat
    alternation retries every word at every offset (3x slower on a typical request)."""
    ends_here = b"" in words
    by_first: dict[bytes, list[bytes]] = {}
    for word in words:
        if word:
            by_first.setdefault(word[:1], []).append(word[1:])
    branches = []
    for first, tails in sorted(by_first.items()):
        common = first
        while len(tails) > 1 and all(tails) and len({t[:1] for t in tails}) == 1:  # one path: a literal
            common += tails[0][:1]
            tails = [t[1:] for t in tails]
        if len(tails) == 1:
            branches.append(re.escape(common + tails[0]))
        else:
            branches.append(re.escape(common) + _trie_pattern(tails))
    if not branches:
        return b""
    body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
    return b"(?:" + body + b")?" if ends_here else body  # greedy: the longest word wins


def _token_forms(raw: bytes) -> list[bytes]:
    """The raw token plus the stable middle of its base64 encoding at the three byte alignments."""
    import base64

    forms = [raw]
    for shift in range(3):
        chunk = raw[shift:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        if len(chunk) >= 6:
            forms.append(base64.b64encode(chunk))
            forms.append(base64.urlsafe_b64encode(chunk))
    return list(dict.fromkeys(forms))


# --- limits and the context itself -----------------------------------------------------------------
@dataclass
class Limits:
    """Hard caps. A source that exceeds them is throttled or cut off; the sensor is not."""

    max_connections: int = 1024
    max_connections_per_source: int = 64
    max_request_bytes: int = 1 << 20  # one HTTP body / gRPC message
    max_header_count: int = 100
    max_header_bytes: int = 16 << 10
    idle_timeout_s: float = 120.0
    # A request head (request line + headers) must be in within this, counted from the connection's
    # start or the head's first byte (Go's ReadHeaderTimeout, nginx's client_header_timeout): far
    # below the idle time, so a slowloris holds a slot for seconds, not minutes.
    header_timeout_s: float = 10.0
    rate_per_source: float = 200.0  # requests per second, token bucket refill
    burst_per_source: int = 400
    # v2 ?wait=true and v3 watches: held at most this long; 0 = until the client leaves, as etcd does
    # (the connection caps bound how many; TCP keepalive finds clients that vanished)
    wait_timeout_s: float = 0.0
    # v3 store (HP-V3) and v2 store share these
    max_keys: int = 100_000
    max_store_bytes: int = 64 << 20
    max_value_bytes: int = 1 << 20
    max_watches: int = 1000
    max_watches_per_source: int = 64
    max_logged_body: int = 4096  # bytes of a body copied into an event


H2Handler = Callable[[Session, str, str, list[tuple[bytes, bytes]], bytes],
                     Awaitable[tuple[int, list[tuple[bytes, bytes]], bytes]]]


@dataclass
class SensorContext:
    persona: Persona
    identity: Identity
    events: EventSink
    honeytokens: Honeytokens
    dataset: list[tuple[bytes, bytes]] = field(default_factory=list)  # fake Kubernetes keys -> values
    limits: Limits = field(default_factory=Limits)
    namespace_writes: bool = False  # True: each source sees its own writes only
    # Plain HTTP over HTTP/2: over TLS with ALPN h2 etcd serves its HTTP handlers (GET /version ...)
    # on non-gRPC streams. The HTTP side sets this; the h2 server may call it for such a stream:
    # await ctx.h2_http(session, method, path, headers, body) -> (status, headers, body), headers
    # as Go's HTTP/2 server sends them (lower-case names, content-length and date included).
    h2_http: H2Handler | None = None
    # etcd's --listen-client-urls / --listen-peer-urls for this sensor ("client", "peer"): /debug/vars
    listen_urls: dict[str, str] = field(default_factory=dict)

    @property
    def sensor(self) -> str:
        return self.events.sensor
